"""DiffAugment's ops and ADA's controller of their probability."""

from __future__ import annotations

import pytest
import torch

from gandist.config import AUGMENT_OPS
from gandist.train.diffaugment import DRAWS, AdaController, Augmenter, cutout, diff_augment, translation

ALL = ["color", "translation", "cutout"]


def test_the_config_accepts_exactly_the_ops_diffaugment_and_ada_have():
    from gandist.config.choices import DIFFAUGMENT_OPS
    from gandist.train.ada_augment import GROUPS, ORDER

    assert set(DIFFAUGMENT_OPS) == set(DRAWS) == set(ALL)
    assert set(AUGMENT_OPS) == set(DRAWS) | set(ORDER) | set(GROUPS)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_the_same_seed_gives_the_same_augmentation_and_another_seed_another():
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    a, b = diff_augment(x, ALL, 1.0, seeded(3)), diff_augment(x, ALL, 1.0, seeded(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, diff_augment(x, ALL, 1.0, seeded(4)))


def test_augmentation_is_differentiable_with_respect_to_the_images():
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    # The same draws on every call (a fresh generator), so the function is deterministic.
    assert torch.autograd.gradcheck(lambda t: diff_augment(t, ALL, 1.0, seeded(0)), (x,))
    (grad,) = torch.autograd.grad(diff_augment(x, ALL, 1.0, seeded(0)).sum(), x)
    assert grad.abs().sum() > 0


def test_probability_zero_is_the_identity_and_one_changes_every_image():
    x = torch.rand(16, 3, 16, 16)
    assert torch.equal(diff_augment(x, ALL, 0.0, seeded(0)), x)
    out = diff_augment(x, ["color"], 1.0, seeded(0))
    assert all(not torch.equal(o, i) for o, i in zip(out, x))
    half = diff_augment(x, ["color"], 0.5, seeded(0))
    changed = sum(not torch.equal(o, i) for o, i in zip(half, x))
    assert 0 < changed < 16


def test_translation_moves_whole_pixels_by_at_most_an_eighth_and_fills_with_zeros():
    x = torch.zeros(32, 1, 16, 16)
    x[:, 0, 8, 8] = 1.0
    out = translation(x, torch.rand(32, 2, generator=seeded(0)))
    for image in out[:, 0]:
        ones = (image == 1).nonzero()
        assert len(ones) == 1 and set(image.unique().tolist()) == {0.0, 1.0}  # one pixel, moved whole
        dy, dx = (ones[0] - 8).tolist()
        assert abs(dy) <= 2 and abs(dx) <= 2  # 16 / 8
    assert len({tuple((im == 1).nonzero()[0].tolist()) for im in out[:, 0]}) > 5  # shifts vary


def test_cutout_zeroes_a_square_of_half_the_side_at_most():
    x = torch.ones(16, 3, 16, 16)
    out = cutout(x, torch.rand(16, 2, generator=seeded(0)))
    for image in out:
        zeros = (image[0] == 0)
        assert 0 < zeros.sum() <= 64 and torch.equal(image[0], image[2])  # the same square in every channel
        rows, cols = zeros.any(dim=1).nonzero().flatten(), zeros.any(dim=0).nonzero().flatten()
        assert zeros[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # a rectangle, clipped at edges


def test_augmenter_uses_its_current_probability():
    x = torch.rand(4, 3, 8, 8)
    aug = Augmenter(ALL, 0.0)
    assert aug(x) is x
    aug.p = 1.0
    assert not torch.equal(aug(x), x)


def test_ada_moves_p_towards_the_target_r_t_by_its_step_bounded_below_only_as_stylegan2_ada():
    augmenter = Augmenter(ALL, 0.0)
    ada = AdaController(augmenter, target=0.6, speed_kimg=1.0, interval=2, global_batch=100,
                        device=torch.device("cpu"))
    assert ada.step_size == pytest.approx(0.2)  # 100 images x 2 steps / 1,000 images
    for step, sign in ((1, 0.9), (2, 0.9)):  # D is sure of the reals: overfitting, more augmentation
        ada.observe(torch.tensor(sign))
        adjusted = ada.maybe_adjust(step)
    assert adjusted and ada.p == pytest.approx(0.2) and ada.rt == pytest.approx(0.9)
    assert augmenter.p == ada.p  # the controller moves the augmenter's own p
    for step in range(3, 11):
        ada.observe(torch.tensor(0.95))
        ada.maybe_adjust(step)
    assert ada.p == pytest.approx(1.0)
    for step in (11, 12):
        ada.observe(torch.tensor(0.95))
        ada.maybe_adjust(step)
    assert ada.p == pytest.approx(1.2)  # StyleGAN2-ADA bounds p at 0 only (p.max(0))
    for step in range(13, 37):
        ada.observe(torch.tensor(0.1))  # D unsure: less augmentation
        ada.maybe_adjust(step)
    assert ada.p == 0.0 and ada.rt == pytest.approx(0.1)


def test_ada_state_carries_p_and_the_open_window_over_a_resume():
    cpu = torch.device("cpu")
    straight = AdaController(Augmenter(ALL, 0.0), 0.6, 1.0, 4, 100, cpu)
    for step, sign in enumerate([0.9, 0.9, 0.1, 0.1, 0.9, 0.2, 0.3, 0.1], start=1):
        straight.observe(torch.tensor(sign))
        straight.maybe_adjust(step)
        if step == 6:
            saved = AdaController(Augmenter(ALL, 0.0), 0.6, 1.0, 4, 100, cpu)
            saved.load_state_dict(straight.state_dict(), rank=0)  # mid-window: 2 of 4 steps seen
    for step, sign in ((7, 0.3), (8, 0.1)):
        saved.observe(torch.tensor(sign))
        saved.maybe_adjust(step)
    assert (saved.p, saved.rt) == (straight.p, straight.rt)
    other = AdaController(Augmenter(ALL, 0.0), 0.6, 1.0, 4, 100, cpu)
    other.load_state_dict(straight.state_dict(), rank=1)
    assert other.p == straight.p and other._count == 0  # the window sum travels with rank 0 only


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_translation_and_cutout_put_every_pixel_in_the_same_place_whatever_the_image_dtype(dtype):
    # G's output under autocast is bf16 while the reals are fp32: the same draws must move both
    # alike, or D can tell real from fake by where the augmentation put the pixels (256 px: 44%
    # of pixels misplaced when the shift grid was built in bf16).
    x = torch.rand(4, 3, 256, 256, generator=seeded(0)) * 2 - 1
    low = x.to(dtype)
    for op in (translation, cutout):
        u = torch.rand(4, 2, generator=seeded(1))
        assert torch.equal(op(low, u), op(x, u).to(dtype)), op.__name__
