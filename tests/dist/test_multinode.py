"""Training across Ray nodes that have their own addresses: launch/local_cluster.sh makes
each node a network namespace on this machine (tests/dist/multinode.py). Needs root; skipped
with the reason where network namespaces cannot be made."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import fsspec
import pytest
import torch

from conftest import free_port, small_overrides
from multinode import HOST_IP, ROOT, SCRIPT, LocalCluster, node_ip, unavailable, worker_ips

GANDIST = os.path.join(os.path.dirname(sys.executable), "gandist")


def test_cluster_script_names_bad_input_and_the_fix():
    for args, expected in ((["up", "two"], "N='two' must be a number of nodes"),
                           (["add", "300"], "node index '300' must be a number from 0 to 249"),
                           (["kill", "x"], "node index 'x'")):
        done = subprocess.run([SCRIPT, *args], capture_output=True, text=True)
        assert done.returncode == 2 and expected in done.stderr, (args, done.stderr)
    usage = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "up N" in usage.stdout and "198.18.0.0/15" in usage.stdout


REASON = unavailable()
needs_netns = pytest.mark.skipif(REASON is not None, reason=f"multi-node tests: {REASON}")


@pytest.fixture(scope="module")
def cluster():
    """Two Ray nodes (198.18.0.1 head, 198.18.0.2) and an S3 API server on the bridge address."""
    from moto.server import ThreadedMotoServer

    directory = tempfile.mkdtemp(prefix="gdc-", dir="/tmp")  # short: Ray's socket paths live under it
    local = LocalCluster(directory)
    try:
        local.up(2)
        port = free_port()
        server = ThreadedMotoServer(ip_address=HOST_IP, port=port, verbose=False)
        server.start()
        local.s3_env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{HOST_IP}:{port}"}
        try:
            yield local
        finally:
            server.stop()
    finally:
        local.down()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_data(cluster) -> str:
    """The tiny shapes set in a bucket of the S3 server every node reaches."""
    from gandist.data.shards import write_shard_set

    saved = {k: os.environ.get(k) for k in cluster.s3_env}
    os.environ.update(cluster.s3_env)
    try:
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("multinode")
        url = "s3://multinode/shapes32"
        write_shard_set("builtin:shapes", url, samples=64, heldout=16, shard_size=24, size=32, seed=0)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
    return url


class Driver:
    """A `gandist train` process whose output lines are kept with the time they arrived."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.monotonic(), line))

    def wait(self, timeout: float) -> str:
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.reader.join(timeout=10)
        out = self.output
        assert self.proc.returncode == 0, f"driver failed ({self.proc.returncode}):\n{out[-6000:]}"
        return out

    @property
    def output(self) -> str:
        return "".join(line for _, line in self.lines)

    def first(self, text: str, after: float = 0.0) -> float:
        return next(t for t, line in self.lines if text in line and t >= after)


def train_argv(data: str, name: str, *extra: str) -> list[str]:
    return [GANDIST, "train", *small_overrides(data, "s3://multinode/runs", name),
            "trainer.num_workers=2", "data.loader_workers=0", *extra]


def driver_env(cluster: LocalCluster) -> dict[str, str]:
    return {**os.environ, **cluster.s3_env, "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "1", "PYTHONUNBUFFERED": "1"}


def final_state(name: str, env: dict[str, str], step: int) -> dict:
    from gandist.ckpt import load_checkpoint

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return load_checkpoint(f"s3://multinode/runs/{name}/checkpoint_{step:08d}")
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@needs_netns
@pytest.mark.slow
def test_two_nodes_train_bitwise_the_same_as_one_node(cluster, cluster_data):
    env = driver_env(cluster)
    steps = ["trainer.max_steps=4", "trainer.ckpt_every=4"]
    two = Driver(cluster.command(0, train_argv(cluster_data, "two-nodes", *steps,
                                               f"dist.ray_address={cluster.head_address}",
                                               "dist.socket_ifname=eth0")), env).wait(timeout=300)
    # Both ranks ran, on different nodes (Ray Train's controller lists each rank's node).
    assert sorted(worker_ips(two).values()) == [node_ip(0), node_ip(1)], two[-3000:]
    # The same config on one node: a fresh local Ray cluster of this machine, 2 workers.
    Driver(train_argv(cluster_data, "one-node", *steps), env).wait(timeout=300)
    a, b = final_state("two-nodes", env, 4), final_state("one-node", env, 4)
    for net in ("G", "D", "G_ema"):
        for key, tensor in a["state"][net].items():
            assert torch.equal(tensor, b["state"][net][key]), f"{net}.{key} differs"
