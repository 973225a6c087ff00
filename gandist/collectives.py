"""Collectives every rank calls together, each a no-op in one process: the only place
outside the launchers that talks to torch.distributed directly."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_mean_(t: Tensor) -> Tensor:
    """Average a tensor over ranks (in place)."""
    if distributed():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum a tensor over ranks (in place), a no-op in one process."""
    if distributed():
        dist.all_reduce(t)
    return t


def all_reduce_max(values: list[float], device: torch.device) -> list[float]:
    """The largest of each value over ranks, on every rank (a no-op in one process)."""
    if not distributed():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a picklable object; the others' is ignored)."""
    if not distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


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
