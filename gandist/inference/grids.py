"""Image grids for TensorBoard: sample grids (generate), input | target | prediction (segment,
translate)."""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

# Background black, then distinct colours; classes beyond the table reuse it.
PALETTE = torch.tensor(
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128]],
    dtype=torch.float32,
) / 255.0


def grid(images: Tensor, nrow: int, pad: int = 2) -> Tensor:
    """[N, 3, H, W] in [0, 1] -> one [3, H', W'] image, ``nrow`` images per row."""
    n, c, h, w = images.shape
    rows = math.ceil(n / nrow)
    out = torch.ones(c, rows * (h + pad) + pad, nrow * (w + pad) + pad)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        out[:, y:y + h, x:x + w] = images[i].detach().float().cpu()
    return out


def to_unit(images: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1]."""
    return ((images.detach().float() + 1) / 2).clamp(0, 1)


def colorize(mask: Tensor) -> Tensor:
    """[N, H, W] class ids -> [N, 3, H, W] colours."""
    palette = PALETTE.to(mask.device)
    return palette[mask.long() % len(palette)].permute(0, 3, 1, 2)


def legend(classes: Sequence[str], width: int) -> Tensor:
    """A [3, h, width] strip on white: each class's colour swatch and name, wrapped to width."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()  # bundled with Pillow: nothing to download
    swatch, gap, line = 10, 6, 14
    entries, x, y = [], 2, 2
    for i, name in enumerate(classes):
        w = swatch + 3 + int(font.getlength(name)) + gap
        if x > 2 and x + w > width:
            x, y = 2, y + line
        entries.append((i, name, x, y))
        x += w
    canvas = Image.new("RGB", (width, y + line + 2), "white")
    draw = ImageDraw.Draw(canvas)
    for i, name, ex, ey in entries:
        colour = tuple(int(c * 255) for c in PALETTE[i % len(PALETTE)].tolist())
        draw.rectangle([ex, ey + 1, ex + swatch - 1, ey + swatch], fill=colour, outline=(128, 128, 128))
        draw.text((ex + swatch + 3, ey), name, fill=(0, 0, 0), font=font)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255


def segment_triplets(image: Tensor, target: Tensor, pred: Tensor,
                     classes: Optional[Sequence[str]] = None) -> Tensor:
    """One row per sample: input | target mask | predicted mask, under a class legend."""
    rows = torch.stack([to_unit(image).cpu(), colorize(target).cpu(), colorize(pred).cpu()], dim=1)
    body = grid(rows.flatten(0, 1), nrow=3)
    if not classes:
        return body
    return torch.cat([legend(classes, body.shape[2]), body], dim=1)


def as_rgb(images: Tensor) -> Tensor:
    """[N, C, H, W] images of 1 (grey), 3 or 4 (RGBA: alpha dropped) channels as RGB."""
    c = images.shape[1]
    return images.expand(-1, 3, -1, -1) if c == 1 else images[:, :3]


def translate_triplets(image: Tensor, target: Tensor, fake: Tensor) -> Tensor:
    """One row per pair: A | true B | generated B (all in [-1, 1])."""
    rows = torch.stack([to_unit(as_rgb(image)).cpu(), to_unit(as_rgb(target)).cpu(), to_unit(as_rgb(fake)).cpu()],
                       dim=1)
    return grid(rows.flatten(0, 1), nrow=3)


def class_grid(G: torch.nn.Module, z: Tensor, classes: Sequence[str], batch: int = 64) -> Tensor:
    """A conditional G's samples, one row per class (named on the left), the same noise in
    every row: a column shows one z under each class. ``z``: [per_class, z_dim] on G's device."""
    per_class = z.shape[0]
    labels = torch.arange(len(classes), device=z.device).repeat_interleave(per_class)
    z_all = z.repeat(len(classes), 1)
    images = torch.cat([G(zc, yc) for zc, yc in zip(z_all.split(batch), labels.split(batch))])
    body = grid(to_unit(images), nrow=per_class)
    return torch.cat([row_names(classes, body.shape[1], images.shape[2]), body], dim=2)


def row_names(names: Sequence[str], height: int, row: int, pad: int = 2) -> Tensor:
    """A [3, height, w] strip on white with ``names[i]`` beside the i-th grid row."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    width = 6 + max(int(font.getlength(name)) for name in names)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        draw.text((3, pad + i * (row + pad) + max(0, row // 2 - 6)), name, fill=(0, 0, 0), font=font)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1).float() / 255
