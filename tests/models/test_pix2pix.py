import pytest
import torch
from torch import nn

from gandist.models import PatchDiscriminator, UNetGenerator


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("out_channels", [1, 4, 7])
def test_unet_shape(resolution: int, out_channels: int) -> None:
    G = UNetGenerator(in_channels=3, out_channels=out_channels, resolution=resolution, width=4)
    out = G(torch.randn(2, 3, resolution, resolution))
    assert out.shape == (2, out_channels, resolution, resolution)


def test_unet_outputs_raw_logits() -> None:
    torch.manual_seed(0)
    G = UNetGenerator(out_channels=2, resolution=16, width=4)
    with torch.no_grad():
        G.up[-1].bias.fill_(3.0)  # neither tanh nor softmax could give values above 1
        assert (G(torch.randn(2, 3, 16, 16)) > 1).any()


def test_unet_levels_and_skip_channels() -> None:
    G = UNetGenerator(in_channels=3, out_channels=5, resolution=64, width=4)
    assert len(G.down) == len(G.up) == 6  # log2(64)
    enc = [b[0].out_channels for b in G.down]
    assert enc == [4, 8, 16, 32, 32, 32]  # capped at 8 * width
    dec_in = [(b if isinstance(b, nn.ConvTranspose2d) else b[0]).in_channels for b in G.up]
    # Every block but the innermost reads its own input concatenated with the same-size encoder features.
    assert dec_in == [32, 64, 64, 32, 16, 8]


def test_unet_uses_skip_connections() -> None:
    torch.manual_seed(0)
    G = UNetGenerator(out_channels=2, resolution=16, width=4).eval()
    # Cut the bottleneck: without skips, the output could no longer depend on the input.
    G.down[-1].register_forward_hook(lambda mod, inp, out: torch.zeros_like(out))
    x1, x2 = torch.randn(2, 1, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(G(x1), G(x2))


def dropout_blocks(G: UNetGenerator) -> list[bool]:
    return [any(isinstance(m, nn.Dropout) for m in b.modules()) for b in G.up]  # innermost first


@pytest.mark.parametrize("resolution, expected", [
    (256, [False, True, True, True, False, False, False, False]),  # unet_256: num_downs - 5 = 3 blocks
    (128, [False, True, True, False, False, False, False]),
    (64, [False, True, False, False, False, False]),
    (32, [False] * 5),
])
def test_unet_dropout_where_pix2pix_code_puts_it(resolution: int, expected: list[bool]) -> None:
    """junyanz UnetGenerator: dropout in the num_downs - 5 blocks wrapping the innermost, never
    the innermost itself, and no 4w-channel block at any size."""
    G = UNetGenerator(resolution=resolution, width=2, dropout=0.5)
    assert dropout_blocks(G) == expected
    G0 = UNetGenerator(resolution=resolution, width=2, dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in G0.modules())


@pytest.mark.parametrize("resolution, params", [(256, 54_413_955), (128, 41_828_995)])
def test_unet_parameter_count_is_pix2pix_unet(resolution: int, params: int) -> None:
    """Facts from junyanz's code: unet_256 / unet_128 at ngf 64, 3 -> 3 channels, batch norm
    (it prints 54.414 M for unet_256): the same layers and biases."""
    with torch.device("meta"):  # shapes only: no memory, no time
        G = UNetGenerator(in_channels=3, out_channels=3, resolution=resolution, width=64, tanh=True)
    assert sum(p.numel() for p in G.parameters()) == params


def test_unet_up_convs_read_relu_of_decoder_and_skip() -> None:
    """pix2pix applies ReLU to [skip, decoder] before every up-conv: each up-conv's input is
    non-negative, while the encoder's own outputs (LeakyReLU) are not."""
    torch.manual_seed(0)
    G = UNetGenerator(in_channels=3, out_channels=3, resolution=32, width=4, tanh=True)
    seen: list[torch.Tensor] = []
    convs = [b if isinstance(b, nn.ConvTranspose2d) else b[0] for b in G.up]
    for conv in convs:
        conv.register_forward_pre_hook(lambda mod, inp: seen.append(inp[0].detach().clone()))
    G.down[0].register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone()))
    G(torch.randn(4, 3, 32, 32))
    encoder_level0, up_inputs = seen[0], seen[1:]
    assert (encoder_level0 < 0).any()  # the skip as the encoder passes it on
    assert len(up_inputs) == 5 and all((x >= 0).all() for x in up_inputs)


def assert_gradients_reach_every_parameter(net: nn.Module, x: torch.Tensor) -> None:
    out = net(x)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unet_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    assert_gradients_reach_every_parameter(UNetGenerator(out_channels=3, resolution=16, width=4),
                                           torch.randn(2, 3, 16, 16))


@pytest.mark.parametrize("resolution", [8, 48, 1024])
def test_unet_bad_resolution_raises(resolution: int) -> None:
    with pytest.raises(ValueError, match=str(resolution)):
        UNetGenerator(resolution=resolution)


def test_patch_discriminator_gives_spatial_map() -> None:
    D = PatchDiscriminator(in_channels=7, width=4, n_layers=3)
    assert D(torch.randn(2, 7, 64, 64)).shape == (2, 1, 6, 6)
    assert D(torch.randn(1, 7, 256, 256)).shape == (1, 1, 30, 30)


