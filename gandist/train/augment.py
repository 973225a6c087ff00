"""Training-batch augmentation on the device: random flips and crops, the same for an image and
its mask (or its B image, for translation).

Runs on the device after the batch is copied there, drawing from the device's global generator:
its state is in every rank's checkpoint, so a resumed run draws the same flips and crops. Masks
are resampled with nearest-neighbour, so every pixel keeps a real class.
"""

from __future__ import annotations

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


def augment(batch: Batch, flips: str, crop_scale: float) -> Batch:
    """Flip (``flips``: none | horizontal | both) and crop (sides of at least ``crop_scale``)
    each sample of ``batch``; its mask, if any, follows its image. An unlabeled batch within
    it is augmented after it, with its own draws."""
    out = augment_images(batch, flips, crop_scale)
    if "unlabeled" in batch:
        out["unlabeled"] = augment_images(batch["unlabeled"], flips, crop_scale)
    return out


MASK_KEYS = ("mask", "known_mask")  # a labeled batch's masks; an unlabeled one's, kept for statistics


def augment_images(batch: Batch, flips: str, crop_scale: float) -> Batch:
    mask_key = next((k for k in MASK_KEYS if k in batch), None)
    image, mask = batch["image"], batch.get(mask_key) if mask_key else None
    target = batch.get("target")  # a translation pair's B: moved exactly as its A
    n, device = image.shape[0], image.device
    nhwc = image.dim() == 4 and image.is_contiguous(memory_format=torch.channels_last) and image.shape[1] > 1
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
