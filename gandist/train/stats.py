"""Statistics any code records on any rank, reduced across ranks at fixed intervals."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Union

import numpy as np
import torch
from torch import Tensor

from gandist.collectives import all_reduce_sum

# A value, or (value, weight) for a weighted mean: e.g. an accuracy over however many pixels
# a step selected, weighted by that count (weight 0: the step had nothing to measure).
Value = Union[Tensor, tuple[Tensor, Tensor]]


class Stats:
    """Running (weighted) means of scalars; ``reduce`` takes them over steps and ranks.

    Every step records about a dozen values, so recording costs the host as little as it
    can: a step's tensors are added to their sums in one fused call, their counts are kept
    on the host, and host figures (``add_host``:
    seconds, scheduled rates) are summed on the host. All sums are float64 of the values as
    recorded (host figures as float32, as the tensors they once were), in the order recorded,
    so the means are exactly those of per-value tensor sums. A key is always weighted or
    never, and always a tensor or always a host figure."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums: dict[str, Tensor] = defaultdict(self._zero)
        self.counts: Counter[str] = Counter()  # steps recorded with each key
        self.weighted: dict[str, list[Tensor]] = {}  # key -> [sum of value x weight, sum of weights]
        self.host: dict[str, list[float]] = {}  # key -> [sum, count]

    def _zero(self) -> Tensor:
        return torch.zeros((), device=self.device, dtype=torch.float64)

    @torch.no_grad()
    def add(self, values: dict[str, Value]) -> None:
        plain = {}
        for key, value in values.items():
            if isinstance(value, tuple):
                value, weight = value
                weight = weight.detach().to(torch.float64)
                if key not in self.weighted:
                    self.weighted[key] = [self._zero(), self._zero()]
                self.weighted[key][0] += value.detach().to(torch.float64) * weight
                self.weighted[key][1] += weight
            else:
                plain[key] = value
        if not plain:
            return
        torch._foreach_add_([self.sums[key] for key in plain], list(plain.values()))
        self.counts.update(plain.keys())

    def add_host(self, values: dict[str, float]) -> None:
        """Figures the host already holds, as float32 values (what ``torch.tensor`` made of
        them when they were recorded as tensors: the logged means are unchanged)."""
        for key, value in values.items():
            value = float(np.float32(value))
            entry = self.host.get(key)
            if entry is None:
                self.host[key] = [value, 1]
            else:
                entry[0] += value
                entry[1] += 1

    def reduce(self) -> dict[str, float]:
        """Means over the steps since the last reduce and all ranks (one all-reduce); a key with
        no weight anywhere in the window is left out. All ranks call it."""
        keys = sorted([*self.counts, *self.weighted, *self.host])  # same keys on every rank: the same code recorded them
        if not keys:
            return {}
        rows = {k: torch.stack([self.sums[k], torch.tensor(float(n), dtype=torch.float64, device=self.device)])
                for k, n in self.counts.items()}
        rows.update({k: torch.stack(pair) for k, pair in self.weighted.items()})
        if self.host:
            host = torch.tensor(list(self.host.values()), dtype=torch.float64, device=self.device)
            rows.update(zip(self.host, host.unbind()))
        totals = all_reduce_sum(torch.stack([rows[k] for k in keys]))
        self.sums.clear()
        self.counts.clear()
        self.weighted.clear()
        self.host.clear()
        return {k: s / w for k, (s, w) in zip(keys, totals.tolist()) if w > 0}
