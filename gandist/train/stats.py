"""Statistics any code records on any rank, reduced across ranks at fixed intervals."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


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
        means = torch.stack([self.sums[k] / self.counts[k] for k in keys])
        if distributed():
            dist.all_reduce(means)
            means /= dist.get_world_size()
        self.sums.clear()
        self.counts.clear()
        return dict(zip(keys, means.tolist()))


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum a tensor over ranks (in place), a no-op in one process."""
    if distributed():
        dist.all_reduce(t)
    return t


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (picklable objects)."""
    if not distributed():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def check_identical_across_ranks(*modules: torch.nn.Module) -> None:
    """Raise if any parameter or buffer differs from rank 0's (checked after setup)."""
    if not distributed():
        return
    for module in modules:
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            other = t.detach().clone()
            dist.broadcast(other, src=0)
            if not torch.equal(other, t.detach()):
                raise RuntimeError(
                    f"rank {dist.get_rank()} holds a different {type(module).__name__}.{name} than rank 0 "
                    "after setup; every rank must start from the same weights"
                )
