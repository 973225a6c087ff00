"""`gandist evaluate`: the training-time evaluation (``inference/evaluator.py``) of a run read back by
``inference/saved_run.py``, in this one process, and the JSON record of its scores."""

from __future__ import annotations

from typing import Optional

import fsspec
import torch

from gandist.config import ConfigError, TaskName
from gandist.data.checks import check_data_fits
from gandist.data.manifest import Manifest
from gandist.inference.evaluator import Evaluator
from gandist.inference.saved_run import Loaded


def evaluate_run(run: Loaded, device: torch.device) -> dict[str, float]:
    """The training-time evaluation, in this one process, on ``run.cfg.data.url``; ValueError when it
    scores nothing (no usable data.eval_split)."""
    manifest = Manifest.load(run.cfg.data.url)
    classes = check_data_fits(run.cfg, manifest)
    if run.cfg.task.name == TaskName.segment and classes != run.classes:
        raise ConfigError(f"data.url={run.cfg.data.url} has classes {classes} but the checkpoint was trained on "
                          f"{run.classes}; evaluate on a shard set with the same classes")
    if run.cfg.task.name == TaskName.translate and classes != run.classes:
        raise ConfigError(f"data.url={run.cfg.data.url} holds {''.join(classes)} B images but the checkpoint draws "
                          f"{''.join(run.classes or [])} ones; evaluate on pairs with the same B mode")
    scores = Evaluator(run.cfg, manifest, 0, 1, device, run.classes)(run.G_ema, run.G)
    if not scores:
        raise ValueError(f"nothing to evaluate: data.url={run.cfg.data.url} has no usable "
                         f"{run.cfg.data.eval_split!r} split; pass data.url=<a shard set with one> "
                         "or data.eval_split=train")
    return scores


def write_scores(run: Loaded, scores: dict[str, float], out: Optional[str] = None) -> str:
    """Write ``gandist evaluate``'s record (NaN as null) as JSON; by default beside the
    checkpoints it scores, <run dir>/eval_<run>_step<N>.json. Returns where it went."""
    import json
    import math
    import posixpath

    out = out or f"{posixpath.dirname(run.checkpoint.rstrip('/'))}/eval_{run.cfg.run.name}_step{run.step}.json"
    record = {"checkpoint": run.checkpoint, "step": run.step, "task": run.cfg.task.name.value,
              "data_url": run.cfg.data.url, "eval": run.cfg.to_dict()["eval"],
              "scores": {k: (None if math.isnan(v) else v) for k, v in scores.items()}}
    with fsspec.open(out, "w") as f:
        json.dump(record, f, indent=2)
    return out
