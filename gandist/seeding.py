"""Seeds and random-number state: the one function that derives every seed in gandist from
the run's seed, seeding a process, and saving/restoring every RNG a process uses.

Per-rank, per-loader-worker and per-epoch seeds all come from ``derive_seed(seed, *parts)``,
so the same config gives the same numbers, and no two streams share a seed by accident
(``seed + rank`` would make rank 1 of seed 0 equal to rank 0 of seed 1).

torch is imported where it is used: the CLI's read-only commands load this module (the data
sources derive their seeds here) and never load torch.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and a path of labels, e.g. ``derive_seed(0, "data", epoch, rank)``."""
    text = "/".join([str(int(seed)), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def seed_process(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators from one derived seed."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """This process's RNG states: python, numpy, torch's CPU generator and, on a GPU, the
    generator of this process's own device (not every visible one: ranks of a node may see
    all its GPUs, and a resumed rank may see fewer or sit at another index)."""
    import torch

    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_device"] = torch.cuda.get_rng_state(torch.cuda.current_device())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned (the CUDA state onto this process's device)."""
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if not torch.cuda.is_available():
        return
    if "cuda_device" in state:
        torch.cuda.set_rng_state(state["cuda_device"].cpu(), torch.cuda.current_device())
    elif "cuda" in state:  # older checkpoints: every visible device's state, by index
        index = torch.cuda.current_device()
        if index < len(state["cuda"]):
            torch.cuda.set_rng_state(state["cuda"][index].cpu(), index)
