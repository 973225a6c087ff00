"""Semi-supervised segmentation: pseudo-label selection and its figures on hand-worked tensors,
and one-process runs that learn from unlabeled images, log what TensorBoard needs and resume
exactly with both streams' cursors."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import local_cfg
from gandist.ckpt import load_checkpoint
from gandist.cli import main
from gandist.launchers.local import run_local
from gandist.train import semi


def test_pseudo_labels_are_the_predicted_classes_where_confidence_passes_the_threshold():
    # 2 classes, one image of 1 x 3 pixels: predictions class 0, 1, 1.
    probs = torch.tensor([[[[0.9, 0.4, 0.2]], [[0.1, 0.6, 0.8]]]])
    confidence = torch.tensor([[[0.3, 0.1, 0.25]]])
    labels, selected = semi.pseudo_labels(probs, confidence, threshold=0.2)
    assert labels.tolist() == [[[0, 1, 1]]]
    assert selected.tolist() == [[[True, False, True]]]
    assert torch.allclose(semi.own_confidence(probs), torch.tensor([[[0.9, 0.6, 0.8]]]))


def test_the_pseudo_label_loss_averages_over_selected_pixels_only():
    logits = torch.tensor([[[[2.0, 0.0, 5.0]], [[0.0, 3.0, 0.0]]]])
    labels = torch.tensor([[[0, 1, 1]]])
    selected = torch.tensor([[[True, False, True]]])
    ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")[0, 0]
    assert semi.masked_cross_entropy(logits, labels, selected).item() == pytest.approx((ce[0] + ce[2]).item() / 2)
    assert semi.masked_cross_entropy(logits, labels, torch.zeros_like(selected)).item() == 0.0


def test_auroc_counts_the_pairs_a_score_orders_right():
    scores = torch.tensor([0.9, 0.8, 0.3, 0.5, 0.1])
    right = torch.tensor([True, False, True, False, False])
    # positives 0.9, 0.3 against negatives 0.8, 0.5, 0.1: 0.9 beats all 3, 0.3 beats 1 -> 4 of 6.
    area, defined = semi.auroc(scores, right)
    assert defined.item() and area.item() == pytest.approx(4 / 6)
    area, defined = semi.auroc(scores, torch.ones(5, dtype=torch.bool))
    assert not defined.item() and area.item() == 0.0


def test_d_confidence_is_the_sigmoid_of_d_upsampled_to_the_image():
    logits = torch.zeros(2, 1, 4, 4)
    logits[0, 0, 0, 0] = 10.0
    conf = semi.d_confidence(logits, (8, 8))
    assert conf.shape == (2, 8, 8) and conf[1].eq(0.5).all() and conf[0, 0, 0] > 0.99


def test_semi_stats_weigh_accuracy_by_the_selected_pixels():
    labels = torch.tensor([[[0, 1, 1, 0]]])
    selected = torch.tensor([[[True, True, False, False]]])
    confidence = torch.tensor([[[0.9, 0.2, 0.1, 0.8]]])
    known = torch.tensor([[[0, 0, 1, 0]]])  # right, wrong, right, right
    stats = semi.semi_stats(labels, selected, confidence, known)
    assert stats["semi/selected_fraction"][0].item() == 0.5
    accuracy, weight = stats["semi/pseudo_label_accuracy"]
    assert accuracy.item() == 0.5 and weight.item() == 2
    assert "semi/pseudo_label_accuracy" not in semi.semi_stats(labels, selected, confidence, None)


def semi_cfg(shapes_url, storage, name, *extra):
    return local_cfg(shapes_url, storage, name, "data.label_fraction=0.25", "task.semi=adversarial",
                     "model.d_arch=pixel", "model.d_layers=2", "task.semi_start=0.25", "trainer.ckpt_every=2",
                     "trainer.image_every=100", "eval.every=100",
                     "trainer.schedule_kimg=0.04",  # D's poly decay over 5 steps of 8, however long a leg runs
                     *extra)


def test_adversarial_semi_run_logs_its_figures_and_resumes_exactly(shapes_url, tmp_path):
    """1/4 of the 64 masks: 2 labeled batches of 8 per epoch, 6 unlabeled ones, so the labeled
    stream turns its epoch twice in 5 steps; 5 steps at once and 3 + 2 after a resume end equal."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    whole = run_local(semi_cfg(shapes_url, tmp_path, "whole", "trainer.max_steps=5"))
    cfg = semi_cfg(shapes_url, tmp_path, "resumed", "trainer.max_steps=3")
    run_local(cfg)
    cfg.trainer.max_steps = 5
    resumed = run_local(cfg)
    a, b = load_checkpoint(whole.checkpoint)["state"], load_checkpoint(resumed.checkpoint)["state"]
    for net in ("G", "D", "G_ema"):
        for key, tensor in a[net].items():
            assert torch.equal(tensor, b[net][key]), f"{net}.{key} differs after the resume"
    assert (a["epoch"], a["batch_in_epoch"]) == (2, 1)  # labeled: 2 batches per epoch, 5 taken
    assert a["unlabeled_cursor"]["epoch"] == 0 and a["unlabeled_cursor"]["batch_in_epoch"] == 5
    assert b["unlabeled_cursor"] == a["unlabeled_cursor"]

    acc = EventAccumulator(str(tmp_path / "whole" / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/G_seg", "loss/G_adv", "loss/G_adv_unlabeled", "loss/G_semi", "semi/selected_fraction",
            "semi/pseudo_label_accuracy", "semi/confidence_auroc"} <= tags, sorted(tags)
    fraction = [e.value for e in acc.Scalars("semi/selected_fraction")]
    assert len(fraction) == 5 and all(0 <= f <= 1 for f in fraction)
    auroc = [e.value for e in acc.Scalars("semi/confidence_auroc")]
    assert all(0 <= v <= 1 for v in auroc)


def test_self_training_reads_a_second_shard_set_without_d(shapes_url, tmp_path):
    summary = run_local(local_cfg(shapes_url, tmp_path, "self", f"data.unlabeled_url={shapes_url}",
                                  "task.semi=self_training", "task.adv_weight=0", "task.semi_start=0",
                                  "task.semi_threshold=0.3", "trainer.max_steps=2", "trainer.ckpt_every=2"))
    state = load_checkpoint(summary.checkpoint)["state"]
    assert state["unlabeled_cursor"]["batch_in_epoch"] == 2
    assert not any(k.startswith(("loss/D", "loss/G_adv")) for k in summary.metrics)
    assert {"loss/G_semi", "semi/selected_fraction", "semi/pseudo_label_accuracy"} <= set(summary.metrics)
    run = tmp_path / "self"
    assert main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["evaluate", str(run)]) == 0
    scores = json.loads((run / "eval_self_step2.json").read_text())["scores"]
    assert scores["eval/miou"] == pytest.approx(summary.metrics["eval/miou"], rel=1e-6)


