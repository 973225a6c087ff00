import pytest
import torch
from torch import nn

from gandist.config import TrainerConfig
from gandist.train.ema import EmaUpdater, ema_beta, ema_beta_at


def test_half_life_is_in_images_not_steps():
    # After one half-life of images the old weight has decayed to one half, whatever the batch.
    for batch in (8, 64):
        steps = 10_000 // batch
        beta = ema_beta(batch, images_seen=10**9, halflife_kimg=10.0, rampup=0.0)
        assert abs(beta ** steps - 0.5) < 0.05


def test_rampup_shortens_the_half_life_early():
    early = ema_beta(32, images_seen=320, halflife_kimg=10.0, rampup=0.05)
    late = ema_beta(32, images_seen=10**7, halflife_kimg=10.0, rampup=0.05)
    assert early < late
    assert abs(early - 0.5 ** (32 / 16)) < 1e-12


def test_cosine_ramp_is_r3gans_half_life_from_zero_to_its_final_value():
    """R3GAN's ema_scheduler: half-life 0 -> ema_kimg on a cosine over the horizon (CIFAR-10: 5000
    kimg over 20000 kimg), then held; the first step copies G."""
    t = TrainerConfig(ema_kimg=5000, ema_ramp="cosine", schedule_kimg=20000, max_steps=10)
    batch = 512
    assert ema_beta_at(t, batch, 0, 0) == 0.0
    for images, halflife in ((10_000_000, 2_500_000), (20_000_000, 5_000_000), (60_000_000, 5_000_000)):
        assert ema_beta_at(t, batch, 1, images) == pytest.approx(0.5 ** (batch / halflife), rel=1e-12)
    # Over the run without schedule_kimg: halfway through 10 steps, half the half-life.
    run = TrainerConfig(ema_kimg=1, ema_ramp="cosine", max_steps=10)
    assert ema_beta_at(run, 8, 5, 40) == pytest.approx(0.5 ** (8 / 500))
    # The default keeps StyleGAN2-ADA's ramp-up: images seen after the step, times ema_rampup.
    assert ema_beta_at(TrainerConfig(), 32, 0, 288) == ema_beta(32, 320, 10.0, 0.05)


def test_update_moves_parameters_and_copies_buffers():
    model, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.weight.fill_(0.0)
        model.running_mean.fill_(5.0)
    update = EmaUpdater(ema, model)
    update(beta=0.75)
    assert torch.allclose(ema.weight, torch.full((3,), 0.25))
    assert torch.equal(ema.running_mean, model.running_mean)
    with torch.no_grad():  # the lists it took are the modules' own tensors: later values are seen
        model.weight.fill_(2.0)
    update(beta=0.5)
    assert torch.allclose(ema.weight, torch.full((3,), 1.125))
