"""trainer.ckpt_every=auto: the Young-Daly interval from the measured stall and the MTBF."""

from __future__ import annotations

import math
import os

import pytest

from helpers import local_cfg
from gandist.config import ConfigError, compose_config
from gandist.launchers.local import run_local
from gandist.ledger import load_ledger
from gandist.train.ckpt_schedule import CheckpointSchedule, young_daly_s


def test_young_daly_is_the_square_root_of_twice_stall_times_mtbf():
    assert young_daly_s(30.0, 48 * 3600) == pytest.approx(math.sqrt(2 * 30 * 48 * 3600))  # ~53.7 minutes
    assert young_daly_s(1.0, 48 * 3600) == pytest.approx(587.9, abs=0.1)


def test_auto_checkpoints_first_at_the_first_log_then_at_the_young_daly_interval():
    # 1,024 workers of 50,000 h each: a failure every 48.8 h; a 2 s stall -> 838 s; at 0.5 s a step, 1677 steps.
    s = CheckpointSchedule("auto", mtbf_hours=50000, world_size=1024, first_log=20)
    assert not s.due(19) and s.due(20) and s.interval is None
    s.observe_step_time(0.5)
    s.checkpointed(20, stall_s=2.0)
    expected = round(young_daly_s(2.0, 50000 * 3600 / 1024) / 0.5)
    assert s.interval == expected == 1677 and s.values() == {"ckpt/interval_steps": 1677.0}
    assert not s.due(20 + expected - 1) and s.due(20 + expected)
    # A longer stall measured later moves the interval out: sqrt of the mean stall.
    s.checkpointed(1205, stall_s=6.0)
    assert s.interval == round(young_daly_s(4.0, 50000 * 3600 / 1024) / 0.5)
    # Slower steps: fewer of them to the same time.
    s.observe_step_time(1.0)
    assert s.interval == round(young_daly_s(4.0, 50000 * 3600 / 1024) / 1.0) and s.next_due == 1205 + s.interval
    # More workers, a shorter run MTBF, checkpoints more often.
    t = CheckpointSchedule("auto", mtbf_hours=50000, world_size=8192, first_log=20, saved=s.state_dict())
    t.observe_step_time(1.0)
    assert t.interval < s.interval and t.stalls == [2.0, 6.0]


def test_a_fixed_interval_is_every_n_steps():
    s = CheckpointSchedule(50, mtbf_hours=1.0, world_size=2, first_log=20)
    assert [step for step in range(1, 201) if s.due(step)] == [50, 100, 150, 200]
    s.observe_step_time(0.1)
    assert s.interval is None and s.values() == {}


def test_a_word_other_than_auto_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"trainer.ckpt_every='often' must be a number of steps > 0, or auto"):
        compose_config(["trainer.ckpt_every=often"])
    with pytest.raises(ConfigError, match="trainer.mtbf_hours=0.0 must be > 0"):
        compose_config(["trainer.mtbf_hours=0"])


def test_an_auto_run_checkpoints_where_its_measured_stalls_and_step_times_say(shapes_url, tmp_path):
    # An MTBF of 7.2 s of one worker: with stalls of a few hundredths of a second, a few steps apart.
    mtbf_s = 0.002 * 3600
    cfg = local_cfg(shapes_url, tmp_path, "auto", "trainer.max_steps=12", "trainer.ckpt_every=auto",
                    "trainer.mtbf_hours=0.002", "trainer.log_every=2", "trainer.keep_checkpoints=20",
                    "eval.every=100", "trainer.image_every=100")
    run_local(cfg)
    steps = sorted(int(n.split("_")[1]) for n in os.listdir(tmp_path / "auto") if n.startswith("checkpoint_"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "auto" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    logged = {tag: {e.step: e.value for e in acc.Scalars(tag)}
              for tag in ("ckpt/interval_steps", "ckpt/stall_s", "perf/step_time_s")}
    stalls, step_times = logged["ckpt/stall_s"], logged["perf/step_time_s"]

    def young_daly_steps(before: int, step_time: float) -> int:
        measured = [v for c, v in stalls.items() if c <= before]
        return max(1, round(young_daly_s(sum(measured) / len(measured), mtbf_s) / step_time))

    # Replay the rule on the logged figures: the first checkpoint at the first log (step 2); the
    # interval recomputed at every log (from the stalls so far) and after each checkpoint.
    expected, last, interval, due = [], 0, None, 2
    for step in range(1, 13):
        if step in step_times and expected:
            interval = young_daly_steps(step - 1, step_times[step])
            assert logged["ckpt/interval_steps"][step] == interval, step
            due = last + interval
        if step >= due or step == 12:
            expected.append(step)
            last = step
            time_now = step_times[max(s for s in step_times if s <= step)]
            interval = young_daly_steps(step, time_now)
            due = last + interval
    assert steps == expected and steps[0] == 2
    assert load_ledger(str(tmp_path / "auto")).ckpt_interval == logged["ckpt/interval_steps"][12]
