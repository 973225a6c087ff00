"""DCGAN generator and discriminator (Radford et al. 2016) for 32x32 or 64x64 images.

Convs followed by BatchNorm carry no bias (BN's shift makes it redundant); the others do.
"""

from __future__ import annotations

from torch import Tensor, nn

RESOLUTIONS = (32, 64)


def init_weights(module: nn.Module) -> None:
    """DCGAN init, for ``Module.apply``: conv weights N(0, 0.02), BN weights N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _num_stages(resolution: int) -> int:
    """Stride-2 stages between 4x4 and ``resolution`` (3 for 32, 4 for 64)."""
    if resolution not in RESOLUTIONS:
        raise ValueError(f"DCGAN resolution must be one of {RESOLUTIONS}, got {resolution!r}")
    return resolution.bit_length() - 3  # log2(resolution / 4)


class DCGANGenerator(nn.Module):
    """z [N, z_dim] -> images [N, channels, R, R] in [-1, 1]."""

    def __init__(self, z_dim: int = 128, resolution: int = 64, width: int = 64, channels: int = 3) -> None:
        super().__init__()
        n = _num_stages(resolution)
        ch = width * 2 ** (n - 1)  # halves at each stage, reaching `width` before the output layer
        layers: list[nn.Module] = [  # 1x1 -> 4x4
            nn.ConvTranspose2d(z_dim, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
        ]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2),
                       nn.ReLU(inplace=True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.z_dim = z_dim
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.reshape(z.shape[0], self.z_dim, 1, 1))


class DCGANDiscriminator(nn.Module):
    """Images [N, channels, R, R] -> raw logits [N]; the losses apply any sigmoid."""

    def __init__(self, resolution: int = 64, width: int = 64, channels: int = 3) -> None:
        super().__init__()
        n = _num_stages(resolution)
        # No BN on the first layer, as in DCGAN: normalising right at the input hurt stability there.
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
        ch = width
        for _ in range(n - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2),
                       nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0))  # 4x4 -> 1x1
        self.net = nn.Sequential(*layers)
        self.feature_dim = ch * 16  # the last 4x4 map, flattened: what a projection D projects on
        self.apply(init_weights)

    def features(self, x: Tensor) -> Tensor:
        for layer in self.net[:-1]:
            x = layer(x)
        return x.flatten(1)

    def head(self, h: Tensor) -> Tensor:
        return self.net[-1](h.view(h.shape[0], -1, 4, 4)).view(h.shape[0])

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