def test_patch_discriminator_receptive_field_is_70() -> None:
    torch.manual_seed(0)
    D = PatchDiscriminator(in_channels=1, width=2, n_layers=3).eval()  # eval: BN must not mix positions
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    out = D(x)
    out[0, 0, 7, 7].backward()  # an interior logit, so padding does not clip its patch
    rows, cols = x.grad[0, 0].abs().gt(0).nonzero(as_tuple=True)
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_patch_discriminator_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    assert_gradients_reach_every_parameter(PatchDiscriminator(in_channels=7, width=4, n_layers=3),
                                           torch.randn(2, 7, 64, 64))


def test_patch_discriminator_rejects_zero_layers() -> None:
    with pytest.raises(ValueError, match="0"):
        PatchDiscriminator(n_layers=0)


@pytest.mark.parametrize("resolution, n_layers", [(32, 4), (64, 3)])
def test_pixel_discriminator_gives_one_logit_per_input_pixel(resolution: int, n_layers: int) -> None:
    from gandist.models import PixelDiscriminator

    D = PixelDiscriminator(in_channels=5, width=4, n_layers=n_layers)
    x = torch.randn(2, 5, resolution, resolution, requires_grad=True)
    out = D(x)
    assert out.shape == (2, 1, resolution, resolution)
    out[0, 0, 0, 0].backward()
    assert x.grad[1].abs().sum() == 0 and x.grad[0].abs().sum() > 0  # each sample judged on its own


def test_refine_head_predicts_at_full_resolution_from_features_and_image():
    torch.manual_seed(0)
    plain = UNetGenerator(in_channels=3, out_channels=4, resolution=16, width=4, dropout=0.0)
    refined = UNetGenerator(in_channels=3, out_channels=4, resolution=16, width=4, dropout=0.0, refine=6)
    x = torch.randn(2, 3, 16, 16)
    assert refined(x).shape == plain(x).shape == (2, 4, 16, 16)
    assert refined.up[-1].out_channels == 6 and plain.up[-1].out_channels == 4 and plain.head is None
    first = refined.head["refine"][0]
    assert (first.in_channels, first.kernel_size) == (6 + 3, (3, 3))  # the features and the image itself
    # Every parameter, the head's included, gets a gradient.
    refined(x).sum().backward()
    assert all(p.grad is not None for p in refined.parameters())


def test_pixel_discriminator_stride_sets_its_map_and_keeps_hung_et_al_at_32() -> None:
    """Hung et al.'s FCDiscriminator: 4 + 1 4x4 stride-2 convs (64..512 wide), output stride 32;
    a smaller stride keeps the five layers (the later ones 3x3 stride 1) and a finer map."""
    from gandist.models import PixelDiscriminator

    reference = PixelDiscriminator(in_channels=21, width=64, n_layers=4)
    # FCDiscriminator(num_classes=21): 21*64*16+64 + 64*128*16+128 + 128*256*16+256 + 256*512*16+512 + 512*16+1
    assert sum(p.numel() for p in reference.parameters()) == 2_783_169
    assert reference.net(torch.zeros(1, 21, 320, 320)).shape[-2:] == (10, 10)
    fine = PixelDiscriminator(in_channels=5, width=4, n_layers=4, stride=4)
    x = torch.randn(2, 5, 32, 32)
    coarse = fine.net(x)
    assert coarse.shape[-2:] == (8, 8)
    out = fine(x)
    assert out.shape == (2, 1, 32, 32)
    # Upsampled with the corners aligned, as Hung et al.'s interp: the map's corners are the output's.
    assert torch.allclose(out[..., 0, 0], coarse[..., 0, 0]) and torch.allclose(out[..., -1, -1], coarse[..., -1, -1])
    with pytest.raises(ValueError, match="power of two"):
        PixelDiscriminator(in_channels=5, width=4, n_layers=4, stride=6)


def test_pixel_discriminator_keeps_pytorchs_default_init_as_hung_et_al() -> None:
    """FCDiscriminator sets no init: each conv's weights and biases are uniform within
    1/sqrt(fan_in) (kaiming_uniform, a=sqrt(5)), so the 512-wide layers are about 3x smaller than
    DCGAN's N(0, 0.02) and D does not start out surer than the reference's."""
    from gandist.models import PixelDiscriminator

    torch.manual_seed(0)
    D = PixelDiscriminator(in_channels=11, width=64, n_layers=4, stride=4)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5
    for conv in convs:
        fan_in = conv.weight[0].numel()
        bound = 1 / fan_in**0.5
        assert conv.weight.abs().max() <= bound and conv.bias.abs().max() <= bound
        assert conv.bias.abs().max() > (bound / 2 if conv.out_channels > 1 else 0)  # drawn, not zeroed
        assert conv.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.05)


@pytest.mark.parametrize("resolution, want", [(32, 4), (64, 8), (128, 16), (256, 32), (512, 32)])
def test_pixel_d_stride_follows_the_resolution_to_an_8x8_map(resolution: int, want: int) -> None:
    from gandist.config import compose_config, pixel_d_stride
    from gandist.models.factory import build_networks

    assert pixel_d_stride(resolution, 3, None) == want and pixel_d_stride(resolution, 3, 2) == 2
    cfg = compose_config(["task=segment", "model.d_arch=pixel", f"model.resolution={resolution}", "model.d_width=2",
                          "model.g_width=2"]) if resolution <= 64 else None
    if cfg is not None:
        D = build_networks(cfg, 4)[1]
        assert D.stride == want and D.net(torch.zeros(1, 7, resolution, resolution)).shape[-2:] == (8, 8)
