import numpy as np
import pytest
from PIL import Image

from gandist.data.layouts import open_source
from gandist.data.sources import fit_square


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


def test_class_folders_keep_the_label(tmp_path):
    for name, colour in (("cats", (200, 0, 0)), ("dogs", (0, 0, 200))):
        (tmp_path / name / "deeper").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 20), colour).save(tmp_path / name / "deeper" / f"{i}.png")
    source = open_source(str(tmp_path), size=8, layout="classes")
    assert source.info.classes == source.info.labels == ["cats", "dogs"]
    plan = source.plan(samples=None, heldout=0)
    samples = list(source.samples("train", plan["train"]))
    assert sorted(s.label for s in samples) == [0, 0, 0, 1, 1, 1]
    assert all((s.image[0, 0, 0] > 100) == (s.label == 0) for s in samples)


def write_pair(root, stem: str, size=(24, 16), mode="L", top_class=1, bottom_class=2):
    image = Image.new("RGB", size, (10, 10, 10))
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[: size[1] // 2] = top_class
    mask[size[1] // 2:] = bottom_class
    image.save(root / "images" / f"{stem}.jpg")
    m = Image.fromarray(mask, mode)
    if mode == "P":  # a palette PNG as annotation tools write them: indices are the class ids
        m.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    m.save(root / "masks" / f"{stem}.png")


def test_image_and_mask_folders_matched_by_stem(tmp_path, caplog):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    write_pair(tmp_path, "a")
    write_pair(tmp_path, "b", mode="P")
    write_pair(tmp_path, "bad", bottom_class=7)  # a class id beyond --classes: skipped, named
    Image.new("RGB", (8, 8)).save(tmp_path / "images" / "lonely.png")  # no mask: left out
    with pytest.raises(ValueError, match="--classes"):
        open_source(str(tmp_path), size=8)
    source = open_source(str(tmp_path), size=8, classes=["background", "sky", "ground"])
    assert source.info.has_masks and source.info.tasks == ["generate", "segment"]
    plan = source.plan(samples=None, heldout=0)
    samples = list(source.samples("train", plan["train"]))
    assert len(samples) == 2 and source.skipped == 1
    assert "class id 7" in caplog.text and "lonely.png" in caplog.text
    for s in samples:  # 24x16 scaled to 12x8, centre crop 8x8: top half sky, bottom half ground
        assert s.mask.shape == (8, 8)
        assert (s.mask[:4] == 1).all() and (s.mask[4:] == 2).all()


def test_strict_stops_at_the_first_unusable_file(tmp_path):
    (tmp_path / "ok.png").write_bytes(b"")
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"garbage")
    from gandist.data.sources import SourceError

    source = open_source(str(tmp_path), size=8, strict=True)
    plan = source.plan(samples=None, heldout=0)
    with pytest.raises(SourceError, match="broken.png"):
        list(source.samples("train", plan["train"]))


PALETTE_FILE = "# name R G B\nbackground 0 0 0\nwall 200 30 30\nwindow 30 30 200\n"


def pix2pix_pair(left_is_image: bool, size: int = 32) -> Image.Image:
    """A photo-like half and a colour-mask half (top wall, bottom window), JPEG-compressed."""
    photo = Image.new("RGB", (size, size), (120, 110, 100))
    mask = np.zeros((size, size, 3), np.uint8)
    mask[: size // 2] = (200, 30, 30)
    mask[size // 2:] = (30, 30, 200)
    pair = Image.new("RGB", (2 * size, size))
    halves = (photo, Image.fromarray(mask)) if left_is_image else (Image.fromarray(mask), photo)
    pair.paste(halves[0], (0, 0))
    pair.paste(halves[1], (size, 0))
    return pair


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
def test_pix2pix_pairs_split_and_colour_masks_mapped(tmp_path, direction):
    from gandist.data.sources import parse_classes

    (tmp_path / "classes.txt").write_text(PALETTE_FILE)
    classes = parse_classes(str(tmp_path / "classes.txt"))
    assert classes.names == ["background", "wall", "window"]
    for i in range(3):  # JPEG blurs the colours; the nearest class colour still wins
        pix2pix_pair(left_is_image=direction == "AtoB").save(tmp_path / f"{i}.jpg", quality=80)
    source = open_source(str(tmp_path), size=16, layout="pix2pix", classes=classes, direction=direction)
    plan = source.plan(samples=None, heldout=0)
    samples = list(source.samples("train", plan["train"]))
    assert len(samples) == 3
    for s in samples:
        assert s.image.shape == (16, 16, 3) and abs(int(s.image[8, 8, 0]) - 120) < 12
        assert (s.mask[:8] == 1).all() and (s.mask[8:] == 2).all()


def test_pix2pix_needs_colours():
    with pytest.raises(ValueError, match="name R G B"):
        open_source(".", layout="pix2pix", classes=["a", "b"])
