"""The same loop under torchrun: two processes, env:// rendezvous, a checkpoint at the end."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import small_overrides
from gandist.ckpt import find_latest_checkpoint, read_meta

pytestmark = pytest.mark.slow


def test_two_process_torchrun_run(shapes_url, tmp_path):
    overrides = small_overrides(shapes_url, str(tmp_path), "tr") + [
        "dist.launcher=torchrun", "trainer.num_workers=2", "trainer.max_steps=3", "trainer.ckpt_every=3"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gandist.cli", "train", *overrides]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    latest = find_latest_checkpoint(str(tmp_path / "tr"))
    assert latest is not None and read_meta(latest)["step"] == 3
    assert "finished at step 3" in out.stdout
