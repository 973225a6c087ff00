"""Segmentation scores from a confusion matrix.

Scores come from the matrix rather than from per-batch means so that matrices can be summed
over batches and ranks (an all-reduce) and scored once, giving exact dataset-level values.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """int64 [C, C] counts on the inputs' device: rows are target classes, columns predicted ones.

    ``pred`` and ``target`` are integer class maps of the same (any) shape.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    for name, t in (("pred", pred), ("target", target)):
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer class map, got dtype {t.dtype}")
        bad = t[(t < 0) | (t >= num_classes)]
        if bad.numel():
            values = torch.unique(bad).tolist()
            raise ValueError(f"{name} has values outside [0, {num_classes}): {values[:10]}")
    idx = target.reshape(-1).long() * num_classes + pred.reshape(-1).long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(conf: Tensor) -> dict[str, Any]:
    """{"miou", "pixel_accuracy", "iou", "foreground_iou"} from a [C, C] confusion matrix (rows
    target, cols predicted). "foreground_iou" is the IoU of class 0 (background) against all the
    others merged: whether the objects' pixels were found, whatever class they were given.

    IoU_c = TP / (TP + FP + FN). A class absent from both target and prediction has no IoU:
    it gets nan in "iou" and is left out of "miou" rather than counted as 0 or 1.
    """
    if conf.dim() != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"confusion matrix must be square [C, C], got shape {tuple(conf.shape)}")
    conf = conf.detach().to("cpu", torch.float64)
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp  # TP + FP + FN
    iou = [t / u if u > 0 else math.nan for t, u in zip(tp.tolist(), union.tolist())]
    present = [v for v in iou if not math.isnan(v)]
    total = conf.sum().item()
    found = conf[1:, 1:].sum().item()  # an object's pixel called some object class
    return {
        "miou": sum(present) / len(present) if present else math.nan,
        "pixel_accuracy": tp.sum().item() / total if total > 0 else math.nan,
        "iou": iou,
        "foreground_iou": found / (total - conf[0, 0].item()) if total > conf[0, 0].item() else math.nan,
    }
