"""`gandist submit` against a real Ray cluster started with `ray start --head` on loopback:
a job runs to SUCCEEDED; a job stopped with `ray job stop` mid-run resumes when resubmitted."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import fsspec
import pytest

from helpers import (
    MARKER_SECRET,
    bucket_objects_containing,
    files_containing,
    free_port,
    processes_mentioning,
    small_overrides,
    stop_processes,
    wait_for_job_api,
)
from gandist.ckpt import find_latest_checkpoint, read_meta
from gandist.cli import main

pytestmark = pytest.mark.slow

BIN = os.path.dirname(sys.executable)


def ray_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(BIN, "ray"), *args], env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture
def head(s3_server):
    """A one-node Ray cluster of its own (temp dir, ports), stopped afterwards whatever happens.
    Its environment holds the S3 server's credentials: the cluster's own, as on a real one."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    dashboard = free_port()
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}  # a loopback-only test cluster: no token to hand around
    started = ray_cli("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(free_port()),
                      "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                      "--ray-client-server-port", str(free_port()), "--temp-dir", temp, "--num-cpus", "3",
                      "--include-dashboard", "true", env=env)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        wait_for_job_api(address)
        yield address, env, temp
    finally:
        # Only this cluster's processes (their command lines name its temp dir) and what they
        # started: never `ray stop`, which would end every Ray process on the machine.
        stop_processes(processes_mentioning(temp))
        shutil.rmtree(temp, ignore_errors=True)


def job_id(out: str) -> str:
    return re.search(r"^job id\s+: (\S+)$", out, flags=re.M).group(1)


def test_submit_runs_to_success_and_a_stopped_job_resumes(head, shapes_url, s3_shapes_url, bucket, tmp_path,
                                                         capsys, monkeypatch):
    from ray.job_submission import JobSubmissionClient

    address, env, temp = head
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret == MARKER_SECRET

    # Data and checkpoints in the S3 server; the job finds the credentials on the cluster.
    base = small_overrides(s3_shapes_url, f"{bucket}/runs", "job") + ["trainer.num_workers=2", "trainer.ckpt_every=2"]
    assert main(["submit", "--address", address, "--wait", *base, "trainer.max_steps=4"]) == 0
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and f"ray job stop --address {address}" in out
    assert "AWS_ENDPOINT_URL" in out and "never sent" in out  # settings named; credentials not sent
    assert read_meta(find_latest_checkpoint(f"{bucket}/runs/job"))["step"] == 4
    fsspec.filesystem("s3").invalidate_cache()
    assert fsspec.filesystem("s3").find(f"{bucket}/runs/job/tensorboard")

    # The secret is nowhere: the job's info in the job API, Ray's logs, the bucket, the console.
    client = JobSubmissionClient(address)
    [job] = [j for j in client.list_jobs() if j.submission_id == job_id(out)]
    assert secret not in json.dumps(job.model_dump(), default=str)  # entrypoint, runtime env, metadata
    assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(job.runtime_env)
    assert files_containing(secret, temp, os.environ["GANDIST_CACHE_DIR"]) == []
    assert bucket_objects_containing(secret, bucket) == []
    assert secret not in out + client.get_job_logs(job.submission_id)

    # A long job, stopped once it has a checkpoint, then submitted again with the same run.name.
    long = small_overrides(shapes_url, str(tmp_path), "stopped") + [
        "trainer.num_workers=2", "trainer.ckpt_every=2", "trainer.max_steps=400"]
    assert main(["submit", "--address", address, *long]) == 0
    first = job_id(capsys.readouterr().out)
    client = JobSubmissionClient(address)
    deadline = time.monotonic() + 240
    while find_latest_checkpoint(str(tmp_path / "stopped")) is None:
        status = client.get_job_status(first).value
        assert status in ("PENDING", "RUNNING") and time.monotonic() < deadline, client.get_job_logs(first)[-3000:]
        time.sleep(1)
    assert ray_cli("job", "stop", "--address", address, first, env=env).returncode == 0
    while client.get_job_status(first).value not in ("STOPPED", "FAILED", "SUCCEEDED"):
        time.sleep(1)
    assert client.get_job_status(first).value == "STOPPED"
    stopped_at = read_meta(find_latest_checkpoint(str(tmp_path / "stopped")))["step"]
    assert stopped_at < 400

    resume = long[:-1] + [f"trainer.max_steps={stopped_at + 2}"]
    assert main(["submit", "--address", address, "--wait", *resume]) == 0
    second = job_id(capsys.readouterr().out)
    final = find_latest_checkpoint(str(tmp_path / "stopped"))
    assert read_meta(final)["step"] == stopped_at + 2
    assert read_meta(final)["resumed_from"] == stopped_at
    assert f"Resumed from checkpoint at step {stopped_at}" in client.get_job_logs(second)