def test_g_segments_labeled_and_unlabeled_images_in_separate_forwards():
    """Hung et al. run their segmenter on the unlabeled batch and on the labeled one apart, so
    BatchNorm normalises the labeled images by their own batch's statistics. One forward over
    both (gandist before) made them half unlabeled: G learnt a function of the mixed batch, and
    with no unlabeled loss at all fell from 0.82 to 0.32 held-out mIoU at step 150 (digits)."""
    from torch import nn

    from gandist.train.tasks import SegmentTask

    torch.manual_seed(0)
    G = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)).train()
    task = SegmentTask(num_classes=2, semi="self_training", adv_weight=0.0)
    labeled, unlabeled = torch.randn(4, 3, 4, 4), torch.randn(6, 3, 4, 4) * 3 + 2
    batch = {"image": labeled, "mask": torch.zeros(4, 4, 4, dtype=torch.long), "unlabeled": {"image": unlabeled}}
    fake = task.fake(G, task.g_input(batch))
    assert fake.shape == (10, 2, 4, 4)
    with torch.no_grad():
        assert torch.allclose(fake[:4], G(labeled), atol=1e-6)
        assert torch.allclose(fake[4:], G(unlabeled), atol=1e-6)


def test_unlabeled_images_that_teach_nothing_leave_g_as_cross_entropy_alone_trains_it(shapes_url, tmp_path):
    """With no loss on them (no D, pseudo-label weight 0), the unlabeled images must not change
    G's parameters: they may only move BatchNorm's running statistics."""
    common = ["data.label_fraction=0.25", "task.adv_weight=0", "trainer.max_steps=3", "trainer.ckpt_every=3",
              "eval.every=100", "trainer.image_every=100"]
    alone = run_local(local_cfg(shapes_url, tmp_path, "alone", *common))
    with_unlabeled = run_local(local_cfg(shapes_url, tmp_path, "with", *common, "task.semi=self_training",
                                         "task.semi_weight=0"))
    a, b = (load_checkpoint(s.checkpoint)["state"]["G"] for s in (alone, with_unlabeled))
    params = [k for k in a if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert params and all(torch.equal(a[k], b[k]) for k in params), [k for k in params if not torch.equal(a[k], b[k])]
