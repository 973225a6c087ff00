"""Statistics any code records on any rank, reduced across ranks at fixed intervals."""

from __future__ import annotations

from collections import defaultdict
from typing import Union

import torch
from torch import Tensor

from gandist.collectives import all_reduce_sum

# A value, or (value, weight) for a weighted mean: e.g. an accuracy over however many pixels
# a step selected, weighted by that count (weight 0: the step had nothing to measure).
Value = Union[Tensor, tuple[Tensor, Tensor]]


class Stats:
    """Running (weighted) means of scalar tensors; ``reduce`` takes them over steps and ranks."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, Tensor] = defaultdict(self._zero)
        self.weights: dict[str, Tensor] = defaultdict(self._zero)

    def _zero(self) -> Tensor:
        return torch.zeros((), device=self.device, dtype=torch.float64)

    def add(self, values: dict[str, Value]) -> None:
        for key, value in values.items():
            value, weight = value if isinstance(value, tuple) else (value, None)
            if weight is None:
                self.sums[key] += value.detach().to(torch.float64)
                self.weights[key] += 1
            else:
                weight = weight.detach().to(torch.float64)
                self.sums[key] += value.detach().to(torch.float64) * weight
                self.weights[key] += weight

    def reduce(self) -> dict[str, float]:
        """Means over the steps since the last reduce and all ranks (one all-reduce); a key with
        no weight anywhere in the window is left out. All ranks call it."""
        keys = sorted(self.sums)  # same keys on every rank: the same code recorded them
        if not keys:
            return {}
        totals = all_reduce_sum(torch.stack([torch.stack([self.sums[k], self.weights[k]]) for k in keys]))
        self.sums.clear()
        self.weights.clear()
        return {k: s / w for k, (s, w) in zip(keys, totals.tolist()) if w > 0}
