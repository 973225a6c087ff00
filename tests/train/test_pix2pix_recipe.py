"""The pix2pix presets (task=translate, task=segment_pix2pix) train as junyanz's code does:
D's loss halved, the linear learning-rate decay, resize-and-crop jitter with flips."""

import pytest
import torch
from torch import nn

from gandist.config import compose_config
from gandist.losses import gan_loss
from gandist.train.phases import Penalty, build_phases, run_step
from gandist.train.tasks import GenerateTask

PRESETS = ["task=translate", "task=segment_pix2pix"]


@pytest.mark.parametrize("preset", PRESETS)
def test_pix2pix_presets_halve_d_loss_and_other_recipes_do_not(preset):
    assert compose_config([preset]).task.d_loss_scale == 0.5  # (loss_D_fake + loss_D_real) * 0.5
    assert compose_config([]).task.d_loss_scale == 1.0
    assert compose_config(["task=segment"]).task.d_loss_scale == 1.0


def d_grads(d_scale: float, gamma: float) -> list[torch.Tensor]:
    """D's gradient after one D phase of a small G/D pair (nonsat, R1 + R2 at ``gamma``)."""
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 48), nn.Unflatten(1, (3, 4, 4))).requires_grad_(False)
    D = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.Tanh(), nn.Linear(8, 1)).requires_grad_(False)
    opt_g, opt_d = (torch.optim.SGD(m.parameters(), lr=0.0) for m in (G, D))  # gradients only
    scalers = [torch.amp.GradScaler("cpu", enabled=False) for _ in range(2)]
    penalty = Penalty(gamma=lambda s: gamma) if gamma else None
    task = GenerateTask(8)
    phases = build_phases(task, gan_loss("nonsat", d_scale), G, D, opt_g, opt_d, *scalers, penalty=penalty)
    torch.manual_seed(1)
    stats = run_step(phases, task, G, {"image": torch.randn(4, 3, 4, 4), "step": 0}).stats
    assert torch.allclose(stats["loss/D"], d_scale * (stats["loss/D_real"] + stats["loss/D_fake"]))
    return [p.grad.clone() for p in D.parameters()]


def test_d_loss_scale_scales_the_gan_term_and_leaves_the_penalties_at_their_weight():
    gan, gan_and_penalty = d_grads(1.0, 0.0), d_grads(1.0, 4.0)
    halved = d_grads(0.5, 4.0)
    for h, g, gp in zip(halved, gan, gan_and_penalty):
        assert torch.allclose(h, 0.5 * g + (gp - g), atol=1e-6)
    assert not torch.allclose(halved[0], gan_and_penalty[0], atol=1e-4)


@pytest.mark.parametrize("preset", PRESETS)
def test_pix2pix_presets_decay_the_rate_linearly_after_half_the_run(preset):
    t = compose_config([preset]).trainer  # n_epochs 100 at the rate, n_epochs_decay 100 down to 0
    assert (t.lr_schedule, t.lr_decay_start, t.lr_final) == ("linear", 0.5, 0.0)


def test_linear_schedule_is_pix2pix_lambda_rule_up_to_one_epoch():
    """pix2pix (n = n_epochs, d = n_epochs_decay, its scheduler stepped at each epoch's start)
    trains epoch E (1-based) at 1 - max(0, E + 1 - n) / (d + 1): e.g. 1, 10/11, ..., 0 for E =
    9, 10, ..., 20 at n = d = 10. gandist's per-step line has each epoch's mean within 1/(2d) of
    that rule one epoch later, and within 1.5/d of the rule itself."""
    from gandist.config import TrainerConfig
    from gandist.train.schedule import lr_factor

    n, d, k = 10, 10, 16  # k steps per epoch
    t = TrainerConfig(lr_schedule="linear", max_steps=(n + d) * k, lr_decay_start=n / (n + d), lr_final=0.0)
    for epoch in range(1, n + d + 1):
        reference = 1 - max(0, epoch + 1 - n) / (d + 1)
        one_epoch_later = 1 - max(0, epoch - n) / (d + 1)
        mean = sum(lr_factor(t, (epoch - 1) * k + j) for j in range(k)) / k
        assert abs(mean - one_epoch_later) <= 1 / (2 * d) + 1e-9, epoch
        assert abs(mean - reference) <= 1.5 / d + 1e-9, epoch
    assert lr_factor(t, n * k - 1) == 1.0 and lr_factor(t, (n + d) * k - 1) < 1 / (d * k) + 1e-9


@pytest.mark.parametrize("preset", PRESETS)
def test_pix2pix_presets_jitter_and_flip_as_resize_and_crop(preset):
    d = compose_config([preset]).data
    assert (d.load_scale, d.flips, d.crop_scale) == (286 / 256, "horizontal", 1.0)
    assert [round(r * d.load_scale) for r in (256, 64, 32)] == [286, 72, 36]
    assert compose_config(["task=segment"]).data.load_scale == 1.0
