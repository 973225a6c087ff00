"""Distances between two sets of image features: Fréchet distance (FID's formula) and kernel
distance (KID's unbiased polynomial-kernel MMD).

Both run in float64 on whatever device the features are on (a GPU computes them in a fraction
of the time one CPU thread takes). Which features they are computed on is the caller's choice
(``gandist.metrics.features``):
on Inception-v3 pool3 features they are FID and KID; on other features they are not, and
the tags say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Moments:
    """Mean and covariance of a feature set, in float64."""

    mean: Tensor
    cov: Tensor
    count: int

    @classmethod
    def of(cls, features: Tensor) -> "Moments":
        x = check_features(features).to(torch.float64)
        if x.shape[0] < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {x.shape[0]}")
        return cls(x.mean(0), torch.cov(x.T), x.shape[0])


def check_features(features: Tensor) -> Tensor:
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or inf; the images fed to the extractor were not finite")
    return features


def _sqrtm_psd(m: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(m)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: Moments, b: Moments) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    tr((S_a S_b)^(1/2)) is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S_a^(1/2) S_b S_a^(1/2), which has the same spectrum and avoids a
    general (complex) matrix square root.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(f"feature sizes differ: {tuple(a.mean.shape)} vs {tuple(b.mean.shape)}")
    root_a = _sqrtm_psd(a.cov)
    middle = root_a @ b.cov @ root_a
    middle = (middle + middle.T) / 2  # symmetric up to rounding
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    diff = a.mean - b.mean
    value = diff.dot(diff) + a.cov.trace() + b.cov.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def kernel_distance(a: Tensor, b: Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> float:
    """Unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets
    of ``min(subset_size, len(a), len(b))`` vectors from each set (the KID estimator)."""
    a, b = check_features(a).to(torch.float64), check_features(b).to(torch.float64)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sizes differ: {a.shape[1]} vs {b.shape[1]}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"need at least 2 feature vectors in each set, got {a.shape[0]} and {b.shape[0]}")
    d = a.shape[1]
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros((), dtype=torch.float64, device=a.device)  # summed where the features are: one sync
    for _ in range(subsets):
        x = a[torch.randperm(a.shape[0], generator=gen)[:m]]
        y = b[torch.randperm(b.shape[0], generator=gen)[:m]]
        kxx = (x @ x.T / d + 1) ** 3
        kyy = (y @ y.T / d + 1) ** 3
        kxy = (x @ y.T / d + 1) ** 3
        within = (kxx.sum() - kxx.diag().sum() + kyy.sum() - kyy.diag().sum()) / (m * (m - 1))
        total += within - 2 * kxy.mean()
    return float(total) / subsets
