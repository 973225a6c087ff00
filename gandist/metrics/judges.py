"""What the data judges share (builtin:shapes' segmenter, builtin:digits' classifier): weights
trained once per machine and cached, and the mode scores their verdicts give.

A judge is an extractor (``name``, ``dim``, ``forward`` -> features) with ``describe(images)``
-> (features, mode ids) and ``num_modes``. Mode 0 is the judge's "nothing recognisable" (no
shape, no readable digit): a generator's failure, never counted as a mode reached.
"""

from __future__ import annotations

import logging
import os
from typing import Callable, Optional

import torch
from torch import Tensor, nn

from gandist.urls import cache_dir

log = logging.getLogger(__name__)


def judge_path(name: str, version: int, directory: Optional[str] = None) -> str:
    """Where this machine keeps judge ``name``'s weights (one file per version and torch)."""
    directory = directory or os.path.join(cache_dir(), "judges")
    return os.path.join(directory, f"{name}-v{version}-torch{torch.__version__}.pt")


def save_judge(judge: nn.Module, accuracy: dict[str, float], path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = f"{path}.{os.getpid()}.partial"
    torch.save({"state": judge.state_dict(), "accuracy": accuracy}, partial)
    os.replace(partial, path)  # atomic: another process may be writing the same judge


def load_or_train(judge: nn.Module, path: str, train: Callable[[], tuple[nn.Module, dict[str, float]]],
                  what: str, device: torch.device) -> nn.Module:
    """``judge`` with the weights cached at ``path``, or ``train()``'s, cached first."""
    if os.path.exists(path):
        saved = torch.load(path, map_location="cpu", weights_only=True)
        judge.load_state_dict(saved["state"])
        judge.requires_grad_(False).eval()
    else:
        log.info("Training the %s judge (once per machine; cached at %s)", what, path)
        with torch.enable_grad():  # first asked for inside an evaluation, under no_grad
            judge, accuracy = train()
        log.info("%s judge: held-out accuracy %s", what, ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
        save_judge(judge, accuracy, path)
    return judge.to(device)


def saved_accuracy(path: str) -> dict[str, float]:
    """The held-out accuracy a cached judge was saved with."""
    return torch.load(path, map_location="cpu", weights_only=True)["accuracy"]


def mode_scores(real_modes: Tensor, fake_modes: Tensor, num_modes: int) -> dict[str, float]:
    """Coverage: how many of the modes the real images show (mode 0, nothing recognisable,
    never counts) the generated ones reach (a mode only a misread sample lands in does not
    count), of how many; and KL(real || generated) of the mode histograms (generated smoothed,
    so a missed mode costs a finite, large amount)."""
    real = torch.bincount(real_modes.cpu(), minlength=num_modes).double()
    fake = torch.bincount(fake_modes.cpu(), minlength=num_modes).double()
    p, q = real / real.sum(), (fake + 1e-3) / (fake + 1e-3).sum()
    seen = p > 0
    countable = seen.clone()
    countable[0] = False
    return {"eval/modes": float((countable & (fake > 0)).sum()), "eval/modes_real": float(countable.sum()),
            "eval/mode_kl": float((p[seen] * (p[seen] / q[seen]).log()).sum())}
