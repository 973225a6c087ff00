"""The one-process / torchrun launcher's context: every rank resumes from the checkpoint
rank 0 chose, or stops saying why it cannot."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers import free_port, local_cfg


def restore_as_rank(rank: int, port: int, run_paths: list[str], results) -> None:
    from gandist.launchers.local import LocalContext

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        ctx = LocalContext(rank, 2, torch.device("cpu"), run_paths[rank], keep=3, log_path=None)
        payload = ctx.restore()
        results[rank] = ("step", payload["state"]["step"] if payload else None)
    except Exception as e:  # reported to the test, which checks the message
        results[rank] = (type(e).__name__, str(e))
    finally:
        dist.destroy_process_group()


def restore_in_two_ranks(run_paths: list[str]) -> dict:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(restore_as_rank, args=(free_port(), run_paths, results), nprocs=2)
        return dict(results)


@pytest.fixture(scope="module")
def run_with_checkpoints(shapes_url, tmp_path_factory) -> str:
    from gandist.launchers.local import run_local

    storage = tmp_path_factory.mktemp("runs")
    run_local(local_cfg(shapes_url, storage, "r", "trainer.max_steps=2", "trainer.ckpt_every=1"))
    return str(storage / "r")


def test_every_rank_resumes_from_the_checkpoint_rank_0_chose(run_with_checkpoints):
    assert restore_in_two_ranks([run_with_checkpoints, run_with_checkpoints]) == {0: ("step", 2), 1: ("step", 2)}


def test_a_rank_that_cannot_read_rank_0s_checkpoint_stops_instead_of_starting_fresh(run_with_checkpoints, tmp_path):
    """Two nodes without a shared disk: rank 1's run directory is empty."""
    results = restore_in_two_ranks([run_with_checkpoints, str(tmp_path)])
    assert results[0] == ("step", 2)
    kind, message = results[1]
    assert kind == "CheckpointError" and "rank 1 cannot read" in message and "checkpoint_00000002" in message
    assert "file system all nodes share" in message


def test_a_finished_run_launched_again_starts_no_workers_and_a_higher_max_steps_trains_on(shapes_url, tmp_path,
                                                                                          monkeypatch, caplog):
    """What a retried or resubmitted job meets: the newest checkpoint is at trainer.max_steps, so
    launch() returns that checkpoint without starting a launcher (none may run: each raises here);
    with trainer.max_steps raised it trains on from there."""
    import gandist.launchers.local as local
    from gandist.ckpt import read_meta
    from gandist.launchers import launch

    cfg = local_cfg(shapes_url, tmp_path, "done", "trainer.max_steps=2", "trainer.ckpt_every=2")
    first = local.run_local(cfg)
    train = local.run_local

    def refuse(*args):
        raise AssertionError("a launcher started for a finished run")

    monkeypatch.setattr(local, "run_local", refuse)
    with caplog.at_level("INFO", logger="gandist.launchers"):
        again = launch(cfg)
    assert (again.step, again.checkpoint, again.run_dir) == (2, first.checkpoint, first.run_dir)
    assert "Run 'done' already finished at step 2 (trainer.max_steps=2)" in caplog.text
    monkeypatch.setattr(local, "run_local", train)
    cfg.trainer.max_steps = 3
    on = launch(cfg)
    assert on.step == 3 and read_meta(on.checkpoint)["resumed_from"] == 2
