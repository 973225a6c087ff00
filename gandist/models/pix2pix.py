"""pix2pix networks (Isola et al. 2017): a U-Net generator and a PatchGAN discriminator, and a
per-pixel discriminator (Hung et al. 2018) beside it."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gandist.models.dcgan import init_weights

MIN_RESOLUTION, MAX_RESOLUTION = 16, 512


class UNetGenerator(nn.Module):
    """[N, in_channels, R, R] -> raw logits [N, out_channels, R, R].

    log2(R) stride-2 levels take the input down to 1x1; each decoder level is concatenated
    with the encoder features of the same size, which carry the fine detail the bottleneck loses.
    No output activation unless ``tanh`` (images in [-1, 1], for translation): a segmenter's
    caller takes the softmax over classes.

    As pix2pix's code (junyanz ``UnetGenerator``, which it equals given the same weights): each
    up-conv reads ReLU of [decoder, skip], so a skip enters as ReLU of the encoder's normalised
    conv output, not its LeakyReLU; only the outermost up-conv has a bias; dropout sits in the
    ``log2(R) - 5`` decoder blocks just outside the innermost (none below 64 pixels).

    ``refine`` > 0 replaces the last transposed conv's output with ``refine`` feature channels
    and adds a head at full resolution: a 3x3 conv over [those features, the input image] and a
    1x1 conv to the outputs. pix2pix's last layer predicts each pixel from the half-resolution
    features alone; the head sees the pixels themselves, which is what a segment boundary needs.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 4, resolution: int = 64, width: int = 64,
                 dropout: float = 0.5, refine: int = 0, tanh: bool = False) -> None:
        super().__init__()
        self.tanh = tanh
        is_pow2 = resolution > 0 and resolution & (resolution - 1) == 0
        if not (is_pow2 and MIN_RESOLUTION <= resolution <= MAX_RESOLUTION):
            raise ValueError(f"U-Net resolution must be a power of two in "
                             f"[{MIN_RESOLUTION}, {MAX_RESOLUTION}], got {resolution!r}")
        n = resolution.bit_length() - 1
        chans = [width * min(2**i, 8) for i in range(n)]

        self.down = nn.ModuleList()  # outermost first
        for i in range(n):
            c_in = in_channels if i == 0 else chans[i - 1]
            # No BN on the input, nor on the 1x1 bottleneck (a single value per channel at batch 1);
            # no conv bias either, as pix2pix (its bias flag follows the norm kind, not the block).
            norm = 0 < i < n - 1
            layers: list[nn.Module] = [nn.Conv2d(c_in, chans[i], 4, 2, 1, bias=False)]
            if norm:
                layers.append(nn.BatchNorm2d(chans[i]))
            # The bottleneck gets ReLU, the decoder's activation, as in pix2pix; the rest LeakyReLU.
            layers.append(nn.ReLU(inplace=True) if i == n - 1 else nn.LeakyReLU(0.2, inplace=True))
            self.down.append(nn.Sequential(*layers))

        self.up = nn.ModuleList()  # innermost first, in the order they run
        for k in range(n):
            level = n - 1 - k  # the encoder level whose resolution this block starts from
            c_in = chans[level] if k == 0 else 2 * chans[level]  # all but the innermost take [decoder, skip]
            if level == 0:
                self.up.append(nn.ConvTranspose2d(c_in, refine or out_channels, 4, 2, 1))
                continue
            c_out = chans[level - 1]
            layers = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                      nn.ReLU(inplace=True)]
            # pix2pix's noise source: its code's num_downs - 5 blocks around the innermost (its paper
            # says the first three decoder layers, which its code never does).
            if 1 <= k <= n - 5 and dropout > 0:
                layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.head = None
        if refine:
            self.head = nn.ModuleDict({
                "features": nn.Sequential(nn.BatchNorm2d(refine), nn.ReLU(inplace=True)),
                "refine": nn.Sequential(nn.Conv2d(refine + in_channels, refine, 3, 1, 1, bias=False),
                                        nn.BatchNorm2d(refine), nn.ReLU(inplace=True),
                                        nn.Conv2d(refine, out_channels, 1)),
            })
        self.apply(init_weights)

    def forward(self, x: Tensor) -> Tensor:
        image = x
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = skips.pop()  # the bottleneck itself is the decoder's input, not a skip
        for block in self.up:
            x = block(x)
            if skips:
                # pix2pix's uprelu over the concatenation: x is already ReLU's output, and ReLU of the
                # LeakyReLU'd skip is ReLU of the encoder's pre-activation features.
                x = torch.cat([x, F.relu(skips.pop())], dim=1)
        if self.head is not None:
            x = self.head["refine"](torch.cat([self.head["features"](x), image], dim=1))
        return torch.tanh(x) if self.tanh else x


