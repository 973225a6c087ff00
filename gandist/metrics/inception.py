"""The Inception-v3 network of FID, built here so that no torchvision is needed.

FID and KID are only comparable with published numbers when computed on the exact network of
the TensorFlow reference (the 2015-12-05 Inception graph). pytorch-fid ported its weights to
``pt_inception-2015-12-05-6726825d.pth`` and torch-fidelity (the extractor torchmetrics' FID
uses) to ``weights-inception-2015-12-05-6726825d.pth``; this module rebuilds that network with
the module names both files' keys use (torchvision's ``Inception3``) and the graph's own
quirks, which differ from torchvision's blocks:

- the input is 8-bit and resized by TensorFlow 1's bilinear resize, then scaled to
  (x - 128) / 128;
- the 3x3 average pools inside the blocks leave the zero padding out of the mean
  (``count_include_pad=False``), as TensorFlow's pooling does;
- the pool branch of the last block (``Mixed_7c``) is a max pool, not an average pool;
- the classifier has 1008 outputs and there is no auxiliary classifier.

The features are the 2048 values after the final global average pool ("pool3").
tests/metrics/test_inception.py shows they equal torch-fidelity's on the same weights.
The weights are never downloaded: the user copies the file and names it.
"""

from __future__ import annotations

import io
import logging
from typing import Any, Mapping, Union

import fsspec
import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_SOURCE = "https://github.com/mseitzer/pytorch-fid/releases"
INPUT_SIZE = 299
NUM_CLASSES = 1008  # the 2015 graph's classifier: 1000 ImageNet classes plus 8 unused


class ConvBN(nn.Module):
    """Bias-free conv, batch norm, ReLU: every conv of the network. The attribute names
    ``conv`` and ``bn`` are part of the weights file's keys."""

    def __init__(self, c_in: int, c_out: int, kernel_size: Any, stride: int = 1, padding: Any = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)  # TensorFlow's epsilon, not torch's 1e-5

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)  # bn's output is fresh: in place is safe


