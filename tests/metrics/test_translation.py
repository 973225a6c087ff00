import math

import pytest
import torch

from gandist.metrics.translation import pair_scores


def test_identical_images_score_perfectly_and_noise_scores_worse():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 32, 32, generator=gen)
    same = pair_scores(target, target)
    assert torch.all(same[:, 0] == 0) and torch.allclose(same[:, 2], torch.ones(3))
    assert all(math.isinf(v) for v in same[:, 1].tolist())
    slightly = pair_scores((target + 0.02 * torch.randn(3, 3, 32, 32, generator=gen)).clamp(0, 1), target)
    badly = pair_scores(torch.rand(3, 3, 32, 32, generator=gen), target)
    assert (slightly[:, 0] < badly[:, 0]).all() and (slightly[:, 1] > badly[:, 1]).all()
    assert (slightly[:, 2] > badly[:, 2]).all()


def test_psnr_is_per_image_and_in_decibels_of_a_unit_range():
    target = torch.zeros(2, 1, 16, 16)
    fake = torch.stack([torch.full((1, 16, 16), 0.1), torch.full((1, 16, 16), 0.01)])
    scores = pair_scores(fake, target)
    assert scores[:, 1].tolist() == pytest.approx([20.0, 40.0], abs=1e-3)  # 10 log10(1 / mse)
    assert scores[:, 0].tolist() == pytest.approx([0.1, 0.01])


def test_shapes_must_match():
    with pytest.raises(ValueError, match="differ in shape"):
        pair_scores(torch.zeros(1, 3, 16, 16), torch.zeros(1, 1, 16, 16))
