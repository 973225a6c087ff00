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
