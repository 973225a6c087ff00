import pytest
import torch
from torch import nn

from gandist.models import DCGANDiscriminator, DCGANGenerator, init_weights


@pytest.mark.parametrize("resolution", [32, 64])
def test_generator_shape_and_range(resolution: int) -> None:
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=16, resolution=resolution, width=8, channels=3)
    out = G(torch.randn(2, 16))
    assert out.shape == (2, 3, resolution, resolution)
    assert out.abs().max() <= 1.0


@pytest.mark.parametrize("resolution", [32, 64])
def test_discriminator_shape(resolution: int) -> None:
    D = DCGANDiscriminator(resolution=resolution, width=8, channels=1)
    assert D(torch.randn(3, 1, resolution, resolution)).shape == (3,)


def test_width_is_generator_last_hidden_and_discriminator_first() -> None:
    G = DCGANGenerator(z_dim=16, resolution=64, width=8)
    D = DCGANDiscriminator(resolution=64, width=8)
    g_convs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    d_convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in g_convs] == [64, 32, 16, 8, 3]
    assert [c.out_channels for c in d_convs] == [8, 16, 32, 64, 1]


def test_discriminator_returns_raw_logits() -> None:
    D = DCGANDiscriminator(resolution=32, width=8)
    with torch.no_grad():
        D.net[-1].bias.fill_(5.0)  # a sigmoid output could never exceed 1
        assert (D(torch.randn(2, 3, 32, 32)) > 1).all()


@pytest.mark.parametrize("which", ["G", "D"])
def test_gradients_reach_every_parameter(which: str) -> None:
    torch.manual_seed(0)
    if which == "G":
        net: nn.Module = DCGANGenerator(z_dim=8, resolution=32, width=4)
        out = net(torch.randn(4, 8))
    else:
        net = DCGANDiscriminator(resolution=32, width=4)
        out = net(torch.randn(4, 3, 32, 32))
    # Random weights: a plain sum through BatchNorm would give the layers before it zero gradient.
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("cls", [DCGANGenerator, DCGANDiscriminator])
def test_bad_resolution_raises(cls: type) -> None:
    with pytest.raises(ValueError, match="48"):
        cls(resolution=48)


def test_init_weights_follows_dcgan() -> None:
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=32, resolution=64, width=16)
    conv_w = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    bn_w = torch.cat([m.weight for m in G.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(conv_w.mean().item()) < 0.002
    assert abs(conv_w.std().item() - 0.02) < 0.002
    assert abs(bn_w.mean().item() - 1.0) < 0.01 and 0.005 < bn_w.std().item() < 0.04
    for m in G.modules():
        if getattr(m, "bias", None) is not None:
            assert (m.bias == 0).all()

    # Applying it again redraws the weights from the same distributions.
    conv = nn.Conv2d(64, 64, 4)
    init_weights(conv)
    assert abs(conv.weight.std().item() - 0.02) < 0.002 and (conv.bias == 0).all()
