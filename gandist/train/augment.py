"""Training-batch augmentation on the device: random flips and crops, the same for an image and
its mask (or its B image, for translation), and pix2pix's jitter (resize up, crop back).

Runs on the device after the batch is copied there, drawing from the device's global generator:
its state is in every rank's checkpoint, so a resumed run draws the same flips and crops. Masks
are resampled with nearest-neighbour, so every pixel keeps a real class.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

Batch = dict


def flip(x: Tensor, chosen: Tensor, dim: int) -> Tensor:
    """``x`` with the samples where ``chosen`` [N] is true flipped along ``dim``."""
    return torch.where(chosen.view(-1, *[1] * (x.dim() - 1)), x.flip(dim), x)


def crop_grid(n: int, size: tuple[int, int], min_scale: float, device: torch.device) -> Tensor:
    """Sampling grids [N, H, W, 2] for square crops of a random side in [min_scale, 1] of the
    image's at a random place, resized back to ``size``."""
    scale = min_scale + (1 - min_scale) * torch.rand(n, device=device)
    shift = (torch.rand(n, 2, device=device) * 2 - 1) * (1 - scale)[:, None]  # keeps the crop inside
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1], theta[:, :, 2] = scale, scale, shift
    return F.affine_grid(theta, [n, 1, *size], align_corners=False)


def jitter_crop(x: Tensor, offsets: Tensor, size: int) -> Tensor:
    """Each sample's ``size`` square of ``x`` [N, (C,) L, L] at its (row, col) in ``offsets`` [N, 2]."""
    n, ar = x.shape[0], torch.arange(size, device=x.device)
    rows, cols = offsets[:, :1] + ar, offsets[:, 1:] + ar  # [N, size] each
    b = torch.arange(n, device=x.device)
    if x.dim() == 3:  # masks
        return x[b[:, None, None], rows[:, :, None], cols[:, None, :]]
    ch = torch.arange(x.shape[1], device=x.device)
    return x[b[:, None, None, None], ch[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]


def jitter(images: list[Optional[Tensor]], mask: Optional[Tensor], load_scale: float
           ) -> tuple[list[Optional[Tensor]], Optional[Tensor]]:
    """pix2pix's resize_and_crop: every image (bicubic, clipped to [-1, 1] as an 8-bit image
    is) and the mask (nearest) resized to round(``load_scale`` x side), then one random square
    of the original side per sample, at the same place in all of them."""
    first = next(x for x in images if x is not None)
    n, size = first.shape[0], first.shape[-1]
    load = round(size * load_scale)
    if load <= size:
        return images, mask
    offsets = torch.randint(0, load - size + 1, (n, 2), device=first.device)  # any place, both edges included
    resized = [None if x is None else
               F.interpolate(x, size=(load, load), mode="bicubic", align_corners=False).clamp_(-1, 1)
               for x in images]
    out = [None if x is None else jitter_crop(x, offsets, size) for x in resized]
    if mask is not None:
        big = F.interpolate(mask[:, None].float(), size=(load, load), mode="nearest")[:, 0].to(mask.dtype)
        mask = jitter_crop(big, offsets, size)
    return out, mask


def augment(batch: Batch, flips: str, crop_scale: float, load_scale: float = 1.0) -> Batch:
    """Jitter (resize to ``load_scale`` x the side, crop back), flip (``flips``: none |
    horizontal | both) and crop (sides of at least ``crop_scale``) each sample of ``batch``;
    its mask, if any, follows its image. An unlabeled batch within it is augmented after it,
    with its own draws."""
    out = augment_images(batch, flips, crop_scale, load_scale)
    if "unlabeled" in batch:
        out["unlabeled"] = augment_images(batch["unlabeled"], flips, crop_scale, load_scale)
    return out


MASK_KEYS = ("mask", "known_mask")  # a labeled batch's masks; an unlabeled one's, kept for statistics


def augment_images(batch: Batch, flips: str, crop_scale: float, load_scale: float = 1.0) -> Batch:
    mask_key = next((k for k in MASK_KEYS if k in batch), None)
    image, mask = batch["image"], batch.get(mask_key) if mask_key else None
    target = batch.get("target")  # a translation pair's B: moved exactly as its A
    n, device = image.shape[0], image.device
    nhwc = image.dim() == 4 and image.is_contiguous(memory_format=torch.channels_last) and image.shape[1] > 1
    if load_scale > 1:
        (image, target), mask = jitter([image, target], mask, load_scale)
    axes = {"none": [], "horizontal": [3], "both": [3, 2]}[str(flips)]
    for dim in axes:
        chosen = torch.rand(n, device=device) < 0.5
        image = flip(image, chosen, dim)
        if target is not None:
            target = flip(target, chosen, dim)
        if mask is not None:
            mask = flip(mask, chosen, dim - 1)
    if crop_scale < 1:
        grid = crop_grid(n, tuple(image.shape[-2:]), crop_scale, device)
        image = F.grid_sample(image, grid.to(image.dtype), mode="bilinear", padding_mode="border",
                              align_corners=False)
        if target is not None:
            target = F.grid_sample(target, grid.to(target.dtype), mode="bilinear", padding_mode="border",
                                   align_corners=False)
        if mask is not None:
            picked = F.grid_sample(mask[:, None].to(grid.dtype), grid, mode="nearest", align_corners=False)
            mask = picked[:, 0].round().to(mask.dtype)
    if nhwc:
        image = image.contiguous(memory_format=torch.channels_last)
        if target is not None and target.shape[1] > 1:
            target = target.contiguous(memory_format=torch.channels_last)
    out = dict(batch, image=image)
    if target is not None:
        out["target"] = target
    if mask is not None:
        out[mask_key] = mask
    return out
