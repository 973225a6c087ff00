import pytest
import torch
from torch import nn

from gandist.models import R3GANDiscriminator, R3GANGenerator
from gandist.models.r3gan import Downsample, ResidualBlock, Upsample, lowpass_kernel


@pytest.mark.parametrize("resolution", [32, 64, 128])
def test_shapes_at_each_resolution(resolution: int) -> None:
    torch.manual_seed(0)
    G, D = R3GANGenerator(z_dim=16, resolution=resolution, width=16, blocks=1), R3GANDiscriminator(
        resolution=resolution, width=16, blocks=1)
    x = G(torch.randn(3, 16))
    assert x.shape == (3, 3, resolution, resolution) and torch.isfinite(x).all()
    assert D(x).shape == (3,)


def test_no_normalization_so_each_sample_is_independent_of_its_batch() -> None:
    """No BatchNorm (or any normalization): a sample's output does not depend on the rest of
    the batch, so the per-GPU batch size cannot change the result under DDP."""
    torch.manual_seed(0)
    G, D = R3GANGenerator(z_dim=16, width=16), R3GANDiscriminator(width=16)
    norms = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)
    assert not any(isinstance(m, norms) for net in (G, D) for m in net.modules())
    z = torch.randn(6, 16)
    with torch.no_grad():
        images = G(z)
        assert torch.allclose(images[:2], G(z[:2]), atol=1e-6)
        assert torch.allclose(D(images)[3:], D(images[3:]), atol=1e-6)


def test_every_block_is_the_identity_at_initialisation() -> None:
    torch.manual_seed(0)
    block = ResidualBlock(channels=16, expansion=2, group_channels=8, total_blocks=4)
    assert torch.count_nonzero(block.project.weight) == 0
    assert block.spatial.groups == 32 // 8
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(block(x), x)


def test_fixup_init_scales_the_inner_layers_by_the_number_of_blocks() -> None:
    torch.manual_seed(0)
    few, many = (ResidualBlock(64, 2, 16, total_blocks=n) for n in (1, 16))
    # gain ~ total_blocks^(-1/4): 16 blocks give half the weight scale of one.
    ratio = many.expand.weight.std() / few.expand.weight.std()
    assert ratio.item() == pytest.approx(0.5, rel=0.05)


def test_stage_widths_are_used_lowest_resolution_first_and_d_mirrors_them() -> None:
    G = R3GANGenerator(z_dim=8, resolution=32, widths=[64, 48, 32, 16], blocks=1)
    D = R3GANDiscriminator(resolution=32, widths=[64, 48, 32, 16], blocks=1)
    assert G.basis.shape == (64, 4, 4) and G.to_image.in_channels == 16
    assert D.body[0].out_channels == 16 and D.basis.in_channels == 64  # 32x32 first, 4x4 last
    with pytest.raises(ValueError, match="4 stages"):
        R3GANGenerator(resolution=32, widths=[64, 32])


def test_bad_resolution_and_group_size_are_named() -> None:
    with pytest.raises(ValueError, match="got 48"):
        R3GANGenerator(resolution=48)
    with pytest.raises(ValueError, match="group_channels=16"):
        ResidualBlock(channels=12, expansion=1, group_channels=16, total_blocks=1)


def test_resamplers_use_the_121_lowpass_and_keep_a_constant_image_constant() -> None:
    k = lowpass_kernel()
    assert k.shape == (4, 4) and k.sum().item() == pytest.approx(1.0)
    assert torch.allclose(k[0], torch.tensor([1.0, 3.0, 3.0, 1.0]) / 64)
    x = torch.full((1, 2, 8, 8), 3.0)
    up, down = Upsample()(x), Downsample()(x)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))  # away from the padding
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 3.0))


def test_g_and_d_learn_through_every_parameter() -> None:
    torch.manual_seed(0)
    G, D = R3GANGenerator(z_dim=8, width=16, blocks=1), R3GANDiscriminator(width=16, blocks=1)
    for block in [m for m in (*G.modules(), *D.modules()) if isinstance(m, ResidualBlock)]:
        nn.init.normal_(block.project.weight, 0.0, 0.1)  # past the identity start, as after a step
    D(G(torch.randn(4, 8))).square().mean().backward()
    for name, p in (*G.named_parameters(), *D.named_parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
