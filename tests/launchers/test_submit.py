"""`gandist submit` against a real Ray cluster started with `ray start --head` on loopback
(conftest's ray_head): a job stopped with `ray job stop` mid-run resumes when resubmitted and
runs to SUCCEEDED."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import fsspec

from helpers import MARKER_SECRET, bucket_objects_containing, files_containing, http_answering, small_overrides
from gandist.ckpt import find_latest_checkpoint, read_meta
from gandist.cli import main

def ray_cli(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "ray"), *args], env=env,
                          capture_output=True, text=True, timeout=180)


def job_id(out: str) -> str:
    return re.search(r"^job id\s+: (\S+)$", out, flags=re.M).group(1)


def test_a_stopped_job_resumes_when_submitted_again_and_runs_to_success(ray_head, s3_shapes_url, bucket, capsys,
                                                                       monkeypatch):
    from ray.job_submission import JobSubmissionClient

    address, env, temp = ray_head.dashboard, ray_head.env, ray_head.temp
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    secret = os.environ["AWS_SECRET_ACCESS_KEY"]
    assert secret == MARKER_SECRET

    # A long job, data and checkpoints in the S3 server (the job finds the credentials on the
    # cluster), stopped once it has a checkpoint, then submitted again with the same run.name.
    run = f"{bucket}/runs/job"
    long = small_overrides(s3_shapes_url, f"{bucket}/runs", "job") + [
        "trainer.num_workers=2", "trainer.ckpt_every=2", "trainer.max_steps=400"]
    assert main(["submit", "--address", address, *long]) == 0
    out = capsys.readouterr().out
    assert f"ray job stop --address {address}" in out
    assert "AWS_ENDPOINT_URL" in out and "never sent" in out  # settings named; credentials not sent
    first = job_id(out)
    client = JobSubmissionClient(address)
    deadline = time.monotonic() + 240
    s3 = fsspec.filesystem("s3")
    while s3.invalidate_cache() or find_latest_checkpoint(run) is None:  # listings are cached
        status = client.get_job_status(first).value
        assert status in ("PENDING", "RUNNING") and time.monotonic() < deadline, client.get_job_logs(first)[-3000:]
        time.sleep(0.25)
    assert ray_cli("job", "stop", "--address", address, first, env=env).returncode == 0
    while client.get_job_status(first).value not in ("STOPPED", "FAILED", "SUCCEEDED"):
        time.sleep(0.25)
    assert client.get_job_status(first).value == "STOPPED"
    s3.invalidate_cache()
    stopped_at = read_meta(find_latest_checkpoint(run))["step"]
    assert stopped_at < 400

    resume = long[:-1] + [f"trainer.max_steps={stopped_at + 2}"]
    assert main(["submit", "--address", address, "--wait", *resume]) == 0
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out
    second = job_id(out)
    s3.invalidate_cache()
    final = find_latest_checkpoint(run)
    assert read_meta(final)["step"] == stopped_at + 2
    assert read_meta(final)["resumed_from"] == stopped_at
    assert f"Resumed from checkpoint at step {stopped_at}" in client.get_job_logs(second)
    assert s3.find(f"{run}/tensorboard")

    # The secret is nowhere: the jobs' info in the job API, Ray's logs, the bucket, the console.
    for job in [j for j in client.list_jobs() if j.submission_id in (first, second)]:
        assert secret not in json.dumps(job.model_dump(), default=str)  # entrypoint, runtime env, metadata
        assert "AWS_SECRET_ACCESS_KEY" not in json.dumps(job.runtime_env)
        assert secret not in client.get_job_logs(job.submission_id)
    assert files_containing(secret, temp, os.environ["GANDIST_CACHE_DIR"]) == []
    assert bucket_objects_containing(secret, bucket) == []
    assert secret not in out


def test_a_token_in_the_environment_turns_token_auth_on_and_a_401_says_what_to_export(monkeypatch, capsys):
    """Ray's job client sends RAY_AUTH_TOKEN only under RAY_AUTH_MODE=token: gandist submit sets
    the mode when a token is given (never printing it), leaves an explicit mode alone, and a
    cluster's 401 becomes an error naming RAY_AUTH_TOKEN."""
    from gandist.launchers.submit import enable_token_auth

    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(name, "")  # recorded first: teardown restores it, whatever the code sets
        monkeypatch.delenv(name)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "a-token-value")
    assert enable_token_auth() == "RAY_AUTH_TOKEN" and os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert enable_token_auth() is None and os.environ["RAY_AUTH_MODE"] == "disabled"

    monkeypatch.delenv("RAY_AUTH_MODE")
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    with http_answering(401, b"Unauthorized: missing or invalid token") as head:  # a token-auth head's answer
        assert main(["submit", "--address", f"http://{head}", "task=segment", "run.storage=s3://b/runs",
                     "data.url=s3://b/data"]) == 2
    err = capsys.readouterr().err
    assert "refused the request (401)" in err and "export RAY_AUTH_TOKEN=" in err, err
    assert "a-token-value" not in err


def test_every_local_path_key_reaches_the_cluster_job_absolute(tmp_path, monkeypatch):
    # The job's working directory is an upload of this checkout: a relative path there is not the
    # user's. Each local path key goes on as an absolute override; a bucket needs nothing.
    from gandist.config import PATH_KEYS, compose_config
    from gandist.launchers.submit import paths_for_cluster

    monkeypatch.chdir(tmp_path)
    assert set(PATH_KEYS) == {"data.url", "data.unlabeled_url", "run.storage", "eval.segmenter"}
    segment = ["task=segment_semi", "data.label_fraction=1.0", "data.url=data/shapes", "data.unlabeled_url=data/more",
               "run.storage=s3://bucket/runs"]
    _, passed, note = paths_for_cluster(compose_config(segment), segment)
    assert passed == segment + [f"data.url={tmp_path}/data/shapes", f"data.unlabeled_url={tmp_path}/data/more"]
    assert "data.unlabeled_url=data/more" in note and "run.storage" not in note

    translate = ["task=translate", "data.url=s3://bucket/facades", "run.storage=runs",
                 "eval.segmenter=runs/seg/checkpoints"]
    _, passed, note = paths_for_cluster(compose_config(translate), translate)
    assert passed == translate + [f"run.storage={tmp_path}/runs", f"eval.segmenter={tmp_path}/runs/seg/checkpoints"]

    remote = ["data.url=s3://bucket/shapes", "run.storage=s3://bucket/runs"]
    assert paths_for_cluster(compose_config(remote), remote)[1:] == (remote, None)
