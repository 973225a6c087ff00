"""What a segmentation discriminator sees: class maps (real or predicted), optionally with the image.

Luc et al. 2016 ("Semantic Segmentation using Adversarial Networks") give three encodings:
- softmax: real masks one-hot, predictions as class probabilities. A real map is exactly 0/1
  and a predicted one never is, so D can win on that alone.
- scaling: the real one-hot softened towards the prediction: the true class gets at least
  ``tau`` (or the predicted probability, if higher), the rest of its mass is shared in the
  prediction's proportions, so real maps are no longer trivially binary.
- product: each class map multiplies the image (C x 3 channels), so D judges the image
  content each class claims.
Pure tensor functions: the task decides which maps go in; these only encode them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

SOFTMAX, SCALING, PRODUCT = "softmax", "scaling", "product"
KINDS = (SOFTMAX, SCALING, PRODUCT)
SIGNED, UNIT = "signed", "unit"  # the class maps' range in D's input


def one_hot(mask: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Integer masks [N, H, W] as one-hot class maps [N, C, H, W]."""
    return F.one_hot(mask, num_classes).permute(0, 3, 1, 2).to(dtype)


def scaled_one_hot(mask: Tensor, probs: Tensor, tau: float) -> Tensor:
    """Luc et al.'s "scaling" of the ground truth: at each pixel the true class l gets
    y_l = max(tau, p_l) and every other class c gets p_c * (1 - y_l) / (1 - p_l), so the map
    still sums to one. ``probs`` (the prediction, [N, C, H, W]) should come detached."""
    onehot = one_hot(mask, probs.shape[1], probs.dtype)
    p_true = (probs * onehot).sum(1, keepdim=True)
    y_true = torch.clamp(p_true, min=tau)
    # 1 - p_l can reach 0 (a pixel predicted with certainty): the others then get nothing.
    rest = probs * (1 - y_true) / torch.clamp(1 - p_true, min=1e-6)
    return onehot * y_true + (1 - onehot) * rest


def channels(kind: str, num_classes: int, with_image: bool) -> int:
    """D's input channel count for an encoding of ``num_classes`` class maps of RGB images."""
    maps = num_classes * 3 if kind == PRODUCT else num_classes
    return maps + (3 if with_image else 0)


def view(kind: str, maps: Tensor, image: Tensor, with_image: bool, map_range: str = SIGNED) -> Tensor:
    """D's input from class maps [N, C, H, W] in [0, 1] and images [N, 3, H, W] in [-1, 1].
    ``map_range`` (softmax, scaling): SIGNED rescales the maps to the images' [-1, 1]; UNIT keeps
    them in [0, 1], as Hung et al.'s D sees its probabilities and one-hot labels."""
    if kind == PRODUCT:
        x = (maps.unsqueeze(2) * image.unsqueeze(1)).flatten(1, 2)  # [N, C*3, H, W], image range
    elif map_range == UNIT:
        x = maps
    else:
        x = maps * 2 - 1  # the images' [-1, 1] range
    return torch.cat([image, x], dim=1) if with_image else x