class PatchDiscriminator(nn.Module):
    """[N, in_channels, H, W] -> raw patch logits [N, 1, h, w].

    Each logit judges one input patch (70x70 for n_layers=3), so D models local texture and
    leaves global structure to the L1 / conditional terms, as in pix2pix.
    """

    def __init__(self, in_channels: int = 7, width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"PatchDiscriminator n_layers must be >= 1, got {n_layers!r}")
        layers: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        ch = width
        for i in range(1, n_layers + 1):
            nxt = width * min(2**i, 8)
            stride = 2 if i < n_layers else 1  # the last hidden layer widens the patch without downsampling
            layers += [nn.Conv2d(ch, nxt, 4, stride, 1, bias=False), nn.BatchNorm2d(nxt),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch = nxt
        layers.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class PixelDiscriminator(nn.Module):
    """[N, in_channels, H, W] -> a per-pixel logit map [N, 1, H, W] (Hung et al. 2018).

    ``n_layers`` convolutions with LeakyReLU and no normalisation, then a classifier: Hung et
    al.'s FCDiscriminator is 4 + 1 such layers of 4x4 stride 2 (output stride 32), its map
    upsampled (bilinear, corners aligned) back to the input's size, so each pixel gets D's
    confidence that its class map there is real. ``stride`` (a power of two, at most
    2^(n_layers + 1)) is the map's output stride: the first log2(stride) layers are the
    reference's 4x4 stride-2 convs, the rest 3x3 stride-1 ones, which keep the depth but not
    the downsampling; at a small resolution stride 32 leaves a 1x1 map, one verdict per image.
    Weights keep PyTorch's default init, as the reference's (it sets none): DCGAN's N(0, 0.02)
    makes the 512-wide layers three times as large as the reference's and D starts out surer.
    """

    def __init__(self, in_channels: int = 7, width: int = 64, n_layers: int = 4,
                 stride: Optional[int] = None) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"PixelDiscriminator n_layers must be >= 1, got {n_layers!r}")
        stride = 2 ** (n_layers + 1) if stride is None else stride
        halvings = stride.bit_length() - 1
        if stride < 1 or stride != 2**halvings or halvings > n_layers + 1:
            raise ValueError(f"PixelDiscriminator stride must be a power of two up to 2^(n_layers + 1) = "
                             f"{2 ** (n_layers + 1)}, got {stride!r}")
        self.stride = stride

        def conv(c_in: int, c_out: int, i: int) -> nn.Conv2d:
            return nn.Conv2d(c_in, c_out, 4, 2, 1) if i < halvings else nn.Conv2d(c_in, c_out, 3, 1, 1)

        layers: list[nn.Module] = []
        ch = in_channels
        for i in range(n_layers):
            nxt = width * min(2**i, 8)
            layers += [conv(ch, nxt, i), nn.LeakyReLU(0.2, inplace=True)]
            ch = nxt
        layers.append(conv(ch, 1, n_layers))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(self.net(x), size=x.shape[-2:], mode="bilinear", align_corners=True)
