import numpy as np
import pytest
from PIL import Image

from gandist.data.sources import fit_square, open_source


def test_digits_have_masks_labels_and_disjoint_splits():
    source = open_source("builtin:digits", size=32, seed=0)
    assert source.info.classes == ["background"] + [str(d) for d in range(10)]
    plan = source.plan(samples=None, heldout=50)
    assert len(plan["heldout"]) == 50 and len(plan["train"]) == 1797 - 50
    assert not set(plan["train"]) & set(plan["heldout"])
    sample = next(source.samples("train", plan["train"][:1]))
    assert sample.image.shape == (32, 32, 3) and sample.mask.shape == (32, 32)
    assert set(np.unique(sample.mask).tolist()) == {0, sample.label + 1}


def test_digits_refuse_more_samples_than_they_have():
    with pytest.raises(ValueError, match="--samples 5000"):
        open_source("builtin:digits").plan(samples=5000, heldout=10)


def test_folder_reads_nested_images_resizes_and_skips_corrupt(tmp_path, caplog):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (80, 40), (255, 0, 0)).save(tmp_path / "one.png")
    Image.new("RGB", (40, 90), (0, 255, 0)).save(tmp_path / "a" / "two.JPG")
    Image.new("RGB", (50, 50), (0, 0, 255)).save(tmp_path / "a" / "b" / "three.webp")
    (tmp_path / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_source(str(tmp_path), size=16, seed=0)
    assert source.info.tasks == ["generate"] and not source.info.has_masks
    plan = source.plan(samples=None, heldout=1)
    assert len(plan["train"]) + len(plan["heldout"]) == 4
    samples = list(source.samples("train", plan["train"])) + list(source.samples("heldout", plan["heldout"]))
    assert len(samples) == 3 and source.skipped == 1
    assert "broken.png" in caplog.text
    assert all(s.image.shape == (16, 16, 3) for s in samples)


def test_fit_square_scales_short_side_then_centre_crops():
    image = Image.new("RGB", (100, 50))
    image.paste((255, 255, 255), (0, 0, 25, 50))  # white left quarter is cropped away
    out = fit_square(image, 20)
    assert out.size == (20, 20)
    assert np.asarray(out).max() < 40


def test_unknown_source_is_named():
    with pytest.raises(ValueError, match="builtin:cats"):
        open_source("builtin:cats")
    with pytest.raises(ValueError, match="/no/such/folder"):
        open_source("/no/such/folder")
