"""Fréchet and kernel distances against closed forms and their defining properties."""

from __future__ import annotations

import math

import pytest
import torch

from gandist.metrics.distance import Moments, frechet_distance, kernel_distance


def gaussian(n: int, d: int, shift: float = 0.0, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale + shift


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    d = 4
    a = Moments(torch.zeros(d, dtype=torch.float64), torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0])).double(), 10)
    b = Moments(torch.full((d,), 0.5, dtype=torch.float64), torch.diag(torch.tensor([4.0, 2.0, 1.0, 0.25])).double(), 10)
    s1, s2 = [1.0, 2.0, 3.0, 4.0], [4.0, 2.0, 1.0, 0.25]
    expected = d * 0.25 + sum(x + y - 2 * math.sqrt(x * y) for x, y in zip(s1, s2))
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_noise():
    x = gaussian(500, 16)
    assert frechet_distance(Moments.of(x), Moments.of(x)) == pytest.approx(0.0, abs=1e-8)
    noise = gaussian(500, 16, seed=1)
    values = [frechet_distance(Moments.of(x), Moments.of(x + s * noise)) for s in (0.1, 0.5, 1.0)]
    assert values[0] < values[1] < values[2] and values[0] > 0


def test_kernel_distance_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    same = kernel_distance(gaussian(400, 8, seed=0), gaussian(400, 8, seed=1), subsets=20, subset_size=200)
    shifted = [kernel_distance(gaussian(400, 8, seed=0), gaussian(400, 8, shift=s, seed=1), subsets=20,
                               subset_size=200) for s in (0.5, 1.0)]
    assert abs(same) < 0.02
    assert same < shifted[0] < shifted[1]


def test_bad_features_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="sizes differ"):
        frechet_distance(Moments.of(gaussian(10, 3)), Moments.of(gaussian(10, 4)))
    bad = gaussian(10, 3)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        Moments.of(bad)
    with pytest.raises(ValueError, match="at least 2"):
        kernel_distance(gaussian(1, 3), gaussian(5, 3))
