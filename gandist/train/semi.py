"""Learning from unlabeled images (Hung et al., BMVC 2018): which pixels of an unlabeled
prediction become pseudo-labels, the loss on them, and the figures that say whether it works.

Pure tensor functions. ``confidence`` is a per-pixel score in [0, 1] at the prediction's
resolution: D's confidence map (``adversarial``) or the segmenter's own top class
probability (``self_training``, the control without D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def d_confidence(d_logits: Tensor, size: tuple[int, int]) -> Tensor:
    """D's confidence map [N, H, W] that a pixel's class map looks real: sigmoid of its logits,
    upsampled bilinearly (corners aligned, as Hung et al.) to ``size`` when D judges patches rather than
    pixels."""
    if tuple(d_logits.shape[-2:]) != tuple(size):
        d_logits = F.interpolate(d_logits, size=size, mode="bilinear", align_corners=True)
    return torch.sigmoid(d_logits.float())[:, 0]


def own_confidence(probs: Tensor) -> Tensor:
    """The segmenter's own confidence [N, H, W]: its top class probability."""
    return probs.max(dim=1).values


def pseudo_labels(probs: Tensor, confidence: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """(labels [N, H, W]: the predicted class, selected [N, H, W]: confidence above threshold)."""
    return probs.argmax(dim=1), confidence > threshold


def masked_cross_entropy(logits: Tensor, labels: Tensor, selected: Tensor) -> Tensor:
    """Cross-entropy averaged over the selected pixels only (0 when none is selected)."""
    per_pixel = F.cross_entropy(logits.float(), labels, reduction="none")
    return (per_pixel * selected).sum() / selected.sum().clamp(min=1)


def auroc(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor]:
    """Area under the ROC curve of ``scores`` at telling ``positive`` from the rest (the
    Mann-Whitney statistic, ties broken by order), and whether it is defined (both kinds present)."""
    scores, positive = scores.flatten().float(), positive.flatten()
    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, scores.numel() + 1, device=scores.device, dtype=scores.dtype)
    n_pos = positive.sum().float()
    n_neg = positive.numel() - n_pos
    defined = (n_pos > 0) & (n_neg > 0)
    area = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg).clamp(min=1)
    return torch.where(defined, area, torch.zeros_like(area)), defined


def semi_stats(labels: Tensor, selected: Tensor, confidence: Tensor,
               known_mask: Tensor | None) -> dict[str, tuple[Tensor, Tensor]]:
    """TensorBoard's view of the unlabeled half, as (value, weight) pairs: the fraction of
    pixels selected, and where the true masks are known the pseudo-labels' accuracy on the
    selected pixels and the confidence's AUROC at telling right predictions from wrong ones."""
    one = torch.ones((), device=labels.device)
    stats = {"semi/selected_fraction": (selected.float().mean(), one)}
    if known_mask is not None:
        right = labels == known_mask
        count = selected.sum().float()
        stats["semi/pseudo_label_accuracy"] = ((right & selected).sum() / count.clamp(min=1), count)
        area, defined = auroc(confidence, right)
        stats["semi/confidence_auroc"] = (area, defined.float())
    return stats
