"""Learning-rate schedules: functions of the step, carried by every checkpoint."""

from __future__ import annotations

import pytest
import torch

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
    assert [gamma_at(task, TrainerConfig(max_steps=4), s) for s in (0, 2, 4)] == pytest.approx([0.05, 0.0275, 0.005])
    assert gamma_at(TaskConfig(gamma=2.0), TrainerConfig(max_steps=4), 3) == 2.0


def test_schedule_kimg_decays_over_images_then_holds_as_r3gan():
    """R3GAN's cosine_decay_with_warmup at cur_nimg over total_nimg, held at the final value after:
    with trainer.schedule_kimg the step and trainer.max_steps no longer matter, the images do."""
    t = TrainerConfig(max_steps=10, lr_schedule="cosine", lr_decay_start=0.0, lr_final=0.25, beta2=0.9,
                      beta2_final=0.99, schedule_kimg=20000)
    task = TaskConfig(gamma=0.05, gamma_final=0.005)
    half, whole = 10_000_000, 20_000_000
    assert lr_factor(t, 9, 0) == 1.0  # the last step of a 10-step run, before any image: the start
    assert [lr_factor(t, 1, n) for n in (half, whole, 3 * whole)] == pytest.approx([0.625, 0.25, 0.25])
    assert [beta2_at(t, 1, n) for n in (0, half, whole, 2 * whole)] == pytest.approx([0.9, 0.945, 0.99, 0.99])
    assert [gamma_at(task, t, 1, n) for n in (0, half, whole, 2 * whole)] == pytest.approx(
        [0.05, 0.0275, 0.005, 0.005])
    # R3GAN's CIFAR-10 lr at 5M images, 2e-4 -> 5e-5: 5e-5 + 1.5e-4 x (1 + cos(pi / 4)) / 2
    assert 2e-4 * lr_factor(t, 0, 5_000_000) == pytest.approx(5e-5 + 1.5e-4 * (1 + 2 ** -0.5) / 2)
    linear = TrainerConfig(lr_schedule="linear", lr_decay_start=0.5, schedule_kimg=1)
    assert [lr_factor(linear, 0, n) for n in (0, 499, 750, 1000, 5000)] == pytest.approx([1, 1, 0.5, 0, 0])


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


def test_the_loop_counts_schedule_kimg_in_images_and_holds_after_it(shapes_url, tmp_path):
    """4 steps of 8 images over a 16-image horizon: the rate, beta2 and gamma reach their final
    values at the third step (16 images seen) and hold; the cosine EMA ramp starts at a half-life
    of 0, so after one step G_ema is G."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from helpers import small_overrides
    from gandist.config import absolutize, compose_config

    common = small_overrides(shapes_url, str(tmp_path), "kimg", task="generate") + [
        "launcher.name=local", "trainer.num_workers=1", "eval.every=100", "trainer.image_every=100",
        "trainer.lr_schedule=cosine", "trainer.lr_decay_start=0", "trainer.lr_final=0.25", "trainer.beta2=0.9",
        "trainer.beta2_final=0.99", "task.gamma=0.05", "task.gamma_final=0.005", "trainer.schedule_kimg=0.016",
        "trainer.ema_ramp=cosine", "trainer.ema_kimg=1"]
    run_local(absolutize(compose_config(common + ["trainer.max_steps=4"])))
    acc = EventAccumulator(str(tmp_path / "kimg" / "tensorboard"))
    acc.Reload()
    values = {tag: [e.value for e in acc.Scalars(tag)] for tag in ("lr/G", "adam/beta2", "train/gamma")}
    assert values["lr/G"] == pytest.approx([2e-4, 2e-4 * 0.625, 5e-5, 5e-5])
    assert values["adam/beta2"] == pytest.approx([0.9, 0.945, 0.99, 0.99])
    assert values["train/gamma"] == pytest.approx([0.05, 0.0275, 0.005, 0.005])
    one = load_checkpoint(run_local(absolutize(compose_config(
        [*common, "run.name=one", "trainer.max_steps=1"]))).checkpoint)["state"]
    assert all(torch.equal(one["G_ema"][k], v) for k, v in one["G"].items())


def test_d_takes_its_own_poly_schedule_and_betas_as_hung_et_al():
    """Hung et al.'s D: Adam betas (0.9, 0.99), lr x (1 - i / max_iter)^0.9 from the first step;
    G keeps its own schedule and betas."""
    import torch

    from gandist.train.schedule import apply_lr

    t = TrainerConfig(max_steps=10, lr_g=1e-3, lr_d=1e-4, lr_schedule="constant", d_lr_schedule="poly",
                      d_beta2=0.99, beta2_final=0.9)
    assert [lr_factor(t, s, schedule="poly") for s in (0, 5, 10)] == pytest.approx([1.0, 0.5 ** 0.9, 0.0])
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
