"""R3GAN's generator and discriminator (Huang et al., NeurIPS 2024, "The GAN is dead; long live
the GAN! A Modern GAN Baseline"), written from the paper and its reference design.

ResNeXt-style residual blocks (1x1 expansion, grouped 3x3, 1x1 back) with no normalization
anywhere: per-GPU batch size then cannot change the result under DDP. Each block's last conv
starts at zero, so every block is the identity at initialization, and the other layers are
scaled by the number of blocks (fix-up initialization) so the residual sum stays bounded.
Resolution changes between stages by [1,2,1] low-pass interpolation (a [1,3,3,1] kernel in
2D), channel changes by 1x1 convs. G starts from a learned 4x4 basis modulated by z; D ends
in a 4x4 depthwise conv and a linear layer. G's output is not squashed (no tanh), as in R3GAN.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE**2))  # keeps a leaky ReLU's output variance at its input's
RESOLUTIONS = (32, 64, 128, 256)


def num_stages(resolution: int) -> int:
    """Stages from 4x4 up to ``resolution`` (a power of two in 32..256): 4 at 32, 7 at 256."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"R3GAN resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    return resolution.bit_length() - 2  # log2(resolution / 4) + 1


def msr_init(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    """He-style init N(0, gain^2 / fan_in); a gain of 0 zeroes the layer."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(fan_in))
    return layer


def conv(in_ch: int, out_ch: int, kernel: int, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    return msr_init(nn.Conv2d(in_ch, out_ch, kernel, padding=(kernel - 1) // 2, groups=groups, bias=False), gain)


class BiasedLeakyReLU(nn.Module):
    """A per-channel bias, then a leaky ReLU: the only bias in a block (its convs have none)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1).to(x.dtype), LRELU_SLOPE)


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))), the inner width ``expansion`` x C in
    groups of ``group_channels``; ``total_blocks`` (in the whole network) scales the init."""

    def __init__(self, channels: int, expansion: int, group_channels: int, total_blocks: int) -> None:
        super().__init__()
        inner = channels * expansion
        if inner % group_channels:
            raise ValueError(f"a block's inner width {inner} (channels {channels} x expansion {expansion}) is not a "
                             f"multiple of model.group_channels={group_channels}")
        # Three linear layers per block: each of the first two is scaled so that the sum over all
        # blocks keeps unit variance (R3GAN's variance scaling), the last starts at zero.
        gain = LRELU_GAIN * total_blocks ** (-1 / (2 * 3 - 2))
        self.expand = conv(channels, inner, 1, gain=gain)
        self.act1 = BiasedLeakyReLU(inner)
        self.spatial = conv(inner, inner, 3, groups=inner // group_channels, gain=gain)
        self.act2 = BiasedLeakyReLU(inner)
        self.project = conv(inner, channels, 1, gain=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.project(self.act2(self.spatial(self.act1(self.expand(x)))))


def lowpass_kernel() -> Tensor:
    """The 2D [1,3,3,1] x [1,3,3,1] / 64 kernel: [1,2,1] convolved with the box [1,1]."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


class Upsample(nn.Module):
    """x2 by zero insertion and the low-pass kernel (scaled by 4 to keep the mean), per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", (4 * lowpass_kernel())[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = F.conv_transpose2d(x.reshape(n * c, 1, h, w), self.kernel.to(x.dtype), stride=2, padding=1)
        return y.reshape(n, c, 2 * h, 2 * w)


class Downsample(nn.Module):
    """/2 by the low-pass kernel at stride 2, per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", lowpass_kernel()[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        y = F.conv2d(x.reshape(n * c, 1, h, w), self.kernel.to(x.dtype), stride=2, padding=1)
        return y.reshape(n, c, h // 2, w // 2)


def stage_widths(widths: Optional[Sequence[int]], width: int, stages: int) -> list[int]:
    """Channels per stage, lowest resolution first: ``widths`` as given, else ``width`` at every stage."""
    if widths is None:
        return [width] * stages
    if len(widths) != stages:
        raise ValueError(f"model.stage_widths has {len(widths)} entries; this resolution has {stages} stages "
                         "(4x4 up to model.resolution), one width each")
    return list(widths)


class R3GANGenerator(nn.Module):
    """z [N, z_dim] -> images [N, channels, R, R] (targets in [-1, 1]; the output is not clamped)."""

    def __init__(self, z_dim: int = 128, resolution: int = 32, width: int = 64, widths: Optional[Sequence[int]] = None,
                 blocks: int = 2, expansion: int = 2, group_channels: int = 16, channels: int = 3) -> None:
        super().__init__()
        ws = stage_widths(widths, width, num_stages(resolution))
        total = blocks * len(ws)
        self.z_dim = z_dim
        self.basis = nn.Parameter(torch.randn(ws[0], 4, 4))
        self.modulate = msr_init(nn.Linear(z_dim, ws[0], bias=False))
        layers: list[nn.Module] = []
        for i, w in enumerate(ws):
            if i > 0:
                if ws[i - 1] != w:
                    layers.append(conv(ws[i - 1], w, 1))
                layers.append(Upsample())
            layers += [ResidualBlock(w, expansion, group_channels, total) for _ in range(blocks)]
        self.body = nn.Sequential(*layers)
        self.to_image = conv(ws[-1], channels, 1)

    def forward(self, z: Tensor) -> Tensor:
        x = self.basis.unsqueeze(0).to(z.dtype) * self.modulate(z.reshape(z.shape[0], self.z_dim))[..., None, None]
        return self.to_image(self.body(x))


class R3GANDiscriminator(nn.Module):
    """Images [N, channels, R, R] -> raw logits [N]; G's stages mirrored (``widths`` lowest
    resolution first, as for G). ``embedding``: the last linear layer gives ``feature_dim`` values
    [N, feature_dim] instead, for R3GAN's conditional D (``EmbeddingDiscriminator``)."""

    def __init__(self, resolution: int = 32, width: int = 64, widths: Optional[Sequence[int]] = None,
                 blocks: int = 2, expansion: int = 2, group_channels: int = 16, channels: int = 3,
                 embedding: bool = False) -> None:
        super().__init__()
        ws = list(reversed(stage_widths(widths, width, num_stages(resolution))))  # highest resolution first
        total = blocks * len(ws)
        layers: list[nn.Module] = [conv(channels, ws[0], 1)]
        for i, w in enumerate(ws):
            layers += [ResidualBlock(w, expansion, group_channels, total) for _ in range(blocks)]
            if i + 1 < len(ws):
                layers.append(Downsample())
                if ws[i + 1] != w:
                    layers.append(conv(w, ws[i + 1], 1))
        self.body = nn.Sequential(*layers)
        # 4x4 -> 1x1 per channel, then one logit.
        self.basis = msr_init(nn.Conv2d(ws[-1], ws[-1], 4, groups=ws[-1], bias=False))
        self.out_dim = ws[-1] if embedding else 1
        self.logit = msr_init(nn.Linear(ws[-1], self.out_dim, bias=False))
        self.feature_dim = ws[-1]

    def features(self, x: Tensor) -> Tensor:
        h = self.basis(self.body(x))
        return h.reshape(h.shape[0], -1)

    def head(self, h: Tensor) -> Tensor:
        y = self.logit(h)
        return y if self.out_dim > 1 else y.reshape(h.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
