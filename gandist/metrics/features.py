"""Feature extractors for the generation distances.

``randconv`` is the offline default: a small conv net with fixed random weights drawn from
its own seeded generator, the same on every machine and in every run, so its distances
compare across checkpoints and runs of one resolution. It is not Inception and its
distances are not FID/KID: they are tagged ``fd_randconv`` / ``kd_randconv``. With the
standard FID weights on disk, ``inception`` gives FID and KID proper.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RANDCONV_SEED = 20261125
RANDCONV_WIDTHS = (3, 64, 128, 256, 512)


class RandConvFeatures(nn.Module):
    """Four stride-2 3x3 convs with leaky ReLU on a 64x64 resize; the feature vector is the
    spatial mean of every layer's activations, concatenated (960 values), so both fine and
    coarse statistics count."""

    name = "randconv"
    dim = sum(RANDCONV_WIDTHS[1:])

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(RANDCONV_SEED)
        self.convs = nn.ModuleList()
        for c_in, c_out in zip(RANDCONV_WIDTHS[:-1], RANDCONV_WIDTHS[1:]):
            conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
            with torch.no_grad():  # He-scaled normal weights, not torch's global RNG
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / (c_in * 9)) ** 0.5)
                conv.bias.zero_()
            self.convs.append(conv)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Images in [-1, 1], [N, 3, H, W] -> [N, 960] float32."""
        x = F.interpolate(images.float(), size=(64, 64), mode="bilinear", align_corners=False)
        pooled = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            pooled.append(x.mean(dim=(2, 3)))
        return torch.cat(pooled, dim=1)


@contextlib.contextmanager
def full_precision() -> Iterator[None]:
    """Convolutions and matmuls in full fp32 (no TF32, which Ampere and later GPUs use by
    default): features, and so the distances, then agree between GPUs and CPUs."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled,
                                         benchmark=torch.backends.cudnn.benchmark,
                                         deterministic=torch.backends.cudnn.deterministic, allow_tf32=False):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul


def make_extractor(features: str, inception_weights: Optional[str], device: torch.device) -> nn.Module:
    """The extractor named by ``eval.features``, on ``device``; it has ``name`` and ``dim``.

    Building it leaves the global RNG untouched (torch's layer constructors draw initial
    weights from it), so evaluating never changes what training does next.
    """
    if features not in ("randconv", "inception", "shapes", "digits"):
        raise ValueError(f"eval.features={features!r} is not one of randconv, inception, shapes, digits")
    if features == "inception" and not inception_weights:
        raise ValueError("eval.features=inception needs eval.inception_weights=PATH")
    with torch.random.fork_rng(devices=[]):
        if features == "randconv":
            return RandConvFeatures().to(device)
        if features == "shapes":
            from gandist.metrics.shapes_judge import load_judge

            return load_judge(device)
        if features == "digits":
            from gandist.metrics.digits_judge import load_judge as load_digits_judge

            return load_digits_judge(device)
        from gandist.metrics.inception import load_fid_inception

        return load_fid_inception(inception_weights, device)


def distance_tags(extractor: nn.Module) -> tuple[str, str]:
    """TensorBoard tags of the Fréchet and kernel distances on this extractor's features."""
    if extractor.name == "fid":
        return "eval/fid", "eval/kid"
    return f"eval/fd_{extractor.name}", f"eval/kd_{extractor.name}"
