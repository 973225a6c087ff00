import torch
from torch import nn

from gandist.train.ema import EmaUpdater, ema_beta


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
