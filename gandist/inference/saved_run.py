"""A finished (or running) run's checkpoint read back: EMA G (and the live G where asked) with its
config. `gandist sample` (``inference/sample.py``), `gandist evaluate` (``inference/evaluate.py``) and
eval.segmenter (``inference/evaluator.py``) start here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from gandist.ckpt import load_checkpoint, read_meta, resolve_checkpoint
from gandist.config import Config, EvalGMode, compose_saved
from gandist.models.factory import build_networks


@dataclass
class Loaded:
    G_ema: nn.Module
    cfg: Config
    classes: Optional[list[str]]
    step: int
    checkpoint: str
    G: Optional[nn.Module] = None  # the live G, loaded only where eval.g_mode=train_mode or eval.live scores it


def pick_device(name: str) -> torch.device:
    """--device: auto (a GPU if there is one) | cpu | cuda[:N]."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_run(source: str, overrides: Sequence[str] = (), device: torch.device = torch.device("cpu"),
             best: bool = False) -> Loaded:
    """EMA G of a checkpoint (or a run's latest; ``best``: its best-scored) with its config;
    ``overrides`` may change data.* and eval.* (the networks are the checkpoint's)."""
    checkpoint = resolve_checkpoint(source, best)
    payload = load_checkpoint(checkpoint, map_location=device)
    cfg = compose_saved(payload["config"], overrides)
    classes = payload.get("classes")
    G, _ = build_networks(cfg, len(classes or []))
    G.load_state_dict(payload["state"]["G_ema"])
    live = None
    if cfg.eval.g_mode == EvalGMode.train_mode or cfg.eval.live:
        live, _ = build_networks(cfg, len(classes or []))
        live.load_state_dict(payload["state"]["G"])
        live = live.to(device).requires_grad_(False)
    return Loaded(G.to(device).eval().requires_grad_(False), cfg, classes, read_meta(checkpoint)["step"], checkpoint,
                  live)
