"""What the loop needs from whoever launched it: rank, device, and where state persists.

The same ``fit`` runs under Ray Train, under torchrun and in one plain process; each
launcher in ``gandist.launchers`` provides a subclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch


@dataclass
class Context:
    rank: int
    world_size: int
    device: torch.device
    # Local directory for TensorBoard logs and sample grids. Only rank 0 gets one, so other
    # ranks cannot write files by construction.
    log_dir: Optional[str] = None
    # The run's directory (local path or fsspec URL), where rank 0 keeps small run records.
    run_dir: Optional[str] = None

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def report(self, metrics: dict[str, float], checkpoint_dir: Optional[str], asynchronous: bool = False) -> None:
        """Persist a checkpoint directory written by rank 0 (None on other ranks), then remove
        it; with ``asynchronous`` the upload may finish after returning. All ranks call it."""
        raise NotImplementedError

    def restore(self) -> Optional[dict[str, Any]]:
        """The payload of the latest complete checkpoint of this run, or None for a fresh start.

        Loaded on the CPU, whatever this rank's device: load_state_dict puts each tensor where
        its module or optimizer lives, and RNG states must stay CPU ByteTensors (a GPU
        map_location made torch.set_rng_state refuse them, so every GPU resume failed)."""
        raise NotImplementedError
