import pytest
import torch
from torch import nn

from gandist.config import compose_config
from gandist.models import UNet, UNetGenerator
from gandist.models.factory import build_networks


@pytest.mark.parametrize("resolution", [16, 32, 48, 64])
@pytest.mark.parametrize("out_channels", [1, 4])
def test_unet_keeps_the_resolution(resolution: int, out_channels: int) -> None:
    G = UNet(in_channels=3, out_channels=out_channels, resolution=resolution, width=4)
    assert G(torch.randn(2, 3, resolution, resolution)).shape == (2, out_channels, resolution, resolution)


def test_unet_levels_widths_and_skips() -> None:
    G = UNet(in_channels=3, out_channels=5, resolution=32, width=4)
    assert [b[0].out_channels for b in G.down] == [4, 8, 16, 32, 64]  # width * 2**level, 4 max-pools
    # Each decoder block reads the up-convolved features concatenated with the same-size encoder block's.
    assert [b[0].in_channels for b in G.up] == [64, 32, 16, 8]
    assert all(b[0].kernel_size == (3, 3) for b in [*G.down, *G.up])
    assert G.classify.kernel_size == (1, 1) and G.classify.out_channels == 5


def test_unet_uses_its_skip_connections() -> None:
    torch.manual_seed(0)
    G = UNet(out_channels=2, resolution=16, width=4).eval()
    G.down[-1].register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))  # cut the bottleneck
    x1, x2 = torch.randn(2, 1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(G(x1), G(x2))


def test_unet_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    G = UNet(out_channels=3, resolution=16, width=4)
    out = G(torch.randn(2, 3, 16, 16))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in G.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("resolution", [8, 24, 0])
def test_unet_bad_resolution_names_it(resolution: int) -> None:
    with pytest.raises(ValueError, match=f"multiple of 16.*got {resolution}"):
        UNet(resolution=resolution)


def test_factory_builds_the_configured_segmenter_with_the_same_discriminator() -> None:
    unet = compose_config(["task=segment", "model.resolution=32", "model.g_width=4", "model.d_width=4"])
    pix2pix = compose_config(["task=segment", "model=pix2pix", "model.resolution=32", "model.g_width=4",
                              "model.d_width=4"])
    G1, D1 = build_networks(unet, num_classes=4)
    G2, D2 = build_networks(pix2pix, num_classes=4)
    assert isinstance(G1, UNet) and isinstance(G2, UNetGenerator)
    shapes = [{k: v.shape for k, v in D.state_dict().items()} for D in (D1, D2)]
    assert type(D1) is type(D2) and shapes[0] == shapes[1]
    assert not any(isinstance(m, nn.Dropout) for m in G1.modules())
