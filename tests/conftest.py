"""Fixtures shared by the test suite: small real shard sets, a real S3 API server, and the
environment they need, restored afterwards. Helpers the tests call live in helpers.py.

Tests that start a cluster or a server are marked ``slow`` (Ray, torchrun, the S3 API server,
TensorBoard, kustomize's end to end): ``make test-fast`` leaves them out, ``make test`` runs all.
"""

from __future__ import annotations

import os

# Under pytest-xdist (make test-fast, and make test's quick half: one pytest worker per core),
# each worker and what it starts computes on one thread: two workers each spinning torch's
# intra-op threads on the same cores run slower than one pytest alone. Set before anything
# imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

from helpers import MARKER_SECRET, RayHead, environ, free_port, s3_api_server

# Ray must not phone home or look for a dashboard in tests.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

SERVER_FIXTURES = {"s3_server", "bucket", "s3_shapes_url", "ray_head"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses the S3 API server starts a server: it is slow (out of make test-fast).

    The tests on the session's Ray head (the k8s smoke job, test_ray_train's runs, the
    submitted job) run last, in their own order: the head then lives only while they run,
    instead of idling from tests/k8s to the end of the session (its GCS, raylet, dashboard and
    agents take CPU even when idle, beside the cluster test_multinode starts on the same 2
    cores)."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    on_head = [item for item in items if "ray_head" in getattr(item, "fixturenames", ())]
    moved = {id(item) for item in on_head}
    items[:] = [item for item in items if id(item) not in moved] + on_head


@pytest.fixture(scope="session", autouse=True)
def gandist_cache(tmp_path_factory):
    """Runs with remote storage keep their local TensorBoard copy here, not in ~/.cache.

    Ray Train's controller polls its workers every 0.2 s instead of 2 s, in every cluster and
    driver a test starts (Ray Train hands the variable from the driver to its controller): a
    worker group starts, ends and is found dead in fractions of a second instead of seconds
    of waiting, which is most of a small test run's time.

    Ray Train's preemption watcher is off: an observer that only logs node drains (no test
    drains a node, and gandist reads nothing of it), started as one more actor process, one
    more Python importing ray.train, at every worker-group start, while the workers are
    starting on the same 2 cores. The suite starts about 20 worker groups.

    No raylet prestarts idle workers (one per CPU, when a cluster's first driver registers):
    they would serve tasks and actors without a runtime environment, and the tests' Ray Train
    actors all have one (the variables above), so every prestarted Python was started for
    nothing, on a 1-CPU node of test_multinode just before the controller it delays."""
    path = str(tmp_path_factory.mktemp("gandist-cache"))
    with environ({"GANDIST_CACHE_DIR": path, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2",
                  "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0", "RAY_prestart_worker_first_driver": "0"}):
        yield path


@pytest.fixture(scope="session")
def shapes_url(tmp_path_factory) -> str:
    """A tiny builtin:shapes shard set at 32x32: 64 training samples in uneven shards, 16 held out."""
    from gandist.data.shards import write_shard_set

    dest = str(tmp_path_factory.mktemp("data") / "shapes32")
    write_shard_set("builtin:shapes", dest, samples=64, heldout=16, shard_size=24, size=32, seed=0)
    return dest


@pytest.fixture(scope="session")
def shapes_pairs_url(tmp_path_factory) -> str:
    """The same images as ``shapes_url`` as translation pairs (builtin:shapes --pairs image):
    A the label map, B the photo, masks kept."""
    from gandist.data.shards import write_shard_set

    dest = str(tmp_path_factory.mktemp("data") / "pairs32")
    write_shard_set("builtin:shapes", dest, samples=64, heldout=16, shard_size=24, size=32, seed=0, pairs="image")
    return dest


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API server (moto in server mode) on 127.0.0.1, found through the AWS variables.

    The variables are set for this process and, through them, for Ray workers and
    subprocesses the tests start; they are restored afterwards. The secret key is
    MARKER_SECRET, which tests then look for wherever gandist must not have put it.
    """
    with s3_api_server(secret=MARKER_SECRET) as env, environ(env):
        yield env["AWS_ENDPOINT_URL"]


@pytest.fixture
def bucket(s3_server, request) -> str:
    """A fresh bucket on the S3 server, named after the test."""
    import re

    import s3fs

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-") + "-" + str(free_port())
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_shapes_url(s3_server) -> str:
    """The tiny shapes set of ``shapes_url``, written to a bucket on the S3 server."""
    import s3fs

    from gandist.data.shards import write_shard_set

    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("gandist-shapes")
    url = "s3://gandist-shapes/shapes32"
    write_shard_set("builtin:shapes", url, samples=64, heldout=16, shard_size=24, size=32, seed=0)
    return url


@pytest.fixture(scope="session")
def ray_head(s3_server, tmp_path_factory):
    """A one-node, 2-CPU Ray cluster of its own started with `ray start --head` on loopback, job
    API included (its own temp dir and ports), stopped at the end of the session whatever
    happens; shared by the tests that submit to a cluster, as a user would, and by
    test_ray_train's runs, which join it as a driver. Its environment holds the S3 server's
    credentials: the cluster's own, as on a real one."""
    with RayHead() as head:
        yield head
