"""Evaluation during training: it scores EMA G and leaves training exactly as it was."""

from __future__ import annotations

import torch

from helpers import local_cfg
from gandist.ckpt import load_checkpoint
from gandist.launchers.local import run_local
from gandist.inference.evaluator import share


def test_share_splits_every_item_once():
    for count, world in ((10, 3), (2, 4), (1024, 7)):
        parts = [share(count, r, world) for r in range(world)]
        assert sum(parts) == count and max(parts) - min(parts) <= 1


def test_evaluating_every_step_does_not_change_training(shapes_url, tmp_path):
    """Same seed, eval every step vs only at the end: bitwise the same weights."""
    finals = []
    for name, every in (("often", 1), ("end", 3)):
        cfg = local_cfg(shapes_url, tmp_path, name, "task=generate", "trainer.max_steps=3",
                        "trainer.ckpt_every=3", f"eval.every={every}", "eval.samples=16")
        summary = run_local(cfg)
        assert summary.metrics["eval/fd_randconv"] > 0
        finals.append(load_checkpoint(summary.checkpoint)["state"])
    for net in ("G", "D", "G_ema"):
        for key, tensor in finals[0][net].items():
            assert torch.equal(tensor, finals[1][net][key]), f"{net}.{key} differs"
