"""Mixed precision on CPU: autocast runs, fp16 grad scalers are checkpointed and restored."""

from __future__ import annotations

import math

import pytest

from helpers import local_cfg
from gandist.ckpt import load_checkpoint, read_meta, write_checkpoint
from gandist.launchers.local import run_local


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_and_checkpoints_its_scalers(shapes_url, tmp_path, amp):
    cfg = local_cfg(shapes_url, tmp_path, amp, "trainer.max_steps=2", "trainer.ckpt_every=2", f"trainer.amp={amp}")
    summary = run_local(cfg)
    assert summary.step == 2 and math.isfinite(summary.metrics["loss/G"])
    state = load_checkpoint(summary.checkpoint)["state"]
    if amp == "fp16":
        assert state["scaler_g"]["scale"] > 0 and state["scaler_d"]["scale"] > 0
        # Mark the saved scale; the resumed run must carry on from it (halved at most by one overflow).
        payload = load_checkpoint(summary.checkpoint)
        payload["state"]["scaler_g"]["scale"] = 1024.0
        write_checkpoint(summary.checkpoint, payload, read_meta(summary.checkpoint))
        cfg.trainer.max_steps = 3
        resumed = load_checkpoint(run_local(cfg).checkpoint)["state"]
        assert resumed["scaler_g"]["scale"] in (1024.0, 512.0)
    else:
        assert state["scaler_g"] == {} and state["scaler_d"] == {}  # bf16 needs no loss scaling
