"""The goodput ledger: attempts, causes, recovery gaps and parts that add up."""

from __future__ import annotations

import pytest

from gandist.ledger import FAILED, FINISHED, PARTS, Ledger, load_ledger, note_launch, save_ledger


def test_a_failed_attempt_charges_the_gap_to_recovery_and_a_finished_one_does_not():
    ledger = Ledger()
    first = ledger.begin_attempt(100.0, None, world_size=2)
    first.ended, first.last_step = 160.0, 50
    second = ledger.begin_attempt(175.0, resumed_from=40, world_size=2)
    assert first.cause == FAILED and second.recovery_s == pytest.approx(15.0)
    assert ledger.parts["recovery"] == pytest.approx(15.0)
    assert ledger.steps_lost(1) == 10 and ledger.steps_lost(2) == 0  # the last attempt lost nothing yet

    second.ended, second.last_step, second.cause = 200.0, 80, FINISHED
    third = ledger.begin_attempt(1000.0, resumed_from=80, world_size=1)  # resubmitted with more steps
    assert third.recovery_s == 0.0 and ledger.parts["recovery"] == pytest.approx(15.0)
    assert ledger.steps_lost(2) == 0
    assert second.cause == FINISHED


def test_a_known_cause_names_the_end_of_the_previous_attempt():
    ledger = Ledger()
    ledger.begin_attempt(0.0, None, world_size=2)
    ledger.begin_attempt(5.0, 0, world_size=2, cause_of_previous="fault drill: rank 1 killed after step 5")
    assert ledger.attempts[0].cause == "fault drill: rank 1 killed after step 5"


def test_goodput_is_productive_over_all_parts_and_survives_a_round_trip(tmp_path):
    ledger = Ledger()
    ledger.begin_attempt(10.0, None, world_size=4)
    ledger.parts.update(productive=90.0, checkpoint=6.0, startup=4.0)
    ledger.high_water, ledger.checkpoints, ledger.ckpt_interval = 120, 3, 40
    assert ledger.total_s == pytest.approx(100.0) and ledger.fraction == pytest.approx(0.9)

    save_ledger(str(tmp_path / "run"), ledger.to_dict())
    back = load_ledger(str(tmp_path / "run"))
    assert back == ledger and set(back.parts) == set(PARTS)
    assert load_ledger(str(tmp_path / "nowhere")) is None


def test_a_launch_note_is_kept_with_what_the_ledger_already_holds(tmp_path):
    run = str(tmp_path / "run")
    note_launch(run, now=50.0)
    assert load_ledger(run).launched == 50.0 and load_ledger(run).attempts == []
    ledger = Ledger()
    ledger.begin_attempt(60.0, None, world_size=1)
    save_ledger(run, ledger.to_dict())
    note_launch(run, now=70.0)
    back = load_ledger(run)
    assert back.launched == 70.0 and len(back.attempts) == 1


def test_an_unreadable_ledger_is_set_aside_not_fatal(tmp_path, caplog):
    (tmp_path / "goodput.json").write_text("{ not json")
    assert load_ledger(str(tmp_path)) is None
    assert "unreadable goodput ledger" in caplog.text