def avg_pool_3x3(x: Tensor) -> Tensor:
    """Stride-1 3x3 average pool whose border means count only real pixels, as in TensorFlow."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


def max_pool_3x3(x: Tensor) -> Tensor:
    return F.max_pool2d(x, kernel_size=3, stride=1, padding=1)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b..5d): 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 64, 1)
        self.branch5x5_1 = ConvBN(c_in, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(c_in, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(avg_pool_3x3(x)),
        ], dim=1)


class InceptionB(nn.Module):
    """Grid reduction 35x35 -> 17x17 (Mixed_6a)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(c_in, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], dim=1)


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b..6e): 7x7 convs factored into 1x7 and 7x1."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(c_in, 192, 1)
        self.branch7x7_1 = ConvBN(c_in, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(c_in, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7dbl = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7dbl = conv(b7dbl)
        return torch.cat([self.branch1x1(x), b7, b7dbl, self.branch_pool(avg_pool_3x3(x))], dim=1)


class InceptionD(nn.Module):
    """Grid reduction 17x17 -> 8x8 (Mixed_7a)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(c_in, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(c_in, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7x3_1(x)
        for conv in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = conv(b7)
        return torch.cat([
            self.branch3x3_2(self.branch3x3_1(x)),
            b7,
            F.max_pool2d(x, kernel_size=3, stride=2),
        ], dim=1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, Mixed_7c): 3x3 convs split into parallel 1x3 and 3x1.

    ``max_pool`` picks the pool of the pool branch: the TensorFlow graph has a max pool in
    Mixed_7c (where the paper has an average pool); FID must reproduce that graph.
    """

    def __init__(self, c_in: int, max_pool: bool = False) -> None:
        super().__init__()
        self.pool = max_pool_3x3 if max_pool else avg_pool_3x3
        self.branch1x1 = ConvBN(c_in, 320, 1)
        self.branch3x3_1 = ConvBN(c_in, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(c_in, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(c_in, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_1(x)
        b3dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(b3), self.branch3x3_2b(b3),
            self.branch3x3dbl_3a(b3dbl), self.branch3x3dbl_3b(b3dbl),
            self.branch_pool(self.pool(x)),
        ], dim=1)


class FIDInceptionV3(nn.Module):
    """FID Inception-v3: images in [-1, 1], [N, 3, H, W] -> pool3 features [N, 2048] float32.

    Built with random weights; ``load_fid_inception`` gives the real ones. ``fc`` is never
    used by ``forward``: it exists so that the weights file loads strictly.
    """

    name = "fid"
    dim = 2048

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, c7=128)
        self.Mixed_6c = InceptionC(768, c7=160)
        self.Mixed_6d = InceptionC(768, c7=160)
        self.Mixed_6e = InceptionC(768, c7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(self.dim, NUM_CLASSES)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Images in [-1, 1], any H, W -> [N, 2048].

        The images are first quantised to 8 bits as a saved image is, then resized and scaled
        as the reference graph does it: TensorFlow 1's bilinear resize, then (x - 128) / 128.
        """
        # Autocast off: half-precision features would shift the statistics FID compares.
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = ((images.float() + 1) * 127.5).round().clamp(0, 255)
            x = (resize_bilinear_tf1(x, INPUT_SIZE) - 128) / 128
            x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
            x = F.max_pool2d(x, kernel_size=3, stride=2)
            x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
            x = F.max_pool2d(x, kernel_size=3, stride=2)
            for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                          self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                          self.Mixed_7c):
                x = block(x)
            return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def _tf1_taps(size_in: int, size_out: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """TensorFlow 1's resize_bilinear (align_corners=False, no half-pixel centres) along one
    axis: output i samples input i * size_in / size_out, between its floor and the next pixel
    (clamped at the edge)."""
    src = torch.arange(size_out, dtype=torch.float32, device=device) * torch.tensor(
        size_in / size_out, dtype=torch.float32)
    low = src.long()
    high = (low + 1).clamp(max=size_in - 1)
    return low, high, src - low.float()


def resize_bilinear_tf1(x: Tensor, size: int) -> Tensor:
    """[N, C, H, W] float -> [N, C, size, size], resampled as the FID reference graph does (it
    differs from torch's bilinear interpolate, which centres pixels)."""
    low, high, frac = _tf1_taps(x.shape[2], size, x.device)
    top, bottom = x[:, :, low, :], x[:, :, high, :]
    x = top + (bottom - top) * frac.view(1, 1, -1, 1)
    low, high, frac = _tf1_taps(x.shape[3], size, x.device)
    left, right = x[:, :, :, low], x[:, :, :, high]
    return left + (right - left) * frac.view(1, 1, 1, -1)


def _not_the_weights(path: str, problems: list[str]) -> ValueError:
    return ValueError(
        f"eval.inception_weights={path!r} is not the FID Inception state_dict ({FID_WEIGHTS_FILE}): "
        + "; ".join(problems)
        + f". Copy {FID_WEIGHTS_FILE} from {FID_WEIGHTS_SOURCE} and point eval.inception_weights=PATH at it.")


def _some(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def _read_state_dict(path: str) -> Mapping[str, Tensor]:
    try:
        with fsspec.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"eval.inception_weights={path!r}: no such file. gandist does not download the FID Inception "
            f"weights: copy {FID_WEIGHTS_FILE} (from the pytorch-fid GitHub releases, {FID_WEIGHTS_SOURCE}) "
            f"to this machine and set eval.inception_weights=PATH to where it lies.") from None
    try:
        # weights_only: a weights file must hold tensors, never code to run.
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:
        raise _not_the_weights(path, [f"torch.load cannot read it as a weights-only file ({e})"]) from e
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise _not_the_weights(path, [f"it holds a {type(state).__name__}, not a mapping of names to tensors"])
    return state


def load_fid_inception(path: str, device: Union[torch.device, str] = "cpu") -> FIDInceptionV3:
    """The FID Inception with the weights at ``path`` (a local path or fsspec URL), strictly
    loaded, frozen, in eval mode, on ``device``."""
    state = dict(_read_state_dict(path))
    # Built on the meta device: no throwaway random init, and the global RNG is untouched.
    with torch.device("meta"):
        net = FIDInceptionV3()
    expected = net.state_dict()
    # num_batches_tracked only counts training steps (it plays no part in eval) and files saved
    # by older torch lack it: supply it rather than reject a file for it.
    for key in expected:
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} (want {tuple(v.shape)})"
                  for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = [f"{label} keys: {_some(keys)}" for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("mismatched shapes of", mismatched)) if keys]
    if problems:
        raise _not_the_weights(path, problems)
    # Float tensors to float32 so the loaded network matches forward's float32 input.
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    net.requires_grad_(False)
    net.eval()
    log.info("Loaded the FID Inception weights from %s", path)
    return net.to(device)
