"""Fixtures shared by the test suite: small real shard sets and small configs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from typing import Any, Iterator, Sequence

import pytest

# Ray must not phone home or look for a dashboard in tests.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@contextlib.contextmanager
def environ(env: dict[str, str]) -> Iterator[None]:
    """``env`` set in this process (and so in the processes it starts), restored afterwards."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session", autouse=True)
def gandist_cache(tmp_path_factory):
    """Runs with remote storage keep their local TensorBoard copy here, not in ~/.cache."""
    path = str(tmp_path_factory.mktemp("gandist-cache"))
    with environ({"GANDIST_CACHE_DIR": path}):
        yield path


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
        "trainer.log_every=1", "trainer.image_every=2", "eval.every=2", "eval.batches=1",
    ]


def local_cfg(data_url: str, storage, name: str, *extra: str):
    """A small one-process (dist.launcher=local) config, composed as the CLI would."""
    from gandist.cli import absolutize, compose_config

    overrides = small_overrides(data_url, str(storage), name) + [
        "dist.launcher=local", "trainer.num_workers=1", *extra]
    return absolutize(compose_config(overrides))


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def run_logged(cfg):
    """run_local, and the messages the training loop logged meanwhile."""
    from gandist.dist.local import run_local

    collect, logger = Collect(), logging.getLogger("gandist.train")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)
    try:
        return run_local(cfg), collect.messages
    finally:
        logger.removeHandler(collect)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API server (moto in server mode) on 127.0.0.1, found through the AWS variables.

    The variables are set for this process and, through them, for Ray workers and
    subprocesses the tests start; they are restored afterwards.
    """
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # not a line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    with environ(env):
        yield env["AWS_ENDPOINT_URL"]
    server.stop()


def wait_for_job_api(address: str, timeout: float = 60) -> None:
    """The Ray job API at ``address`` answers a little after `ray start` returns."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{address}/api/version", timeout=5).read()
            return
        except OSError:
            assert time.monotonic() < deadline, f"the Ray job API at {address} did not come up in {timeout:.0f} s"
            time.sleep(1)


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


class TensorBoardServer:
    """A real `tensorboard` process on a free port of 127.0.0.1, queried over its HTTP API."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict) -> Any:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json", "X-XSRF-Protected": "1"})
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def scalar_steps(self, tag: str, run: str = ".") -> list[int]:
        from urllib.parse import quote

        return [step for _, step, _ in self.get(f"/data/plugin/scalars/scalars?run={quote(run)}&tag={quote(tag)}")]


@contextlib.contextmanager
def tensorboard_server(logdir: str, wait_for_tag: str,
                       flags: Sequence[str] = ("--reload_interval", "1")) -> Iterator[TensorBoardServer]:
    """Start TensorBoard on ``logdir`` with ``flags``; yield once it serves ``wait_for_tag``."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
                             "--port", str(port), *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = TensorBoardServer(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                tags = server.get("/data/plugin/scalars/tags")
                if any(wait_for_tag in run_tags for run_tags in tags.values()):
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"tensorboard did not serve {wait_for_tag!r}: {proc.stderr.read()[-2000:]}")
            time.sleep(0.5)
        yield server
    finally:
        proc.terminate()
        proc.wait(timeout=30)
