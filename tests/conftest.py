"""Fixtures shared by the test suite: small real shard sets and small configs."""

from __future__ import annotations

import os

import pytest

# Ray must not phone home or look for a dashboard in tests.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def shapes_url(tmp_path_factory) -> str:
    """A tiny builtin:shapes shard set at 32x32: 64 training samples in uneven shards, 16 held out."""
    from gandist.data.shards import write_shard_set

    dest = str(tmp_path_factory.mktemp("data") / "shapes32")
    write_shard_set("builtin:shapes", dest, samples=64, heldout=16, shard_size=24, size=32, seed=0)
    return dest


def small_overrides(data_url: str, storage: str, name: str, task: str = "segment") -> list[str]:
    """Overrides for a run small enough for a unit test on 2 cores."""
    return [
        f"task={task}", f"data.url={data_url}", f"run.storage={storage}", f"run.name={name}",
        "model.resolution=32", "model.g_width=8", "model.d_width=8", "model.z_dim=16",
        "data.batch_size=8", "data.loader_workers=0",
        "trainer.log_every=1", "trainer.image_every=2", "trainer.eval_every=2", "trainer.eval_batches=1",
    ]
