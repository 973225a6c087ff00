"""Translation pairs in shards: builtin:shapes label maps, A/ and B/ folders, pix2pix A|B files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gandist.cli import main
from gandist.data.loader import epoch_loader
from gandist.data.manifest import Manifest
from gandist.data.shapes import LABEL_COLOURS, render_shapes
from gandist.data.shards import write_shard_set
from gandist.data.layouts import open_source


def first_batch(url: str, split: str = "train", n: int = 4) -> dict:
    return next(iter(epoch_loader(url, split=split, batch_size=n, num_workers=0, shuffle=False)))


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def test_shapes_pairs_are_label_maps_and_photos_with_the_mask_kept(shapes_pairs_url):
    manifest = Manifest.load(shapes_pairs_url)
    assert manifest.tasks == ["translate"] and manifest.target_mode == "RGB" and manifest.has_masks
    batch = first_batch(shapes_pairs_url)
    assert batch["image"].shape == batch["target"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 32, 32)
    for i, key in enumerate(batch["key"]):
        photo, mask = render_shapes(int(key.split("_")[1]), 0, 32)
        assert np.array_equal(to_uint8(batch["target"][i]), photo)  # B: the photo itself
        assert np.array_equal(to_uint8(batch["image"][i]), LABEL_COLOURS[mask])  # A: its mask in colour
        assert np.array_equal(batch["mask"][i].numpy(), mask)


def test_shapes_pairs_the_other_way_translate_photos_to_label_maps():
    source = open_source("builtin:shapes", size=16, pairs="image", direction="BtoA")
    sample = source.load("train", 0, 3)
    photo, mask = render_shapes(3, 0, 16)
    assert np.array_equal(sample.image, photo) and np.array_equal(sample.target, LABEL_COLOURS[mask])


def write_pair_folders(root, names=("a", "b", "c", "d"), unmatched="e"):
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i, name in enumerate(names):
        Image.new("RGB", (40, 40), (10 * i, 200, 0)).save(root / "A" / f"{name}.png")
        Image.new("RGB", (80, 60), (0, 0, 20 * i + 50)).save(root / "B" / f"{name}.jpg")  # another size and type
    Image.new("RGB", (40, 40)).save(root / "A" / f"{unmatched}.png")  # no B: left out


def test_pair_folders_are_matched_by_name_and_found_by_auto(tmp_path, caplog):
    write_pair_folders(tmp_path / "src")
    manifest = write_shard_set(str(tmp_path / "src"), str(tmp_path / "shards"), heldout=1, size=16)
    assert manifest.tasks == ["translate"] and manifest.target_mode == "RGB" and not manifest.has_masks
    assert manifest.samples("train") == 3 and "1 A image(s) without a B image" in caplog.text
    batch = first_batch(str(tmp_path / "shards"), n=3)
    # A is green-dominant, B blue-only: each sample's target is its own B, resized from 80x60.
    assert (batch["image"][:, 1] > 0.5).all() and (batch["target"][:, 2] > -0.7).all()
    assert (batch["target"][:, :2] < -0.99).all() and batch["target"].shape == (3, 3, 16, 16)


def test_greyscale_b_has_one_channel_and_btoa_swaps_the_folders(tmp_path):
    write_pair_folders(tmp_path / "src")
    write_shard_set(str(tmp_path / "src"), str(tmp_path / "shards"), heldout=1, size=16, layout="pairs",
                    direction="BtoA", target_mode="L")
    assert Manifest.load(str(tmp_path / "shards")).target_mode == "L"
    batch = first_batch(str(tmp_path / "shards"), n=3)
    assert batch["target"].shape == (3, 1, 16, 16)
    assert (batch["image"][:, 0] < -0.99).all() and (batch["image"][:, 2] > -0.7).all()  # A is now the blue B


def test_pix2pix_files_keep_b_as_an_image_when_asked(tmp_path, capsys):
    (tmp_path / "src").mkdir()
    pair = np.zeros((20, 40, 3), np.uint8)
    pair[:, :20] = (255, 0, 0)
    pair[:, 20:] = (0, 0, 255)
    for i in range(3):
        Image.fromarray(pair).save(tmp_path / "src" / f"{i}.png")
    assert main(["shard", str(tmp_path / "src"), str(tmp_path / "shards"), "--layout", "pix2pix", "--pairs",
                 "image", "--heldout", "1", "--size", "16"]) == 0
    assert "train on it: gandist train task=translate" in capsys.readouterr().out
    batch = first_batch(str(tmp_path / "shards"), n=2)
    assert torch.allclose(batch["image"][:, 0], torch.ones(2, 16, 16))  # the left half, red
    assert torch.allclose(batch["target"][:, 2], torch.ones(2, 16, 16))  # the right half, blue


@pytest.mark.parametrize("kwargs, needle", [
    ({"layout": "pairs", "pairs": "mask"}, "for masks use --layout masks"),
    ({"layout": "images", "pairs": "image"}, "--pairs image is for --layout pix2pix or pairs"),
    ({"layout": "pix2pix"}, "or keep B as an image with --pairs image"),
    ({"layout": "pairs", "target_mode": "CMYK"}, "--target-mode 'CMYK' is not one of RGB, L, RGBA"),
])
def test_pair_options_that_do_not_fit_are_refused_with_the_fix(tmp_path, kwargs, needle):
    write_pair_folders(tmp_path / "src")
    with pytest.raises(ValueError, match=needle):
        open_source(str(tmp_path / "src"), **kwargs)
    assert not (tmp_path / "shards").exists()


def test_builtin_sources_take_pairs_only_where_they_mean_something():
    with pytest.raises(ValueError, match="use builtin:shapes --pairs image"):
        open_source("builtin:digits", pairs="image")
    with pytest.raises(ValueError, match="has masks already"):
        open_source("builtin:shapes", pairs="mask")
