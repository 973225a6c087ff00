"""Export the EMA generator of a checkpoint, with what is needed to rebuild it.

An export holds only tensors and plain values (the config as a dict of strings and numbers),
so it loads with ``torch.load(..., weights_only=True)``: opening one runs no pickled code."""

from __future__ import annotations

import io
from typing import Any

import fsspec
import torch
from torch import nn

from gandist.ckpt import CheckpointError, load_checkpoint, read_meta, resolve_checkpoint
from gandist.config import from_dict
from gandist.models.factory import build_networks


def export_generator(source: str, out: str, best: bool = False) -> dict[str, Any]:
    """Write {"generator": EMA G state_dict, "config", "classes", "step"} to ``out``; from a run
    directory, its latest checkpoint (``best``: its best-scored one)."""
    checkpoint = resolve_checkpoint(source, best)
    meta = read_meta(checkpoint)
    payload = load_checkpoint(checkpoint)
    exported = {
        "generator": payload["state"]["G_ema"],
        "config": from_dict(payload["config"]).to_dict(),  # renamed keys moved, plain values
        "classes": payload.get("classes"),
        "step": meta["step"],
        "gandist_version": payload.get("gandist_version"),
    }
    buffer = io.BytesIO()
    torch.save(exported, buffer)
    with fsspec.open(out, "wb") as f:
        f.write(buffer.getvalue())
    return {**meta, "checkpoint": checkpoint}


def load_generator(path: str, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild an exported generator (in eval mode) and return it with the export's contents."""
    with fsspec.open(path, "rb") as f:
        exported = torch.load(io.BytesIO(f.read()), map_location=map_location, weights_only=True)
    if "generator" not in exported:
        raise CheckpointError(f"{path} is not a gandist export (no 'generator'); make one with gandist export")
    cfg = from_dict(exported["config"])
    classes = exported.get("classes") or []
    G, _ = build_networks(cfg, len(classes))
    G.load_state_dict(exported["generator"])
    return G.eval(), exported
