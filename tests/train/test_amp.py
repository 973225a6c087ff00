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


def test_an_fp16_overflow_is_counted_and_its_infinite_norm_is_not_logged():
    """The grad scaler skips a step whose fp16 gradients overflow (finite loss): the step
    counts as skipped, the infinite gradient norm stays out of the logged means, and it is
    not divergence."""
    import torch
    from torch import nn

    from gandist.losses import gan_loss
    from gandist.train.divergence import BadStepTracker
    from gandist.train.phases import build_phases, run_step
    from gandist.train.tasks import GenerateTask

    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 48), nn.Unflatten(1, (3, 4, 4)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(48, 1))
    D[1].weight.register_hook(lambda grad: grad * float("inf"))  # D's gradients overflow, its loss is finite
    G.requires_grad_(False), D.requires_grad_(False)  # as fit() leaves them: phases switch their own on
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (G, D))
    scaler_g, scaler_d = (torch.amp.GradScaler("cpu", init_scale=256.0) for _ in range(2))
    phases = build_phases(GenerateTask(8), gan_loss("nonsat"), G, D, opt_g, opt_d, scaler_g, scaler_d)
    before = D[1].weight.detach().clone()

    result = run_step(phases, GenerateTask(8), G, {"image": torch.randn(4, 3, 4, 4)})
    assert result.overflowed == ["D"] and result.skipped == {}
    assert "grad/D_norm" not in result.stats and math.isfinite(result.stats["grad/G_norm"].item())
    assert torch.equal(D[1].weight, before) and scaler_d.get_scale() == 128.0  # skipped, scale halved

    tracker = BadStepTracker(max_bad_steps=1, rank=0, is_chief=True)
    assert tracker.record(1, result, None) is False  # not divergence, even with max_bad_steps=1
    assert tracker.pop_since_log() == 1  # but counted in train/skipped_steps
    assert tracker.loss_scales(G=scaler_g, D=scaler_d) == {"amp/loss_scale_G": 256.0, "amp/loss_scale_D": 128.0}
