"""Evaluation metrics."""

from gandist.metrics.segmentation import confusion_matrix, segmentation_scores

__all__ = ["confusion_matrix", "segmentation_scores"]
