"""The goodput clock in real one-process runs: every second charged once, attempts across a
failure and a resubmission, the figures in TensorBoard and the progress line."""

from __future__ import annotations

import json
import time

import pytest

from helpers import local_cfg, run_logged
from gandist.cli import main
from gandist.launchers import local  # noqa: F401  (imported before the clock starts: imports are no run's time)
from gandist.ledger import FAILED, FINISHED, PARTS, load_ledger


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_the_ledger_adds_up_to_the_wall_time_across_a_failure_and_a_resubmission(shapes_url, tmp_path, capsys):
    cfg = local_cfg(shapes_url, tmp_path, "gp", "trainer.max_steps=4", "trainer.ckpt_every=2", "eval.every=2")
    began = time.time()
    first, messages = run_logged(cfg)
    ended = time.time()
    run = str(tmp_path / "gp")
    ledger = load_ledger(run)
    (attempt,) = ledger.attempts
    assert attempt.cause == FINISHED and attempt.last_step == 4 and attempt.resumed_from is None
    assert began <= attempt.started and attempt.ended <= ended
    # Every second of the attempt, from the launch to its last record, went to one part.
    assert ledger.total_s == pytest.approx(attempt.ended - attempt.started, abs=0.05)
    assert ledger.total_s == pytest.approx(ended - began, abs=1.0)
    assert ledger.parts["productive"] > 0 and ledger.parts["evaluation"] > 0 and ledger.parts["checkpoint"] > 0
    assert ledger.parts["recovery"] == ledger.parts["replayed"] == 0
    assert ledger.checkpoints == 2 and ledger.high_water == 4
    assert 0 < first.metrics["goodput/fraction"] < 1
    assert any("goodput " in m and m.startswith("step 4/4") for m in messages), messages

    scalars = read_scalars(str(tmp_path / "gp" / "tensorboard"))
    assert [s for s, _ in scalars["goodput/fraction"]] == [1, 2, 3, 4]
    assert {f"goodput/{p}_s" for p in PARTS} <= set(scalars)

    # The process "dies" after step 6 without a last record, having checkpointed at step 4 only:
    # the next attempt replays steps 5-6 and the gap since the last record is recovery.
    data = json.loads((tmp_path / "gp" / "goodput.json").read_text())
    data["attempts"][0].update(cause="running", last_step=6, ended=data["attempts"][0]["ended"])
    data["high_water"] = 6
    (tmp_path / "gp" / "goodput.json").write_text(json.dumps(data))
    time.sleep(0.5)
    cfg.trainer.max_steps = 8
    second, _ = run_logged(cfg)
    ledger = load_ledger(run)
    failed, resumed = ledger.attempts
    assert failed.cause == FAILED and resumed.cause == FINISHED and resumed.resumed_from == 4
    assert ledger.steps_lost(1) == 2 and ledger.parts["replayed"] > 0
    assert resumed.recovery_s >= 0.5 and ledger.parts["recovery"] == pytest.approx(resumed.recovery_s)
    # The parts add up to the time from the first start to the last record.
    assert ledger.total_s == pytest.approx(resumed.ended - failed.started, abs=0.1)

    capsys.readouterr()
    assert main(["report", run]) == 0
    out = capsys.readouterr().out
    assert "2 attempt(s)" in out and FAILED in out and "finished" in out
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("1 "))
    assert "0-6" in row and " 2 " in row  # steps 0 to 6, 2 of them lost
    assert any(line.split()[:1] == ["replayed"] for line in lines)


def test_report_names_a_directory_that_is_no_run(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert "goodput.json does not exist" in err and "<run.storage>/<run.name>" in err
