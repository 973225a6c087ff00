"""A collapse caught and rolled back: the watch's signals, the checkpoint it goes back to, and
the collapse drill healed by one rollback in a real run."""

from __future__ import annotations

import os

import pytest
import torch

from gandist.ckpt import load_checkpoint, write_checkpoint
from gandist.config import compose_config
from gandist.ledger import load_ledger
from gandist.train.collapse import CollapseWatch, pick_checkpoint
from gandist.train.context import Context
from gandist.train.divergence import DivergenceError
from gandist.train.state import Healing
from helpers import local_cfg, run_logged


def watch(*overrides: str) -> CollapseWatch:
    cfg = compose_config(["trainer.max_rollbacks=1", "collapse.window=3", "collapse.patience=2", *overrides])
    return CollapseWatch(cfg, Healing(), Context(rank=0, world_size=1, device=torch.device("cpu")))


def test_a_logit_gap_pinned_for_the_window_is_trouble_from_the_last_good_log():
    w = watch("collapse.gap_limit=10")
    logs = [(10, 2.0), (20, 12.0), (30, 11.0), (40, 3.0), (50, 15.0), (60, 15.0)]  # a dip resets the count
    assert [w.observe_log(step, {"D/real": gap, "D/fake": 0.0}) for step, gap in logs] == [None] * 6
    trouble = w.observe_log(70, {"D/real": 8.0, "D/fake": -7.0})
    assert trouble is not None and trouble.good_before == 40 and "collapse.gap_limit=10" in trouble.reason


def test_r_t_pinned_at_its_limit_is_trouble():
    w = watch("collapse.rt_limit=0.95")
    assert w.observe_log(5, {"D/real_sign": 0.5}) is None
    assert [w.observe_log(s, {"D/real_sign": 0.99}) for s in (10, 15)] == [None, None]
    trouble = w.observe_log(20, {"D/real_sign": 1.0})
    assert trouble.good_before == 5 and "overfitted" in trouble.reason


@pytest.mark.parametrize("order, values", [("max", [0.5, 0.6, 0.5, 0.4, 0.42]),  # mIoU: higher is better
                                           ("min", [30.0, 25.0, 28.0, 40.0, 33.0])])  # FID: lower is better
def test_an_evaluation_worse_than_the_best_by_the_margin_for_the_patience_is_trouble(order, values):
    w = watch("collapse.metric_margin=0.2")
    records = [{"metric": "eval/x", "order": order, "value": v} for v in values]
    # Step 30 is worse than the best but within the margin: it does not count.
    found = [w.observe_eval(step, r) for step, r in zip((10, 20, 30, 40, 50), records)]
    assert found[:4] == [None] * 4
    assert found[4] is not None and found[4].good_before == 20, found


def test_rollback_goes_to_the_best_scored_checkpoint_before_the_trouble_else_the_newest(tmp_path):
    run = tmp_path / "run"

    def checkpoint(step, value):
        score = None if value is None else {"metric": "eval/fid", "order": "min", "value": value}
        write_checkpoint(str(run / f"checkpoint_{step:08d}"), {"w": torch.zeros(1)}, {"step": step, "score": score})

    for step, value in ((2, 40.0), (4, 20.0), (6, None), (8, 30.0), (10, 5.0)):
        checkpoint(step, value)
    assert pick_checkpoint(str(run), 9) == (str(run / "checkpoint_00000004"), 4)  # FID 20 beats 30 and 40
    assert pick_checkpoint(str(run), 3) == (str(run / "checkpoint_00000002"), 2)
    assert pick_checkpoint(str(run), 1) is None
    unscored = tmp_path / "plain"
    for step in (3, 6):
        write_checkpoint(str(unscored / f"checkpoint_{step:08d}"), {"w": torch.zeros(1)}, {"step": step})
    assert pick_checkpoint(str(unscored), 7) == (str(unscored / "checkpoint_00000006"), 6)


def drill_cfg(shapes_url, tmp_path, name: str, *extra: str):
    # D turns NaN after step 6; two non-finite steps (7, 8) are a collapse; the checkpoint of
    # step 4 is the last from before it.
    return local_cfg(shapes_url, tmp_path, name, "trainer.max_steps=12", "trainer.ckpt_every=4",
                     "trainer.max_bad_steps=2", "faults.collapse_at_step=6", "eval.every=100",
                     "trainer.image_every=100", "trainer.keep_checkpoints=10", *extra)


def test_the_collapse_drill_is_rolled_back_once_and_the_run_finishes(shapes_url, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary, messages = run_logged(drill_cfg(shapes_url, tmp_path, "heal", "trainer.max_rollbacks=1"))
    assert summary.step == 12
    rollbacks = [m for m in messages if m.startswith("Rollback")]
    assert len(rollbacks) == 1 and rollbacks[0].startswith("Rollback 1 of 1 at step 8: 2 steps in a row (from step 7)")
    assert "back at the checkpoint of step 4" in rollbacks[0] and "learning rates now x0.5" in rollbacks[0]

    final = load_checkpoint(summary.checkpoint)["state"]
    assert all(torch.isfinite(t).all() for t in final["D"].values() if t.is_floating_point())
    assert final["healing"]["rollbacks"] == 1 and final["healing"]["events"][0]["to"] == 4
    run_dir = str(tmp_path / "heal")
    ledger = load_ledger(run_dir)
    assert ledger.rollbacks == 1 and ledger.parts["rollback"] > 0
    # Steps 5-8 were thrown away: the productive steps are the 12 taken less those 4.
    assert ledger.productive_steps == 8

    acc = EventAccumulator(os.path.join(run_dir, "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    lr = {e.step: e.value for e in acc.Scalars("lr/G")}
    assert lr[12] == pytest.approx(0.5 * lr[5])  # constant schedule, halved by the rollback
    assert {e.step: e.value for e in acc.Scalars("train/rollbacks")}[12] == 1.0


def test_without_rollbacks_the_collapse_drill_stops_the_run_as_a_divergence(shapes_url, tmp_path):
    with pytest.raises(DivergenceError, match="steps 7-8 .*trainer.max_bad_steps=2"):
        run_logged(drill_cfg(shapes_url, tmp_path, "stop"))
