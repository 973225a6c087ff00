"""The same loop under torchrun: two processes, env:// rendezvous, a checkpoint at the end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import small_overrides
from gandist.ckpt import find_latest_checkpoint, read_meta

pytestmark = pytest.mark.slow


def test_two_process_torchrun_run_skips_a_nan_step_and_evaluates_across_ranks(shapes_url, tmp_path):
    """Rank 1's step 2 turns NaN: both ranks agree to skip it and the run still finishes. The
    final evaluation, split over the two ranks, equals a one-process `gandist evaluate`."""
    overrides = small_overrides(shapes_url, str(tmp_path), "tr", task="generate") + [
        "launcher.name=torchrun", "trainer.num_workers=2", "trainer.max_steps=3", "trainer.ckpt_every=3",
        "faults.nan_rank=1", "faults.nan_at_step=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gandist.cli", "train", *overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    latest = find_latest_checkpoint(str(tmp_path / "tr"))
    assert latest is not None and read_meta(latest)["step"] == 3
    assert "finished at step 3" in out.stdout
    logs = out.stdout + out.stderr
    # DDP averages the NaN gradient into rank 0 too, so both ranks report D; the culprit
    # rank's own loss is named separately.
    assert "Step 2 skipped on every rank: non-finite values in D on rank 0, 1" in logs, logs[-3000:]
    assert "rank 1 saw" in logs and "loss/D=nan" in logs
    assert "Step 1 skipped" not in logs and "Step 3 skipped" not in logs

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gandist.cli import main

    acc = EventAccumulator(str(tmp_path / "tr" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    logged = {tag: acc.Scalars(tag)[-1] for tag in ("eval/fd_randconv", "eval/kd_randconv")}
    assert logged["eval/fd_randconv"].step == 3
    out = tmp_path / "e.json"
    assert main(["evaluate", str(tmp_path / "tr"), "--json", str(out)]) == 0
    scores = json.loads(out.read_text())["scores"]
    for tag, event in logged.items():
        assert scores[tag] == pytest.approx(event.value, rel=1e-4), tag
