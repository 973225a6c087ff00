"""RNG state survives a resume on any device: checkpoints are restored on the CPU, and a GPU
rank saves and restores the generator of its own device only."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from gandist.seeding import rng_state, set_rng_state
from helpers import local_cfg


def test_a_resume_whose_rank_is_not_on_the_cpu_restores_the_rng(shapes_url, tmp_path):
    """The payload of a rank on another device (meta stands in for a GPU here) still carries
    CPU ByteTensors, which torch.set_rng_state requires."""
    from gandist.launchers.local import LocalContext, run_local

    cfg = local_cfg(shapes_url, tmp_path, "rng", "trainer.max_steps=1", "trainer.ckpt_every=1")
    run_local(cfg)
    ctx = LocalContext(0, 1, torch.device("meta"), str(tmp_path / "rng"), keep=3, log_path=None)
    payload = ctx.restore()
    [saved] = payload["rng"]
    assert saved["torch"].device.type == "cpu" and saved["torch"].dtype == torch.uint8
    set_rng_state(saved)
    assert torch.equal(torch.get_rng_state(), saved["torch"])


def test_rng_round_trip_in_one_process():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    saved = rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


class FakeCuda:
    """torch.cuda as a rank sees it: ``visible`` devices, this process on ``current``."""

    def __init__(self, visible: int, current: int) -> None:
        self.visible, self.current = visible, current
        self.states = {i: torch.full((16,), i, dtype=torch.uint8) for i in range(visible)}
        self.restored: list[tuple[int, torch.Tensor]] = []

    def install(self, monkeypatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: self.current)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.visible)
        monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: self.states[device])
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [self.states[i] for i in range(self.visible)])

        def set_state(state, device=None):
            if device is None or not 0 <= device < self.visible:
                raise IndexError(f"no device {device}")
            self.restored.append((device, state))

        def set_all(states):
            for i, state in enumerate(states):
                set_state(state, i)

        monkeypatch.setattr(torch.cuda, "set_rng_state", set_state)
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)


def test_a_gpu_rank_keeps_its_own_generator_when_fewer_devices_are_visible_on_resume(monkeypatch):
    """Saved by the rank on GPU 5 of 8 visible, resumed as the only rank of a node with 4
    visible, on GPU 0: its own generator comes back onto its device, and nothing else."""
    before = FakeCuda(visible=8, current=5)
    before.install(monkeypatch)
    saved = rng_state()
    assert torch.equal(saved["cuda_device"], before.states[5]) and "cuda" not in saved

    after = FakeCuda(visible=4, current=0)
    after.install(monkeypatch)
    set_rng_state(saved)
    assert len(after.restored) == 1
    device, state = after.restored[0]
    assert device == 0 and torch.equal(state, before.states[5])


@pytest.mark.parametrize("current", [0, 3])
def test_older_checkpoints_with_every_devices_state_still_load(monkeypatch, current):
    fake = FakeCuda(visible=4, current=current)
    fake.install(monkeypatch)
    saved = {**rng_state(), "cuda": [torch.full((16,), 10 + i, dtype=torch.uint8) for i in range(8)]}
    del saved["cuda_device"]
    set_rng_state(saved)
    assert [(d, int(s[0])) for d, s in fake.restored] == [(current, 10 + current)]
