"""ADA's augmentation pipeline ("bgc" and its parts) and the ramp of its probability."""

from __future__ import annotations

import math

import pytest
import torch

from gandist.train.ada_augment import BLIT, COLOR, GEOM, _Draws, ada_augment, color_matrix, expand, geometric_inverse
from gandist.train.diffaugment import Augmenter

CPU = torch.device("cpu")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def draws(n: int, seed: int = 0) -> _Draws:
    return _Draws(n, seeded(seed), CPU)


def test_group_names_are_adas_and_ops_run_in_adas_order():
    assert expand(["bgc"]) == BLIT + GEOM + COLOR == (
        "xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
        "brightness", "contrast", "lumaflip", "hue", "saturation")
    assert expand(["cutout", "geom", "xflip"]) == ("xflip",) + GEOM + ("cutout",)


def test_probability_zero_is_the_identity_and_the_blit_ops_move_whole_pixels():
    x = torch.rand(16, 3, 16, 16, generator=seeded(0)) * 2 - 1
    # ADA resamples at p = 0 too: the identity up to float rounding of the grid.
    assert (ada_augment(x, ["bgc", "cutout"], 0.0, seeded(1)) - x).abs().max() < 1e-5
    out = ada_augment(x, ["blit"], 1.0, seeded(1))
    values = x.flatten().sort().values
    at = torch.searchsorted(values, out.flatten()).clamp(1, len(values) - 1)
    nearest = torch.minimum((values[at] - out.flatten()).abs(), (values[at - 1] - out.flatten()).abs())
    assert nearest.max() < 1e-5  # every pixel an input pixel (up to the grid's float rounding)
    assert sum(not torch.equal(o, i) for o, i in zip(out, x)) >= 12  # 1 - (1/2 x 1/4 x ~0) stay put


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_half_precision_copy_gets_the_same_transform(dtype):
    x = (torch.rand(4, 3, 64, 64, generator=seeded(0)) * 2 - 1).to(dtype)
    ops = ["bgc", "cutout"]
    assert torch.equal(ada_augment(x, ops, 1.0, seeded(2)), ada_augment(x.float(), ops, 1.0, seeded(2)).to(dtype))


def test_geometric_draws_follow_adas_distributions_and_p_per_image():
    n = 4000
    log2_scale = -torch.log2(geometric_inverse(["scale"], 1.0, draws(n), (32, 32))[:, 0, 0])
    assert log2_scale.std().item() == pytest.approx(0.2, rel=0.05)  # lognormal, base 2, std 0.2
    shift = -geometric_inverse(["xint"], 1.0, draws(n), (32, 32))[:, :2, 2]
    assert shift.abs().max().item() == 4 and torch.equal(shift, shift.round())  # whole pixels, up to 32/8
    angle = torch.atan2(geometric_inverse(["rotate"], 1.0, draws(n), (32, 32))[:, 1, 0],
                        geometric_inverse(["rotate"], 1.0, draws(n), (32, 32))[:, 0, 0])
    assert angle.abs().max().item() > 0.99 * math.pi  # any angle (two uniform +-180 rotations)
    applied = (geometric_inverse(["scale"], 0.3, draws(n), (32, 32))[:, 0, 0] != 1).float().mean().item()
    assert applied == pytest.approx(0.3, abs=0.03)
    rotated = (geometric_inverse(["rotate"], 0.3, draws(n), (32, 32))[:, 0, 1] != 0).float().mean().item()
    assert rotated == pytest.approx(0.3, abs=0.03)  # before or after aniso: p in all


def test_colour_ops_keep_grey_grey_and_follow_adas_strengths():
    n = 4000
    grey = torch.tensor([0.3, 0.3, 0.3, 1.0])
    m = color_matrix(["hue", "saturation"], 1.0, draws(n))
    out = m @ grey
    assert torch.allclose(out[:, :3], grey[:3].expand(n, 3), atol=1e-6)  # about the luma axis
    brightness = color_matrix(["brightness"], 1.0, draws(n))[:, 0, 3]
    assert brightness.std().item() == pytest.approx(0.2, rel=0.05)
    contrast = torch.log2(color_matrix(["contrast"], 1.0, draws(n))[:, 0, 0])
    assert contrast.std().item() == pytest.approx(0.5, rel=0.05)
    flipped = color_matrix(["lumaflip"], 1.0, draws(n)) @ grey
    assert sorted(set(flipped[:, 0].round(decimals=5).tolist())) == pytest.approx([-0.3, 0.3])  # reflected, or kept


def test_the_pipeline_is_twice_differentiable_for_the_penalties_through_it():
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    fn = lambda t: ada_augment(t, ["bgc", "cutout"], 1.0, seeded(0))  # the same draws every call
    assert torch.autograd.gradcheck(fn, (x,), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (x,), fast_mode=True)


def test_r3gan_colour_multiplier_halves_the_colour_ops_probability():
    applied = (color_matrix(["brightness"], 0.5 * 0.8, draws(4000))[:, 0, 3] != 0).float().mean().item()
    assert applied == pytest.approx(0.4, abs=0.03)


def test_augmenter_picks_adas_pipeline_for_adas_ops_and_ramps_p_on_a_cosine():
    x = torch.rand(4, 3, 8, 8)
    torch.manual_seed(0)
    via_augmenter = Augmenter(["bgc", "cutout"], 1.0)(x)
    torch.manual_seed(0)
    assert torch.equal(via_augmenter, ada_augment(x, ["bgc", "cutout"], 1.0))
    ramp = Augmenter(["bgc"], 0.55, ramp_kimg=20000)  # R3GAN CIFAR-10: 0 -> 0.55 over 2e7 images
    values = []
    for seen in (0, 5_000_000, 10_000_000, 20_000_000, 30_000_000):
        ramp.follow(seen)
        values.append(ramp.p)
    assert values == pytest.approx([0.0, 0.55 * (1 - math.cos(math.pi / 4)) / 2, 0.275, 0.55, 0.55])
    fixed = Augmenter(["bgc"], 0.3)
    fixed.follow(10**9)
    assert fixed.p == 0.3
