"""Flips and crops move an image and its mask together, keep masks to real classes, and
repeat exactly from the same generator state."""

import pytest
import torch

from gandist.train.augment import augment

COLOURS = torch.tensor([[-1.0, -1.0, -1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])


def batch_of_blocks(n: int = 16, size: int = 16) -> dict:
    """Masks of random blocks, and images that are each mask's class colours (so image and
    mask must move together to stay consistent)."""
    g = torch.Generator().manual_seed(1)
    mask = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        for c in (1, 2, 3):
            y, x = torch.randint(0, size - 4, (2,), generator=g).tolist()
            mask[i, y:y + 5, x:x + 3] = c  # asymmetric blocks: a flip changes them
    return {"image": COLOURS[mask].permute(0, 3, 1, 2).contiguous(), "mask": mask, "key": list(range(n))}


def colours_match(b: dict, tolerance: float = 1e-6) -> torch.Tensor:
    """Per pixel: is the image the colour of its mask's class?"""
    return ((b["image"] - COLOURS[b["mask"]].permute(0, 3, 1, 2)).abs() <= tolerance).all(dim=1)


@pytest.mark.parametrize("flips", ["horizontal", "both"])
def test_flips_move_image_and_mask_together_and_are_exact(flips):
    b = batch_of_blocks()
    torch.manual_seed(0)
    out = augment(b, flips, 1.0)
    assert colours_match(out).all()
    flipped = [i for i in range(16) if not torch.equal(out["mask"][i], b["mask"][i])]
    assert 0 < len(flipped) < 16  # a coin per sample, not per batch
    for i in flipped:
        m = b["mask"][i]
        variants = [m.flip(1)] + ([m.flip(0), m.flip(0).flip(1)] if flips == "both" else [])
        assert any(torch.equal(out["mask"][i], v) for v in variants)
    assert out["key"] == b["key"] and out["mask"].dtype == torch.long


def test_crops_keep_real_classes_and_stay_aligned():
    b = batch_of_blocks(size=32)
    torch.manual_seed(0)
    out = augment(b, "none", 0.5)
    assert out["image"].shape == b["image"].shape and out["mask"].shape == b["mask"].shape
    assert out["mask"].dtype == torch.long and set(out["mask"].unique().tolist()) <= {0, 1, 2, 3}
    assert not torch.equal(out["mask"], b["mask"])
    # Bilinear resampling blurs class edges; everywhere else image and mask still agree.
    assert colours_match(out, tolerance=1e-4).float().mean() > 0.8


def test_the_same_generator_state_gives_the_same_augmentation():
    b = batch_of_blocks()
    torch.manual_seed(5)
    first = augment(b, "both", 0.7)
    torch.manual_seed(5)
    again = augment(b, "both", 0.7)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])


def test_batches_without_masks_are_augmented_too():
    image = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    torch.manual_seed(0)
    out = augment({"image": image}, "horizontal", 1.0)
    assert "mask" not in out
    assert all(torch.equal(o, i) or torch.equal(o, i.flip(-1)) for o, i in zip(out["image"], image))


def test_a_translation_pairs_b_image_moves_exactly_as_its_a():
    """The B image (target) of a pair is flipped and cropped with its A's draws: with B = A,
    they stay equal through both."""
    b = batch_of_blocks(size=32)
    b["target"] = b["image"].clone()
    torch.manual_seed(3)
    out = augment(b, "both", 0.6)
    assert not torch.equal(out["image"], b["image"]) and torch.equal(out["target"], out["image"])
    assert colours_match(out, tolerance=1e-4).float().mean() > 0.8


PIX2PIX_LOAD = 286 / 256  # pix2pix's load_size / crop_size


def test_jitter_resizes_up_and_crops_back_at_one_place_for_a_and_b():
    """pix2pix's resize_and_crop: A and B (here B = A) resized to round(1.1171875 x 32) = 36 and
    cropped at the same random place, every offset in [0, 4] reachable."""
    import torch.nn.functional as F

    b = batch_of_blocks(n=64, size=32)
    b["target"] = b["image"].clone()
    torch.manual_seed(0)
    out = augment(b, "none", 1.0, PIX2PIX_LOAD)
    assert out["image"].shape == b["image"].shape and torch.equal(out["target"], out["image"])
    big = F.interpolate(b["image"], size=(36, 36), mode="bicubic", align_corners=False).clamp(-1, 1)
    found = []
    for i in range(64):
        hits = [(y, x) for y in range(5) for x in range(5) if torch.equal(out["image"][i], big[i, :, y:y + 32, x:x + 32])]
        assert hits, i
        found += hits
    rows, cols = {y for y, _ in found}, {x for _, x in found}
    assert rows == cols == {0, 1, 2, 3, 4}  # both edges included, as random.randint(0, load - crop)
    assert out["image"].min() >= -1 and out["image"].max() <= 1


def test_jitter_moves_the_mask_with_its_image_by_nearest_resize():
    b = batch_of_blocks(n=16, size=32)
    torch.manual_seed(1)
    out = augment(b, "horizontal", 1.0, PIX2PIX_LOAD)
    assert out["mask"].dtype == torch.long and set(out["mask"].unique().tolist()) <= {0, 1, 2, 3}
    assert not torch.equal(out["mask"], b["mask"])
    # Bicubic blurs the image's class edges; elsewhere image and mask still agree.
    assert colours_match(out, tolerance=1e-3).float().mean() > 0.8


def test_jitter_off_at_load_scale_one_and_repeatable():
    b = batch_of_blocks()
    torch.manual_seed(2)
    assert torch.equal(augment(b, "none", 1.0, 1.0)["image"], b["image"])
    torch.manual_seed(2)
    first = augment(b, "both", 1.0, PIX2PIX_LOAD)
    torch.manual_seed(2)
    again = augment(b, "both", 1.0, PIX2PIX_LOAD)
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["mask"], again["mask"])
