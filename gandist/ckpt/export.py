"""Export the EMA generator of a checkpoint, with what is needed to rebuild it."""

from __future__ import annotations

import io
from typing import Any

import fsspec
import torch
from torch import nn

from gandist.ckpt.io import CheckpointError, find_latest_checkpoint, load_checkpoint, read_meta


def resolve_checkpoint(source: str) -> str:
    """A checkpoint directory itself, or the latest complete checkpoint of a run directory."""
    latest = find_latest_checkpoint(source)
    if latest is not None:
        return latest
    read_meta(source)  # raises with a clear message when it is not a checkpoint either
    return source


def export_generator(source: str, out: str) -> dict[str, Any]:
    """Write {"generator": EMA G state_dict, "config", "classes", "step"} to ``out``."""
    checkpoint = resolve_checkpoint(source)
    meta = read_meta(checkpoint)
    payload = load_checkpoint(checkpoint)
    exported = {
        "generator": payload["state"]["G_ema"],
        "config": payload["config"],
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
    from gandist.config import from_dict
    from gandist.train.state import build_networks

    with fsspec.open(path, "rb") as f:
        exported = torch.load(io.BytesIO(f.read()), map_location=map_location, weights_only=False)
    if "generator" not in exported:
        raise CheckpointError(f"{path} is not a gandist export (no 'generator'); make one with gandist export")
    cfg = from_dict(exported["config"])
    classes = exported.get("classes") or []
    G, _ = build_networks(cfg, len(classes))
    G.load_state_dict(exported["generator"])
    return G.eval(), exported
