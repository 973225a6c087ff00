"""`make gpu-check` runs here too: without CUDA it starts, says clearly that nothing ran, and
fails only when told a GPU is required."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run make gpu-check itself")
def test_gpu_check_without_cuda_says_nothing_ran():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "no CUDA device visible" in done.stdout and "nothing was run" in done.stdout
    required = subprocess.run([sys.executable, str(SCRIPT), "--require-gpu"], capture_output=True, text=True,
                              timeout=120)
    assert required.returncode == 1
    helped = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "kill" in helped.stdout and "8 minutes" in helped.stdout
