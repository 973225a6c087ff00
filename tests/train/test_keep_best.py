"""trainer.keep_best: a checkpoint at each evaluation, the K best by the score kept beside the
newest, whichever way the score is better; --best takes the best one back out."""

from __future__ import annotations

import os

import pytest
import torch

from gandist.ckpt import checkpoint_step, read_meta
from gandist.cli import main
from gandist.config import ConfigError, absolutize, compose_config
from gandist.launchers.local import run_local
from helpers import small_overrides


def logged(run_dir: str, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(run_dir, "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


@pytest.mark.parametrize("task, metric, better", [("segment", "eval/miou", max), ("generate", "eval/fd_randconv", min)])
def test_keep_best_keeps_the_best_evaluations_and_the_newest(shapes_url, tmp_path, task, metric, better):
    k = 2
    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "best", task=task) + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=7", "trainer.ckpt_every=100",
        "eval.every=1", f"trainer.keep_best={k}", "trainer.lr_g=1e-2", "trainer.image_every=100"]))
    summary = run_local(cfg)
    run_dir = str(tmp_path / "best")
    scores = logged(run_dir, metric)
    assert sorted(scores) == list(range(1, 8))  # an evaluation, so a checkpoint, at every step
    kept = sorted(checkpoint_step(n) for n in os.listdir(run_dir) if n.startswith("checkpoint_"))
    # The K best by the logged score (the newer of equals), and the newest, nothing else.
    ranked = sorted(scores, key=lambda s: (scores[s] if better is max else -scores[s], s), reverse=True)
    assert kept == sorted(set(ranked[:k]) | {7}), (scores, kept)
    for step in kept:  # each records what ranked it, as TensorBoard has it
        score = read_meta(os.path.join(run_dir, f"checkpoint_{step:08d}"))["score"]
        assert score["metric"] == metric and score["order"] == better.__name__
        assert score["value"] == pytest.approx(scores[step], rel=1e-5)
    assert summary.step == 7

    out = tmp_path / "g.pt"
    assert main(["export", run_dir, str(out), "--best"]) == 0
    exported = torch.load(out, weights_only=True)
    assert exported["step"] == ranked[0]


def test_a_best_metric_the_run_does_not_produce_is_refused_before_training(shapes_url, tmp_path):
    overrides = small_overrides(shapes_url, str(tmp_path), "x", task="generate") + ["trainer.keep_best=1"]
    with pytest.raises(ConfigError, match="eval/fid needs eval.features=inception.*use eval/fd_randconv"):
        compose_config(overrides + ["trainer.best_metric=eval/fid"])
    with pytest.raises(ConfigError, match="eval/miou scores task=segment"):
        compose_config(overrides + ["trainer.best_metric=eval/miou"])
    with pytest.raises(ConfigError, match="eval/modes needs eval.features=shapes or digits"):
        compose_config(overrides + ["trainer.best_metric=eval/modes"])
    for judge in ("shapes", "digits"):  # either judge gives modes
        compose_config(overrides + ["trainer.best_metric=eval/modes", f"eval.features={judge}"])
    with pytest.raises(ConfigError, match="'eval/time_s' is not an evaluation score"):
        compose_config(overrides + ["trainer.best_metric=eval/time_s"])
