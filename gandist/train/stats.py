"""Statistics any code records on any rank, reduced across ranks at fixed intervals."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from gandist.collectives import all_reduce_mean_


class Stats:
    """Running means of scalar tensors; ``reduce`` averages them over steps and ranks."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, Tensor] = defaultdict(lambda: torch.zeros((), device=device, dtype=torch.float64))
        self.counts: dict[str, int] = defaultdict(int)

    def add(self, values: dict[str, Tensor]) -> None:
        for key, value in values.items():
            self.sums[key] += value.detach().to(torch.float64)
            self.counts[key] += 1

    def reduce(self) -> dict[str, float]:
        """Means over the steps since the last reduce, averaged over ranks. All ranks call it."""
        keys = sorted(self.sums)  # same keys on every rank: the same code recorded them
        if not keys:
            return {}
        means = all_reduce_mean_(torch.stack([self.sums[k] / self.counts[k] for k in keys]))
        self.sums.clear()
        self.counts.clear()
        return dict(zip(keys, means.tolist()))
