"""The Fréchet and kernel distances (torchmetrics' FID and KID estimators) against the same
formulas worked by hand in numpy and scipy, and their defining properties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from gandist.metrics.distance import Distances


def gaussian(n: int, d: int, shift: float = 0.0, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale + shift


def frechet_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """FID's formula as its reference implementation writes it: scipy's matrix square root."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def kernel_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3 over the whole sets (KID with one subset)."""
    m, d = a.shape
    kxx, kyy, kxy = ((a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2 * kxy.mean())


def test_torchmetrics_fid_and_kid_match_the_formulas_computed_by_hand_on_fixed_features():
    real = gaussian(300, 12, seed=0)
    fake = gaussian(300, 12, shift=0.3, scale=1.5, seed=1)
    fd, kd = Distances(real.float(), kid_subsets=1, kid_subset_size=300)(fake.float())
    r, f = real.float().double().numpy(), fake.float().double().numpy()
    assert fd == pytest.approx(frechet_by_hand(r, f), rel=1e-6)
    assert kd == pytest.approx(kernel_by_hand(r, f), rel=1e-6)  # one subset of all: a permutation only
    assert fd > 1.0 and kd > 0.01  # not two zeros agreeing


def test_the_real_side_is_kept_across_calls_and_the_kernel_distance_is_seeded():
    real = gaussian(200, 8)
    distances = Distances(real)
    a, b = gaussian(200, 8, shift=0.5, seed=1), gaussian(200, 8, shift=1.0, seed=2)
    first = distances(a)
    assert distances(b) != first and distances(a) == first  # the same fake set, the same scores
    torch.manual_seed(7)
    state = torch.get_rng_state()
    distances(a)
    assert torch.equal(torch.get_rng_state(), state)  # training's RNG is not drawn from


def test_distance_of_a_set_with_itself_is_zero_and_grows_with_noise():
    x = gaussian(500, 16)
    distances = Distances(x)
    assert distances(x)[0] == pytest.approx(0.0, abs=1e-8)
    noise = gaussian(500, 16, seed=1)
    values = [distances(x + s * noise)[0] for s in (0.1, 0.5, 1.0)]
    assert 0 < values[0] < values[1] < values[2]


def test_kernel_distance_is_near_zero_for_the_same_distribution_and_grows_with_a_shift():
    distances = Distances(gaussian(400, 8, seed=0), kid_subsets=20, kid_subset_size=200)
    same = distances(gaussian(400, 8, seed=1))[1]
    shifted = [distances(gaussian(400, 8, shift=s, seed=1))[1] for s in (0.5, 1.0)]
    assert abs(same) < 0.02
    assert same < shifted[0] < shifted[1]


def test_bad_features_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="sizes differ"):
        Distances(gaussian(10, 3))(gaussian(10, 4))
    bad = gaussian(10, 3)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        Distances(bad)
    with pytest.raises(ValueError, match="NaN or inf"):
        Distances(gaussian(10, 3))(bad)
    with pytest.raises(ValueError, match="at least 2"):
        Distances(gaussian(1, 3))
    with pytest.raises(ValueError, match="at least 2"):
        Distances(gaussian(5, 3))(gaussian(1, 3))
