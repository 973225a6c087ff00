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


def r3gan_conditional(classes: int, width: int, z_dim: int, blocks: int = 1):
    from gandist.config import compose_config
    from gandist.models.factory import build_networks

    cfg = compose_config(["task=generate", "model=r3gan", f"model.g_width={width}", f"model.d_width={width}",
                          f"model.blocks={blocks}", f"model.z_dim={z_dim}", "model.conditional=true"])
    return build_networks(cfg, classes)


def test_conditional_r3gan_has_the_reference_networks_parameter_counts():
    """brownvc/R3GAN Networks.py built with widths [16]*4, cardinality [2]*4, one block per stage,
    noise 8, 3 classes, ConditionEmbeddingDimension 8 (G) and 16 (D): 23,368 and 23,392 parameters.
    D's last linear layer maps its 16 features to 16 values (not 1 logit) and there is no
    unconditional term: 16 x 16 + 3 x 16 beside the shared trunk."""
    G, D = r3gan_conditional(CLASSES, width=16, z_dim=8)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert (count(G), count(D)) == (23_368, 23_392)
    assert D.inner.logit.weight.shape == (16, 16) and D.embed.weight.shape == (CLASSES, 16)


def test_conditional_r3gan_is_initialised_as_the_reference_and_has_no_unconditional_term():
    """R3GAN's MSR init of its bias-free embedding layers on one-hot labels: G's N(0, 1/classes),
    D's at gain 1/sqrt(dim), N(0, 1/(dim x classes)); D's logit is <last features, embedding>."""
    torch.manual_seed(0)
    G, D = r3gan_conditional(10, width=64, z_dim=64)
    g_std, d_std = G.embed.weight.std().item(), D.embed.weight.std().item()
    assert abs(g_std / (1 / 10 ** 0.5) - 1) < 0.1 and abs(d_std / (1 / (64 * 10) ** 0.5) - 1) < 0.1
    assert abs(D.inner.logit.weight.std().item() * 64 ** 0.5 - 1) < 0.1  # MSR: 1/sqrt(fan-in)
    D.eval()
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 3, 9])
    assert torch.allclose(D(x, labels), (D.inner(x) * D.embed.weight[labels]).sum(dim=1), atol=1e-6)
    with torch.no_grad():
        D.embed.weight.zero_()
    assert torch.equal(D(x, labels), torch.zeros(4))  # nothing but the projection
