"""Checkpoint directories: complete ones are found, interrupted or damaged ones never used."""

from __future__ import annotations

import fsspec
import pytest
import torch

from gandist.ckpt import CheckpointError, find_latest_checkpoint, load_checkpoint, read_meta, write_checkpoint


def make_run(tmp_path, steps: list[int]) -> str:
    run = tmp_path / "run"
    for step in steps:
        write_checkpoint(str(run / f"checkpoint_{step:08d}"), {"w": torch.full((64,), float(step))}, {"step": step})
    return str(run)


def test_meta_records_size_and_hash_and_load_round_trips(tmp_path):
    run = make_run(tmp_path, [2])
    meta = read_meta(f"{run}/checkpoint_00000002")
    info = meta["files"]["state.pt"]
    assert info["bytes"] == (tmp_path / "run" / "checkpoint_00000002" / "state.pt").stat().st_size
    assert len(info["sha256"]) == 64 and meta["step"] == 2 and "gandist_version" in meta
    assert torch.equal(load_checkpoint(f"{run}/checkpoint_00000002")["w"], torch.full((64,), 2.0))


def copy_run_to(fs_url: str, local_run: str) -> str:
    fs, root = fsspec.core.url_to_fs(fs_url)
    fs.put(local_run, root, recursive=True)
    return fs_url


@pytest.mark.parametrize("where", ["local", "s3"])
def test_interrupted_upload_with_meta_but_short_state_is_skipped(tmp_path, where, request):
    """Uploaders keep no file order: meta.json may land before state.pt is complete."""
    run = make_run(tmp_path, [2, 4])
    state = tmp_path / "run" / "checkpoint_00000004" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])  # cut off mid-upload
    if where == "s3":
        bucket = request.getfixturevalue("bucket")
        run = copy_run_to(f"{bucket}/run", run)
    assert find_latest_checkpoint(run) == f"{run}/checkpoint_00000002"


def test_a_missing_meta_is_an_interrupted_write(tmp_path):
    run = make_run(tmp_path, [2, 4])
    (tmp_path / "run" / "checkpoint_00000004" / "meta.json").unlink()
    assert find_latest_checkpoint(run) == f"{run}/checkpoint_00000002"
    with pytest.raises(CheckpointError, match="not a complete gandist checkpoint"):
        load_checkpoint(f"{run}/checkpoint_00000004")


def test_damaged_state_of_the_right_size_is_refused_with_the_fix(tmp_path):
    run = make_run(tmp_path, [2])
    state = tmp_path / "run" / "checkpoint_00000002" / "state.pt"
    data = bytearray(state.read_bytes())
    data[-10] ^= 0xFF
    state.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged.*resumes from the checkpoint before it"):
        load_checkpoint(f"{run}/checkpoint_00000002")


def scored_run(tmp_path, values: dict[int, float | None], order: str) -> str:
    """A run whose checkpoints record an evaluation score (None: taken without an evaluation)."""
    run = tmp_path / f"scored-{order}"
    for step, value in values.items():
        score = None if value is None else {"metric": "eval/x", "order": order, "value": value}
        write_checkpoint(str(run / f"checkpoint_{step:08d}"), {"w": torch.zeros(1)}, {"step": step, "score": score})
    return str(run)


@pytest.mark.parametrize("order, best_step", [("max", 4), ("min", 6)])
def test_best_checkpoint_follows_the_metric_direction(tmp_path, order, best_step):
    from gandist.ckpt import resolve_checkpoint

    run = scored_run(tmp_path, {2: 0.5, 4: 0.9, 6: 0.1, 8: None}, order)
    assert resolve_checkpoint(run, best=True).endswith(f"checkpoint_{best_step:08d}")
    assert resolve_checkpoint(run).endswith("checkpoint_00000008")  # the latest, without --best


def test_best_checkpoint_errors_name_the_fix(tmp_path):
    from gandist.ckpt import resolve_checkpoint

    run = scored_run(tmp_path, {2: None, 4: None}, "max")
    with pytest.raises(CheckpointError, match="has an evaluation score.*trainer.keep_best.*drop --best"):
        resolve_checkpoint(run, best=True)
    with pytest.raises(CheckpointError, match="is one checkpoint: pass its run directory"):
        resolve_checkpoint(f"{run}/checkpoint_00000002", best=True)


def test_retention_keeps_the_k_best_and_the_newest_else_the_newest_few():
    from gandist.ckpt import retained_steps

    checkpoints = [(1, 0.3), (2, None), (3, 0.9), (4, 0.3), (5, -0.2), (6, None)]
    assert retained_steps(checkpoints, keep_best=2, keep_recent=3) == {3, 4, 6}  # 4 beats 1: the newer of equals
    assert retained_steps(checkpoints, keep_best=0, keep_recent=3) == {4, 5, 6}
    assert retained_steps([(2, None), (4, None)], keep_best=1, keep_recent=1) == {4}
    assert retained_steps([], keep_best=2, keep_recent=3) == set()


@pytest.mark.parametrize("order", ["max", "min"])
def test_pruning_after_each_checkpoint_never_drops_one_of_the_k_best(order):
    """Pruned as runs prune (after each new checkpoint, from what is left), the kept set is always
    the K best of every checkpoint so far, whichever way the metric is better, and the newest."""
    import random

    from gandist.ckpt import retained_steps, score_key

    rng, k = random.Random(order), 3
    kept: dict[int, float | None] = {}
    history: list[tuple[int, float | None]] = []
    for step in range(1, 60):
        value = None if step % 4 == 0 else round(rng.uniform(0, 1), 2)  # ties happen
        key = score_key({"order": order, "value": value}) if value is not None else None
        kept[step] = key
        history.append((step, key))
        kept = {s: v for s, v in kept.items() if s in retained_steps(list(kept.items()), k, keep_recent=1)}
        scored = sorted((v, s) for s, v in history if v is not None)[-k:]
        assert {s for _, s in scored} <= set(kept) and step in kept, (step, kept)
        assert len(kept) <= k + 1
