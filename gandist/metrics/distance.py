"""Distances between a fixed set of real image features and each set of generated ones: the
Fréchet distance (FID's formula) and the kernel distance (KID's unbiased polynomial-kernel
MMD), both computed by torchmetrics' own FID and KID estimators.

The features come in already extracted (``gandist.metrics.features``) and gathered from every
rank in rank order, so torchmetrics sees them through an identity "extractor" and never syncs
across processes itself (only rank 0 computes). On Inception-v3 pool3 features the distances
are FID and KID; on other features they are not, and the tags say so. Everything runs in
float64 on the features' device.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

KID_SUBSETS = 50
KID_SUBSET_SIZE = 1000  # KID's usual size; smaller feature sets use all their vectors


def check_features(features: Tensor) -> Tensor:
    if features.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(features.shape)}")
    if not torch.isfinite(features).all():
        raise ValueError("features contain NaN or inf; the images fed to the extractor were not finite")
    return features


class Precomputed(nn.Module):
    """Hands torchmetrics features that are already extracted (its ``feature`` module)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, features: Tensor) -> Tensor:
        return features


class Distances:
    """FID's and KID's estimators between one real feature set, taken in once, and each
    generated set passed to ``__call__``."""

    def __init__(self, real: Tensor, kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
                 seed: int = 0) -> None:
        # torchmetrics is imported where it is used: it brings scipy.signal along, about 0.9 s
        # at the start of every process that imports the training loop (each Ray worker).
        from torchmetrics.image.fid import FrechetInceptionDistance

        real = check_features(real).double()
        if real.shape[0] < 2:
            raise ValueError(f"need at least 2 real feature vectors, got {real.shape[0]}")
        self.dim, self.count, self.seed = real.shape[1], real.shape[0], seed
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        # sync_on_compute=False: only rank 0 calls compute, on features it already gathered.
        self.fid = FrechetInceptionDistance(feature=Precomputed(self.dim), reset_real_features=False,
                                            sync_on_compute=False).to(real.device)
        self.fid.update(real, real=True)
        self.real = real

    def __call__(self, fake: Tensor) -> tuple[float, float]:
        """(Fréchet distance, kernel distance) of ``fake`` [M, D] to the real set."""
        fake = check_features(fake).double()
        if fake.shape[1] != self.dim:
            raise ValueError(f"feature sizes differ: {fake.shape[1]} generated vs {self.dim} real")
        if fake.shape[0] < 2:
            raise ValueError(f"need at least 2 generated feature vectors, got {fake.shape[0]}")
        self.fid.reset()  # keeps the real side
        self.fid.update(fake, real=False)
        fd = max(float(self.fid.compute()), 0.0)  # exactly 0 can come out a rounding below it
        return fd, self._kernel(fake)

    def _kernel(self, fake: Tensor) -> float:
        from torchmetrics.image.kid import KernelInceptionDistance

        size = min(self.kid_subset_size, self.count, fake.shape[0])
        with warnings.catch_warnings():  # that it keeps the features: that is what is wanted here
            warnings.filterwarnings("ignore", message=".*will save all extracted features")
            kid = KernelInceptionDistance(feature=Precomputed(self.dim), subsets=self.kid_subsets,
                                          subset_size=size, sync_on_compute=False).to(fake.device)
        kid.update(self.real, real=True)
        kid.update(fake, real=False)
        # KID draws its subsets from the global RNG: seeded here, and training's RNG left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            mean, _ = kid.compute()
        return float(mean)
