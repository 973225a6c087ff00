import math

import pytest
import torch

from gandist.metrics import confusion_matrix, segmentation_scores

# A 2x3 map with 3 classes; (target, pred) pairs: (0,0) (0,1) (1,1) / (1,1) (2,2) (2,0)
TARGET = torch.tensor([[0, 0, 1], [1, 2, 2]])
PRED = torch.tensor([[0, 1, 1], [1, 2, 0]])
# rows = target, cols = pred
CONF = [[1, 1, 0],
        [0, 2, 0],
        [1, 0, 1]]
# TP = 1, 2, 1; FP (column - TP) = 1, 1, 0; FN (row - TP) = 1, 0, 1
# IoU = 1/3, 2/(2+1) = 2/3, 1/(1+1) = 1/2; mIoU = (1/3 + 2/3 + 1/2) / 3 = 0.5; accuracy = 4/6
IOU = [1 / 3, 2 / 3, 1 / 2]


def test_confusion_matrix_by_hand() -> None:
    conf = confusion_matrix(PRED, TARGET, 3)
    assert conf.dtype == torch.int64
    assert conf.tolist() == CONF


def test_scores_by_hand() -> None:
    s = segmentation_scores(confusion_matrix(PRED, TARGET, 3))
    assert s["iou"] == pytest.approx(IOU)
    assert s["miou"] == pytest.approx(0.5)
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)


def test_foreground_iou_finds_objects_whatever_class_they_are_given() -> None:
    # Foreground (classes 1, 2 merged): target at 4 pixels, predicted at 4; both at 3 of them, 5 in the union.
    assert segmentation_scores(confusion_matrix(PRED, TARGET, 3))["foreground_iou"] == pytest.approx(3 / 5)
    swapped = torch.where(PRED == 0, PRED, 3 - PRED)  # every object pixel given the other object class
    s = segmentation_scores(confusion_matrix(swapped, TARGET, 3))
    assert s["foreground_iou"] == pytest.approx(3 / 5) and s["miou"] < 0.5


def test_absent_class_is_nan_and_left_out_of_mean() -> None:
    s = segmentation_scores(confusion_matrix(PRED, TARGET, 4))  # class 3 never appears
    assert s["iou"][:3] == pytest.approx(IOU)
    assert math.isnan(s["iou"][3])
    assert s["miou"] == pytest.approx(0.5)


def test_class_only_predicted_counts_as_zero() -> None:
    # Class 3 predicted once but never present: IoU 0 (a false positive), not nan.
    pred = PRED.clone()
    pred[0, 0] = 3
    s = segmentation_scores(confusion_matrix(pred, TARGET, 4))
    # Pixel (0,0) loses its TP for class 0: IoU_0 = 0 / (0 + 1 + 2) = 0.
    assert s["iou"] == pytest.approx([0.0, 2 / 3, 1 / 2, 0.0])
    assert s["miou"] == pytest.approx((2 / 3 + 1 / 2) / 4)
    assert s["pixel_accuracy"] == pytest.approx(3 / 6)


def test_summed_matrices_score_like_one_pass() -> None:
    torch.manual_seed(0)
    target = torch.randint(0, 5, (6, 8, 8))
    pred = torch.where(torch.rand(6, 8, 8) < 0.6, target, torch.randint(0, 5, (6, 8, 8)))
    parts = sum(confusion_matrix(pred[i:i + 2], target[i:i + 2], 5) for i in range(0, 6, 2))
    whole = confusion_matrix(pred, target, 5)
    assert torch.equal(parts, whole)
    assert whole.sum() == target.numel()
    assert whole.diag().sum() == (pred == target).sum()
    accuracy = (pred == target).float().mean().item()
    assert segmentation_scores(parts)["pixel_accuracy"] == pytest.approx(accuracy)


@pytest.mark.parametrize("bad", [3, -1])
def test_out_of_range_values_raise(bad: int) -> None:
    pred = PRED.clone()
    pred[1, 1] = bad
    with pytest.raises(ValueError, match=f"pred.*{bad}"):
        confusion_matrix(pred, TARGET, 3)
    with pytest.raises(ValueError, match=f"target.*{bad}"):
        confusion_matrix(TARGET, pred, 3)


def test_mismatched_shapes_and_float_maps_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(PRED, TARGET[:1], 3)
    with pytest.raises(TypeError, match="dtype"):
        confusion_matrix(PRED.float(), TARGET, 3)


def test_empty_matrix_scores_nan() -> None:
    s = segmentation_scores(torch.zeros(3, 3, dtype=torch.int64))
    assert math.isnan(s["miou"]) and math.isnan(s["pixel_accuracy"])
    assert all(math.isnan(v) for v in s["iou"])
