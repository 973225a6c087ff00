"""Training across Ray nodes that have their own addresses: launch/local_cluster.sh makes
each node a network namespace on this machine (tests/launchers/multinode.py). Needs root; skipped
with the reason where network namespaces cannot be made."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import fsspec
import pytest
import torch

from helpers import environ, s3_api_server, small_overrides, stop_child, wait_for_job_api
from gandist.ckpt import load_checkpoint
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
    directory = tempfile.mkdtemp(prefix="gdc-", dir="/tmp")  # short: Ray's socket paths live under it
    # The nodes hold the object-store credentials in their own environment, as a real cluster's
    # nodes would; the server (on the bridge, which exists once the nodes are up) accepts them.
    credentials = {"AWS_ACCESS_KEY_ID": "node-key", "AWS_SECRET_ACCESS_KEY": f"node-secret-{uuid.uuid4().hex}"}
    local = LocalCluster(directory, env=credentials)
    try:
        local.up(2)
        with s3_api_server(host=HOST_IP, key=credentials["AWS_ACCESS_KEY_ID"],
                           secret=credentials["AWS_SECRET_ACCESS_KEY"]) as env:
            local.s3_env = env
            yield local
    finally:
        local.down()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster_data(cluster) -> str:
    """The tiny shapes set in a bucket of the S3 server every node reaches."""
    from gandist.data.shards import write_shard_set

    url = "s3://multinode/shapes32"
    with environ(cluster.s3_env):
        fsspec.filesystem("s3", skip_instance_cache=True).mkdir("multinode")
        write_shard_set("builtin:shapes", url, samples=64, heldout=16, shard_size=24, size=32, seed=0)
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

    def stop(self) -> None:
        """End it if it still runs."""
        stop_child(self.proc)


def train_argv(data: str, name: str, *extra: str) -> list[str]:
    return [GANDIST, "train", *small_overrides(data, "s3://multinode/runs", name),
            "trainer.num_workers=2", "data.loader_workers=0", *extra]


def driver_env(cluster: LocalCluster) -> dict[str, str]:
    # An elastic restart that still counts a lost node's CPUs gives up waiting for them after
    # 4 s instead of Ray's 60 (conftest makes Ray Train poll its workers every 0.2 s). The wait
    # is only for the placement group (a healthy 2-node cluster grants it in well under a
    # second), and a start that times out is retried without limit (a retryable controller
    # error). The elastic run retries at full size until Ray Train's AutoscalingCoordinator
    # refreshes its view of the cluster (every 20 s in Ray 2.60, no setting), then at its new
    # size: the short timeout only shortens the last try (docs/ray.md).
    return {**os.environ, **cluster.s3_env, "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "4", "PYTHONUNBUFFERED": "1"}


def final_state(name: str, env: dict[str, str], step: int) -> dict:
    with environ(env):
        return load_checkpoint(f"s3://multinode/runs/{name}/checkpoint_{step:08d}")


@needs_netns
@pytest.mark.slow
def test_a_job_submitted_to_the_head_trains_on_both_nodes_bitwise_as_torchrun_on_one_machine(
        cluster, cluster_data, tmp_path):
    """`gandist submit` to the head's job API runs the training on both nodes, and the numbers
    depend neither on where the ranks run nor on the launcher: the job's 2 Ray workers end with
    the same weights as 2 torchrun processes on this machine (run while the job runs: they
    share nothing but the CPUs, which the job's start-up, one Python at a time, leaves idle)."""
    from ray.job_submission import JobSubmissionClient

    wait_for_job_api(cluster.dashboard)
    env = {**driver_env(cluster), "RAY_AUTH_MODE": "disabled"}
    steps = ["trainer.max_steps=4"]
    # The same config on one machine, two processes under torchrun (no Ray).
    torchrun = Driver([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                       "-m", "gandist.cli", "train", *small_overrides(cluster_data, str(tmp_path), "one-machine"),
                       "trainer.num_workers=2", "data.loader_workers=0", "launcher.name=torchrun", *steps], env)
    try:
        submitted = subprocess.run([GANDIST, "submit", "--address", cluster.dashboard, "--wait",
                                    *train_argv(cluster_data, "submitted", *steps)[2:], "launcher.socket_ifname=eth0"],
                                   env=env, cwd=ROOT, capture_output=True, text=True, timeout=400)
        job = re.search(r"^job id\s+: (\S+)$", submitted.stdout, flags=re.M).group(1)
        logs = JobSubmissionClient(cluster.dashboard).get_job_logs(job)
        assert submitted.returncode == 0 and "SUCCEEDED" in submitted.stdout, logs[-5000:]
        # Both ranks ran, on different nodes (Ray Train's controller lists each rank's node).
        assert sorted(worker_ips(logs).values()) == [node_ip(0), node_ip(1)], logs[-3000:]
        assert "Run 'submitted' finished at step 4" in logs
        torchrun.wait(timeout=300)
    finally:
        torchrun.stop()
    a = final_state("submitted", env, 4)
    b = load_checkpoint(str(tmp_path / "one-machine" / "checkpoint_00000004"))
    for net in ("G", "D", "G_ema"):
        for key, tensor in a["state"][net].items():
            assert torch.equal(tensor, b["state"][net][key]), f"{net}.{key} differs"


@needs_netns
@pytest.mark.slow
def test_without_socket_ifname_the_error_names_the_setting(cluster, cluster_data):
    driver = Driver(cluster.command(0, train_argv(cluster_data, "no-ifname", "trainer.max_steps=2",
                                                  f"launcher.ray_address={cluster.head_address}")), driver_env(cluster))
    driver.proc.wait(timeout=300)
    driver.reader.join(timeout=10)
    assert driver.proc.returncode == 2, driver.output[-3000:]
    assert "(they tried 127.0.0.1)" in driver.output and "launcher.socket_ifname=eth0" in driver.output


LOSS_STEPS = 12  # the runs that lose a node: a checkpoint at 6, the kill, the rest after the restart


def run_losing_a_node(cluster: LocalCluster, data: str, name: str, replace: bool, *extra: str) -> tuple[str, dict]:
    """Train 2 workers on 2 nodes for LOSS_STEPS; after the step-6 checkpoint kill the worker
    node, then (``replace``) start a new node. Returns the driver's output and the timings."""
    lost = max(cluster.nodes - {0})
    # Synchronous uploads: the kill follows the "Checkpoint at step 6" line, which with the
    # default asynchronous upload comes before the checkpoint is in the bucket (the node then
    # dies mid-upload and the run rightly resumes from step 3).
    driver = Driver(cluster.command(0, train_argv(
        data, name, f"trainer.max_steps={LOSS_STEPS}", "trainer.ckpt_every=3", "trainer.async_checkpoint=false",
        "trainer.max_failures=3", "eval.every=100",
        "trainer.image_every=100", f"launcher.ray_address={cluster.head_address}", "launcher.socket_ifname=eth0",
        *extra)), driver_env(cluster))
    deadline = time.monotonic() + 240
    while not any("Checkpoint at step 6" in line for _, line in driver.lines):
        assert driver.proc.poll() is None and time.monotonic() < deadline, driver.output[-4000:]
        time.sleep(0.2)
    last_step = max(int(m) for m in re.findall(rf"step (\d+)/{LOSS_STEPS}", driver.output))
    killed = time.monotonic()
    cluster.kill(lost)
    if replace:
        cluster.add(cluster.fresh_index())
    out = driver.wait(timeout=300)
    timings = {"lost_node": lost, "last_step_before_kill": last_step}
    restarted = [t for t, line in driver.lines if t > killed and "Attempting to start training worker group" in line]
    if restarted:
        timings["detected_s"] = restarted[0] - killed
    resumed = [t for t, line in driver.lines if t > killed and "Resumed from checkpoint at step" in line]
    if resumed:
        timings["training_again_s"] = resumed[0] - killed
    return out, timings


@needs_netns
@pytest.mark.slow
def test_lost_node_is_replaced_and_training_resumes_from_the_bucket(cluster, cluster_data):
    from gandist.ckpt import read_meta

    out, timings = run_losing_a_node(cluster, cluster_data, "node-loss", replace=True)
    replacement = node_ip(max(cluster.nodes))
    assert replacement in worker_ips(out).values(), out[-4000:]  # the restarted group uses the new node
    resumed = [int(s) for s in re.findall(r"Resumed from checkpoint at step (\d+)", out)]
    assert resumed and resumed[-1] >= 6, out[-4000:]
    timings["steps_replayed"] = timings["last_step_before_kill"] - resumed[-1]
    with environ(cluster.s3_env):
        read_meta(f"s3://multinode/runs/node-loss/checkpoint_{LOSS_STEPS:08d}")
    print(f"node loss: {timings}")


@needs_netns
@pytest.mark.slow
def test_elastic_run_goes_on_with_the_node_that_is_left(cluster, cluster_data):
    out, timings = run_losing_a_node(cluster, cluster_data, "elastic", False, "trainer.min_workers=1")
    assert "Training on 1 workers (elastic, up to trainer.num_workers=2)" in out, out[-4000:]
    assert list(worker_ips(out).values()) == [node_ip(0)], out[-4000:]
    assert f"step {LOSS_STEPS}/{LOSS_STEPS}" in out
    print(f"elastic node loss: {timings}")
