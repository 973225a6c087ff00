"""Class-conditional G (a class embedding beside the noise) and projection D around DCGAN and
R3GAN, and the features/head split of each D they rely on."""

from __future__ import annotations

import pytest
import torch

from gandist.models.conditional import ConditionalGenerator, ProjectionDiscriminator
from gandist.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gandist.models.r3gan import R3GANDiscriminator, R3GANGenerator

CLASSES = 3


def pair(arch: str, z_dim: int = 8):
    torch.manual_seed(0)
    if arch == "dcgan":
        return DCGANGenerator(z_dim=2 * z_dim, resolution=32, width=8), DCGANDiscriminator(resolution=32, width=8)
    return (R3GANGenerator(z_dim=2 * z_dim, resolution=32, width=16, blocks=1),
            R3GANDiscriminator(resolution=32, width=16, blocks=1))


@pytest.mark.parametrize("arch", ["dcgan", "r3gan"])
def test_each_d_is_its_head_on_its_features(arch):
    _, D = pair(arch)
    D.eval()
    x = torch.randn(4, 3, 32, 32)
    h = D.features(x)
    assert h.shape == (4, D.feature_dim)
    assert torch.equal(D.head(h), D(x))


@pytest.mark.parametrize("arch", ["dcgan", "r3gan"])
def test_the_label_steers_g_and_d_and_every_parameter_learns(arch):
    inner_g, inner_d = pair(arch)
    G, D = ConditionalGenerator(inner_g, CLASSES, z_dim=8), ProjectionDiscriminator(inner_d, CLASSES)
    z = torch.randn(2, 8).repeat(CLASSES, 1)
    labels = torch.arange(CLASSES).repeat_interleave(2)
    images = G(z, labels)
    assert images.shape == (6, 3, 32, 32)
    assert not torch.allclose(images[0], images[2])  # one noise, two classes: two images
    D.eval()
    x = torch.randn(6, 3, 32, 32)
    # The projection starts at zero: the conditional D starts as its inner D.
    assert torch.equal(D(x, labels), inner_d(x))
    with torch.no_grad():
        D.embed.weight.normal_()
    assert not torch.allclose(D(x, torch.zeros_like(labels)), D(x, torch.ones_like(labels)))
    D.train()
    D(G(z, labels), labels).sum().backward()
    for name, p in [*G.named_parameters(), *D.named_parameters()]:
        assert p.grad is not None, name  # (R3GAN's zero-initialised block ends hold some at 0 at first)
    assert G.embed.weight.grad[:CLASSES].abs().sum(dim=1).min() > 0  # every class's embedding learns
    assert D.embed.weight.grad.abs().sum(dim=1).min() > 0
