"""model=r3gan through the whole loop in one process: the relativistic loss, R1 + R2, the
schedules, EMA, checkpoints, an exact resume, and TensorBoard's record of the schedules."""

from __future__ import annotations

import shutil

import pytest
import torch

from helpers import small_overrides
from gandist.ckpt import load_checkpoint, read_meta
from gandist.config import absolutize, compose_config
from gandist.launchers.local import run_local


def r3gan_cfg(shapes_url: str, storage, name: str, *extra: str):
    return absolutize(compose_config(small_overrides(shapes_url, str(storage), name, task="generate") + [
        "model=r3gan", "model.g_width=16", "model.d_width=16", "model.blocks=1", "launcher.name=local",
        "trainer.num_workers=1", "trainer.max_steps=4", "trainer.ckpt_every=2", "trainer.keep_checkpoints=2",
        "eval.every=4", "eval.samples=16", "trainer.image_every=4", *extra]))


LAZY_R1_HINGE = ["task.penalty=r1", "task.penalty_every=2", "task.loss=hinge"]
# ADA adjusting every 3 steps: the step-2 checkpoint falls inside a window.
ADA = ["task.augment=[color,translation,cutout]", "task.augment_p=null", "task.augment_p_kimg=null",
       "task.ada_target=0.6", "task.ada_interval=3", "task.ada_kimg=0.1"]


CONDITIONAL = ["model.conditional=true"]  # on builtin:shapes' labels: circle, square, triangle
# R3GAN's augmentation: ADA's bgc pipeline + cutout, colour ops at half p, p on a cosine ramp
# (here to 0.55 over 100 images: the run sees p rise; R1/R2 go through it to the raw images).
BGC = ["task.augment=[bgc,cutout]", "task.augment_p=0.55", "task.augment_p_kimg=0.1", "task.augment_color_p=0.5"]


@pytest.mark.parametrize("extra", [[], LAZY_R1_HINGE, ADA, CONDITIONAL, BGC],
                         ids=["recipe", "lazy-r1-hinge", "ada", "conditional", "bgc-ramp"])
def test_r3gan_trains_checkpoints_and_resumes_bitwise(shapes_url, tmp_path, extra):
    """4 steps straight, against the step-2 checkpoint of the same run copied to a new run
    and resumed to step 4: every weight, both optimizers' moments and the schedules' values
    (learning rate, beta2; ADA's p) end identical."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = r3gan_cfg(shapes_url, tmp_path, "straight", *extra)
    straight = run_local(cfg)
    assert straight.step == 4 and "eval/fd_randconv" in straight.metrics
    assert 0 <= straight.metrics["eval/precision_randconv"] <= 1 and 0 <= straight.metrics["eval/recall_randconv"] <= 1
    per_class = sorted(k for k in straight.metrics if k.startswith("eval/fd_randconv/"))
    if extra == CONDITIONAL:  # 16 held-out images: a class with fewer than 2 of them has no distance
        assert per_class and set(per_class) <= {f"eval/fd_randconv/{c}" for c in ("circle", "square", "triangle")}
        assert all(straight.metrics[k] > 0 for k in per_class)
    else:
        assert not per_class
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint_00000002", tmp_path / "resumed" / "checkpoint_00000002")
    resumed = run_local(r3gan_cfg(shapes_url, tmp_path, "resumed", *extra))
    assert read_meta(resumed.checkpoint)["resumed_from"] == 2
    a, b = load_checkpoint(straight.checkpoint)["state"], load_checkpoint(resumed.checkpoint)["state"]
    if extra == CONDITIONAL:
        assert a["G"]["embed.weight"].shape == (3, cfg.model.z_dim) and "embed.weight" in a["D"]
    for net in ("G", "D", "G_ema"):
        for key, tensor in a[net].items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key} differs"
    for opt in ("opt_g", "opt_d"):
        group = b[opt]["param_groups"][0]
        assert group["betas"] == a[opt]["param_groups"][0]["betas"] and group["betas"][0] == 0.0
        assert group["lr"] == a[opt]["param_groups"][0]["lr"]
        for i, moments in a[opt]["state"].items():
            assert torch.equal(moments["exp_avg_sq"], b[opt]["state"][i]["exp_avg_sq"])

    acc = EventAccumulator(str(tmp_path / "straight" / "tensorboard"))
    acc.Reload()
    scalars = {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    lazy = extra == LAZY_R1_HINGE
    assert "loss/D_r1" in scalars and ("loss/D_r2" in scalars) == (not lazy)
    assert len(scalars["loss/D_r1"]) == (2 if lazy else 4)  # logged on the steps it applies
    assert b["ada"] == a["ada"] and bool(a["ada"]) == (extra == ADA)
    if extra == ADA:  # 24 images a window, 100 for p to go 0 -> 1: p moved by 0.24 after step 3
        assert a["ada"]["p"] == pytest.approx(0.24) or a["ada"]["p"] == 0.0
        assert a["ada"]["window_count"] == 1  # step 4 of the window 4-6
        assert len(scalars["augment/p"]) == 4 and "augment/rt" in scalars and "D/real_sign" in scalars
    if extra == BGC:  # the value each step used, from the images seen before it
        p = scalars["augment/p"]
        assert len(p) == 4 and p[0] == 0 and p == sorted(p) and 0 < p[-1] < 0.55
    lr = scalars["lr/G"]  # R3GAN's cosine, 2e-4 towards 5e-5 over the run, one value per step
    assert lr[0] == pytest.approx(2e-4) and lr == sorted(lr, reverse=True) and lr[-1] > 5e-5
    beta2 = scalars["adam/beta2"]
    assert beta2[0] == pytest.approx(0.9) and beta2 == sorted(beta2) and beta2[-1] < 0.99
    gamma = scalars["train/gamma"]
    assert gamma[0] == pytest.approx(0.05) and gamma == sorted(gamma, reverse=True)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_r3gan_penalties_under_mixed_precision_stay_finite_and_positive(shapes_url, tmp_path, amp):
    """Under fp16 the input gradients are taken at the grad scaler's scale and unscaled: the
    penalty comes out at its real size, neither underflowed to 0 nor overflowed."""
    import math

    summary = run_local(r3gan_cfg(shapes_url, tmp_path, amp, f"trainer.amp={amp}", "trainer.max_steps=2",
                                  "trainer.log_every=2"))
    for tag in ("loss/D_r1", "loss/D_r2", "loss/D", "loss/G"):
        assert math.isfinite(summary.metrics[tag]), tag
    assert summary.metrics["loss/D_r1"] > 0 and summary.metrics["loss/D_r2"] > 0
