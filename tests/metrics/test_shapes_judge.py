"""The builtin:shapes judge: its labels of a mask, its modes, coverage scores worked by hand,
reproducible training, its cache, and a run evaluated with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import small_overrides
from gandist.config import ConfigError, absolutize, compose_config
from gandist.metrics.judges import save_judge
from gandist.metrics.shapes_judge import (MAX_COUNT, NUM_MODES, ShapesJudge, judge_path, load_judge, mask_labels,
                                          mode_ids, train_judge)

TINY = dict(train_images=512, test_images=128, steps=100)


def test_a_mask_names_the_classes_it_shows_and_counts_its_shapes_but_not_slivers():
    mask = np.zeros((32, 32), np.uint8)
    mask[2:8, 2:8] = 1  # a circle's 36 pixels
    mask[20:26, 2:8] = 1  # another circle, apart from the first
    mask[10:16, 20:26] = 3  # a triangle
    mask[30, 30:32] = 2  # 2 pixels of square: a sliver, not a shape
    present, count = mask_labels(mask)
    assert present.tolist() == [1, 0, 1] and count == 3
    for corner in ((28, 12), (12, 12), (28, 24)):
        mask[corner[0]:corner[0] + 3, corner[1]:corner[1] + 3] = 2  # three 9-pixel squares
    assert mask_labels(mask) == (pytest.approx(np.ones(3)), MAX_COUNT)  # 6 shapes, counted as "4 or more"


def test_modes_are_distinct_per_class_set_and_count_and_no_shape_is_its_own():
    present = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)] * MAX_COUNT)
    counts = torch.arange(1, MAX_COUNT + 1).repeat_interleave(8)
    modes = mode_ids(present, counts)
    empty = present.sum(dim=1) == 0
    assert (modes[empty] == 0).all()
    assert sorted(modes[~empty].tolist()) == list(range(1, NUM_MODES)) == list(range(1, 29))


def test_the_judge_trains_reproducibly_without_touching_the_global_rng_and_reports_its_accuracy():
    torch.manual_seed(3)
    state = torch.get_rng_state()
    a, accuracy = train_judge(**TINY)
    assert torch.equal(torch.get_rng_state(), state)
    # Reproducible: two trainings from the same seed end equal (checked on a few steps).
    b, c = (train_judge(**{**TINY, "steps": 10})[0] for _ in range(2))
    for key, value in b.state_dict().items():
        assert torch.equal(value, c.state_dict()[key]), key
    last = next(reversed(b.state_dict()))
    assert not torch.equal(a.state_dict()[last], b.state_dict()[last])  # a different training: the check can fail
    assert {"pixels", "presence", "count", "mode"} <= set(accuracy)
    assert all(0 <= accuracy[k] <= 1 for k in ("presence", "count", "mode"))
    assert accuracy["pixels"] > 0.75  # more than predicting background everywhere (about 0.7)
    images = torch.rand(5, 3, 64, 64) * 2 - 1  # any size: resized to the judge's 32
    features, modes = a.describe(images)
    assert features.shape == (5, ShapesJudge.dim) and modes.shape == (5,)
    assert ((0 <= modes) & (modes < NUM_MODES)).all() and torch.equal(a(images), features)


def test_the_judge_is_loaded_from_the_cache_when_it_is_there(tmp_path):
    judge, accuracy = train_judge(**{**TINY, "steps": 5})
    save_judge(judge, accuracy, judge_path(str(tmp_path)))
    loaded = load_judge(torch.device("cpu"), str(tmp_path))  # no training: the cached weights
    for key, value in judge.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert not loaded.training


def test_a_run_evaluated_by_the_judge_logs_mode_coverage(shapes_url, tmp_path, gandist_cache):
    from gandist.launchers.local import run_local

    path = judge_path()  # this session's cache: a tiny judge, so that no test trains the real one
    judge, accuracy = train_judge(**{**TINY, "steps": 5})
    save_judge(judge, accuracy, path)
    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "judged", task="generate") + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2",
        "eval.features=shapes", "eval.samples=16"]))
    metrics = run_local(cfg).metrics
    assert metrics["eval/modes_real"] >= 1 and 0 <= metrics["eval/modes"] <= NUM_MODES
    assert metrics["eval/mode_kl"] >= 0 and metrics["eval/fd_shapes"] > 0
    assert 0 <= metrics["eval/precision_shapes"] <= 1


def test_the_judge_refuses_a_shard_set_that_is_not_builtin_shapes(tmp_path):
    from gandist.data.checks import check_data_fits
    from gandist.data.manifest import Manifest

    cfg = compose_config(["task=generate", "eval.features=shapes", "model.resolution=32"])
    digits = Manifest(source="builtin:digits", image_size=32, classes=None, has_masks=True, tasks=["generate"],
                      splits={}, url=str(tmp_path))
    with pytest.raises(ConfigError, match="eval.features=shapes judges builtin:shapes.*builtin:digits"):
        check_data_fits(cfg, digits)
