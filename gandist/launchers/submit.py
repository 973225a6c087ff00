"""`gandist submit`: run `gandist train` as a Ray job on an existing Ray cluster.

The job's entrypoint is ``python -m gandist.cli train <overrides>``; its runtime environment
is ``launch/runtime_env.yaml`` plus the submitting shell's object-store settings (endpoint,
region, profile name). Credentials never travel with the job (Ray logs runtime environments):
the job takes them where the cluster's nodes have them. Submitting again with the same
``run.name`` resumes that run from its checkpoints.
"""

from __future__ import annotations

import logging
import os
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from gandist.config import Config, ConfigError, absolutize, path_values
from gandist.credentials import CREDENTIAL_VARIABLES, SETTINGS, WHERE_TO_PUT_THEM, storage_settings
from gandist.urls import absolute, is_local

log = logging.getLogger(__name__)

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass
class Submitted:
    job_id: str
    address: str
    entrypoint: str
    passed_env: list[str]  # names of the object-store settings passed (never credentials)


def default_runtime_env() -> Optional[str]:
    """launch/runtime_env.yaml of this checkout, if gandist runs from one."""
    path = Path(__file__).resolve().parents[2] / "launch" / "runtime_env.yaml"
    return str(path) if path.exists() else None


def load_runtime_env(path: Optional[str], cfg: Config) -> dict[str, Any]:
    """The runtime_env file (relative working_dir resolved against the file's repo root) with
    this shell's object-store settings (endpoint, region, profile: never a credential) added
    to env_vars."""

    runtime_env: dict[str, Any] = {}
    if path:
        with open(path) as f:
            runtime_env = yaml.safe_load(f) or {}
        if not isinstance(runtime_env, dict):
            raise ConfigError(f"--runtime-env {path} must hold a mapping (working_dir, env_vars, ...)")
        wd = runtime_env.get("working_dir")
        if wd and absolute(wd) != wd:  # a relative local path
            # launch/runtime_env.yaml says "." meaning the repository: resolve from its parent dir.
            base = os.path.dirname(os.path.dirname(os.path.abspath(path)))
            runtime_env["working_dir"] = os.path.normpath(os.path.join(base, wd))
    env = dict(runtime_env.get("env_vars") or {})
    carried = sorted(k for k in env if k in CREDENTIAL_VARIABLES)
    if carried:
        raise ConfigError(f"--runtime-env {path} sets {', '.join(carried)}: Ray writes runtime environments to its "
                          "logs and dashboard in plain text. Remove them; " + WHERE_TO_PUT_THEM)
    env.update(storage_settings(cfg))
    env.update({k: v for k, v in os.environ.items() if k.startswith("GANDIST_") and k != "GANDIST_CACHE_DIR"})
    runtime_env["env_vars"] = env
    return runtime_env


def entrypoint(overrides: Sequence[str]) -> str:
    return " ".join(["python", "-m", "gandist.cli", "train", *map(shlex.quote, overrides)])


TOKEN_SOURCES = ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
HOW_TO_AUTHENTICATE = ("the cluster wants a token: export RAY_AUTH_TOKEN=<the cluster's token> (on KubeRay, "
                       "from its auth Secret: see k8s/README.md) and submit again")


def enable_token_auth() -> Optional[str]:
    """Ray's job client sends a token only under RAY_AUTH_MODE=token, even when RAY_AUTH_TOKEN
    is set (a token-auth cluster then answers 401). A token given in the environment turns
    the mode on for this process; an explicit RAY_AUTH_MODE is left alone. Returns the
    variable the token came from (never the token)."""
    if "RAY_AUTH_MODE" in os.environ:
        return None
    source = next((name for name in TOKEN_SOURCES if os.environ.get(name)), None)
    if source:
        os.environ["RAY_AUTH_MODE"] = "token"
    return source


def paths_for_cluster(cfg: Config, overrides: Sequence[str]) -> tuple[Config, list[str], Optional[str]]:
    """The job runs elsewhere, where relative paths would resolve in its working directory: every
    local path key (PATH_KEYS: data.url, data.unlabeled_url, run.storage, eval.segmenter) is made
    absolute and passed as an override. Returns the config, the overrides and a note for the user
    (None when every path is remote)."""
    local = [key for key, value in path_values(cfg).items() if is_local(value)]
    if not local:
        return cfg, list(overrides), None
    given = ", ".join(f"{key}={value}" for key, value in path_values(cfg).items() if key in local)
    resolved = path_values(absolutize(cfg))
    shown = ", ".join(resolved[key] for key in local)
    return cfg, [*overrides, *(f"{key}={resolved[key]}" for key in local)], (
        f"note: {given} are local paths; the cluster's machines must see them at {shown} (use s3://... for a "
        f"multi-machine cluster)")


def submit(cfg: Config, overrides: Sequence[str], address: str, runtime_env_path: Optional[str]) -> Submitted:
    """Submit the training job; returns its id. Fails fast when the cluster cannot be reached."""
    from ray.job_submission import JobSubmissionClient

    runtime_env = load_runtime_env(runtime_env_path, cfg)
    token_from = enable_token_auth()
    if token_from:
        log.info("token authentication on: the token in %s goes with every request to the job API", token_from)
    try:
        client = JobSubmissionClient(address)
    except Exception as e:  # connection refused, wrong port, no token: say which and what to do
        if "401" in str(e) or "nauthorized" in str(e):
            raise ConfigError(f"the Ray job API at --address {address} refused the request (401): "
                              + HOW_TO_AUTHENTICATE) from None
        raise ConfigError(f"cannot reach a Ray cluster's job API at --address {address}: {e}. Check the "
                          "dashboard address (http://<head>:8265) and that the cluster is up") from None
    job_id = f"gandist-{cfg.run.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = entrypoint(overrides)
    client.submit_job(entrypoint=command, runtime_env=runtime_env, submission_id=job_id,
                      metadata={"gandist_run": cfg.run.name, "run_storage": cfg.run.storage})
    passed = sorted(k for k in runtime_env["env_vars"] if k in SETTINGS)
    return Submitted(job_id, address, command, passed)


def wait(address: str, job_id: str, timeout: Optional[float] = None, poll: float = 0.5) -> str:
    """Block until the job ends; returns its final status (SUCCEEDED, FAILED, STOPPED). One small
    status request every ``poll`` seconds, so `gandist submit --wait` returns within half a
    second of the job's end."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(address)
    began = time.monotonic()
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in TERMINAL:
            return status
        if timeout is not None and time.monotonic() - began > timeout:
            raise TimeoutError(f"job {job_id} still {status} after {timeout:.0f} s")
        time.sleep(poll)


def follow_up(sub: Submitted, cfg: Config) -> list[str]:
    """What to run next, for the user."""
    a = sub.address
    return [
        f"job id      : {sub.job_id}",
        f"logs        : ray job logs --address {a} --follow {sub.job_id}",
        f"status      : ray job status --address {a} {sub.job_id}",
        f"stop        : ray job stop --address {a} {sub.job_id}",
        "resume      : run the same gandist submit command again (same run.name); it continues "
        f"from the latest checkpoint in {cfg.run.storage.rstrip('/')}/{cfg.run.name}",
        f"TensorBoard : tensorboard --logdir {cfg.run.storage.rstrip('/')}/{cfg.run.name}/tensorboard",
    ]
