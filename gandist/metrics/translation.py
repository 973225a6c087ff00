"""Paired image scores for translation: how close each generated B is to its true B.

Per-image values (summed over images, ranks and batches, then divided once), on images in
[0, 1]: mean absolute error, PSNR in dB and SSIM (torchmetrics, 11x11 Gaussian window), with
a data range of 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

PAIR_SCORES = ("l1", "psnr", "ssim")  # the columns of pair_scores, in order


def pair_scores(fake: Tensor, target: Tensor) -> Tensor:
    """[N, 3] per-image L1, PSNR, SSIM of ``fake`` against ``target`` ([N, C, H, W] in [0, 1])."""
    # Imported here, not at the top: torchmetrics brings scipy.signal along (see distance.py).
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    if fake.shape != target.shape:
        raise ValueError(f"generated B {tuple(fake.shape)} and true B {tuple(target.shape)} differ in shape")
    fake, target = fake.float(), target.float()
    l1 = (fake - target).abs().mean(dim=(1, 2, 3))
    psnr = peak_signal_noise_ratio(fake, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(fake, target, data_range=1.0, reduction="none")
    return torch.stack([l1, psnr, ssim], dim=1)
