"""Non-finite losses: every rank skips the step, and too many in a row stop with a clear error."""

from __future__ import annotations

import pytest
import torch

from helpers import local_cfg, run_logged
from gandist.ckpt import find_latest_checkpoint, load_checkpoint, read_meta
from gandist.launchers.local import run_local
from gandist.train.divergence import DivergenceError


def test_a_nan_step_is_skipped_exactly(shapes_url, tmp_path):
    """A step with NaN losses changes neither network nor optimizer: the run after a skipped
    step 3 holds the same G, D and Adam state as a run stopped after step 2."""
    two = run_local(local_cfg(shapes_url, tmp_path, "two", "trainer.max_steps=2", "trainer.ckpt_every=2"))
    skipped, messages = run_logged(local_cfg(
        shapes_url, tmp_path, "nan", "trainer.max_steps=3", "trainer.ckpt_every=3",
        "faults.nan_rank=0", "faults.nan_at_step=3"))
    assert skipped.step == 3
    assert any(m.startswith("Step 3 skipped on every rank") and "loss/D=nan" in m for m in messages), messages
    assert skipped.metrics["train/skipped_steps"] == 1.0
    a, b = load_checkpoint(two.checkpoint)["state"], load_checkpoint(skipped.checkpoint)["state"]
    for net in ("G", "D"):
        for key, tensor in a[net].items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key} changed in a skipped step"
    assert b["opt_d"]["state"][0]["step"].item() == 2  # Adam did not count the skipped step


def test_too_many_bad_steps_in_a_row_stop_the_run_naming_step_and_loss(shapes_url, tmp_path):
    cfg = local_cfg(shapes_url, tmp_path, "diverge", "trainer.max_steps=8", "trainer.ckpt_every=2",
                    "trainer.max_bad_steps=2", "faults.nan_rank=0", "faults.nan_at_step=3", "faults.nan_steps=3")
    with pytest.raises(DivergenceError) as err:
        run_local(cfg)
    message = str(err.value)
    assert "steps 3-4" in message and "trainer.max_bad_steps=2" in message
    assert "loss/D=nan" in message and "last checkpoint is at step 2" in message
    latest = find_latest_checkpoint(str(tmp_path / "diverge"))
    assert read_meta(latest)["step"] == 2  # nothing written after the divergence
    state = load_checkpoint(latest)["state"]
    assert all(torch.isfinite(t).all() for t in state["G"].values() if t.is_floating_point())


def test_isolated_bad_steps_do_not_stop_the_run(shapes_url, tmp_path):
    """max_bad_steps counts steps in a row: 1 stops at the first bad step, 2 lets one pass."""
    with pytest.raises(DivergenceError):
        run_local(local_cfg(shapes_url, tmp_path, "blip1", "trainer.max_steps=4", "trainer.ckpt_every=4",
                            "trainer.max_bad_steps=1", "faults.nan_rank=0", "faults.nan_at_step=2"))
    ok = run_local(local_cfg(shapes_url, tmp_path, "blip2", "trainer.max_steps=4", "trainer.ckpt_every=4",
                             "trainer.max_bad_steps=2", "faults.nan_rank=0", "faults.nan_at_step=2"))
    assert ok.step == 4 and ok.metrics["train/skipped_steps"] == 0.0  # the last log window had none
