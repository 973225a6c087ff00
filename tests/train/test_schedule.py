"""Learning-rate schedules: functions of the step, carried by every checkpoint."""

from __future__ import annotations

import pytest

from helpers import local_cfg
from gandist.ckpt import load_checkpoint
from gandist.config import TaskConfig, TrainerConfig
from gandist.launchers.local import run_local
from gandist.train.schedule import beta2_at, cosine, gamma_at, lr_factor


def test_linear_schedule_holds_then_decays_to_zero():
    t = TrainerConfig(max_steps=10, lr_schedule="linear", lr_decay_start=0.6)
    assert [lr_factor(t, s) for s in range(10)] == pytest.approx(
        [1, 1, 1, 1, 1, 1, 1.0, 0.75, 0.5, 0.25])
    assert lr_factor(TrainerConfig(max_steps=10), 9) == 1.0  # constant


def test_cosine_schedules_run_from_start_to_end_on_a_half_cosine():
    assert [cosine(1.0, 0.0, s, 4) for s in range(6)] == pytest.approx(
        [1.0, 0.5 + 0.5 * 2 ** -0.5, 0.5, 0.5 - 0.5 * 2 ** -0.5, 0.0, 0.0])  # held at the end past it
    t = TrainerConfig(max_steps=4, lr_schedule="cosine", lr_decay_start=0.0, lr_final=0.25,
                      beta2=0.9, beta2_final=0.99)
    assert [lr_factor(t, s) for s in (0, 2, 4)] == pytest.approx([1.0, 0.625, 0.25])  # R3GAN: 2e-4 -> 5e-5
    assert [beta2_at(t, s) for s in (0, 2, 4)] == pytest.approx([0.9, 0.945, 0.99])
    assert beta2_at(TrainerConfig(beta2=0.95), 3) == 0.95  # unscheduled
    linear = TrainerConfig(max_steps=4, lr_schedule="linear", lr_decay_start=0.0, lr_final=0.5)
    assert [lr_factor(linear, s) for s in range(5)] == pytest.approx([1.0, 0.875, 0.75, 0.625, 0.5])
    task = TaskConfig(gamma=0.05, gamma_final=0.005)
    assert [gamma_at(task, 4, s) for s in (0, 2, 4)] == pytest.approx([0.05, 0.0275, 0.005])
    assert gamma_at(TaskConfig(gamma=2.0), 4, 3) == 2.0


def test_optimizers_and_checkpoints_follow_the_schedule(shapes_url, tmp_path):
    """8 steps, decay from step 4: the step-4 checkpoint holds the full rate, the last a quarter."""
    cfg = local_cfg(shapes_url, tmp_path, "sched", "trainer.max_steps=8", "trainer.ckpt_every=4",
                    "trainer.keep_checkpoints=2", "trainer.lr_schedule=linear", "trainer.lr_decay_start=0.5",
                    "trainer.lr_g=1e-3", "trainer.lr_d=2e-3")
    summary = run_local(cfg)
    mid = load_checkpoint(str(tmp_path / "sched" / "checkpoint_00000004"))["state"]
    end = load_checkpoint(summary.checkpoint)["state"]
    assert mid["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    assert end["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 4)  # step 8 = index 7 of 8
    assert end["opt_d"]["param_groups"][0]["lr"] == pytest.approx(2e-3 / 4)
    assert summary.metrics["lr/G"] == pytest.approx(1e-3 / 4)


def test_d_takes_its_own_poly_schedule_and_betas_as_hung_et_al():
    """Hung et al.'s D: Adam betas (0.9, 0.99), lr x (1 - i / max_iter)^0.9 from the first step;
    G keeps its own schedule and betas."""
    import torch

    from gandist.train.schedule import apply_lr

    t = TrainerConfig(max_steps=10, lr_g=1e-3, lr_d=1e-4, lr_schedule="constant", d_lr_schedule="poly",
                      d_beta2=0.99, beta2_final=0.9)
    assert [lr_factor(t, s, "poly") for s in (0, 5, 10)] == pytest.approx([1.0, 0.5 ** 0.9, 0.0])
    opt_g, opt_d = (torch.optim.Adam([torch.zeros(1, requires_grad=True)], betas=b) for b in ((0.5, 0.999), (0.9, 0.99)))
    assert apply_lr(t, 5, opt_g, opt_d) == pytest.approx((1.0, 0.5 ** 0.9))
    assert opt_g.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert opt_d.param_groups[0]["lr"] == pytest.approx(1e-4 * 0.5 ** 0.9)
    # beta2_final moves G's beta2 only: D keeps trainer.d_beta2
    assert opt_d.param_groups[0]["betas"] == (0.9, 0.99) and opt_g.param_groups[0]["betas"][1] != 0.999


def test_the_d_optimizer_is_built_with_its_own_betas():
    import torch

    from gandist.config import compose_config
    from gandist.train.state import TrainState

    cfg = compose_config(["task=segment", "model.resolution=32", "model.g_width=2", "model.d_width=2",
                          "trainer.d_beta1=0.9", "trainer.d_beta2=0.99"])
    state = TrainState.fresh(cfg, 4, torch.device("cpu"))
    assert state.opt_d.param_groups[0]["betas"] == (0.9, 0.99)
    assert state.opt_g.param_groups[0]["betas"] == (0.5, 0.999)
