"""The submitter command KubeRay v1.7.0 runs for a RayJob in K8sJobMode (the default), ported
from the operator's Go code at tag v1.7.0 so that tests can run an entrypoint exactly as a
cluster would:

- ray-operator/controllers/ray/common/job.go, BuildJobSubmitCommand: the words of the command,
  the entrypoint pasted in unquoted after `--`;
- ray-operator/controllers/ray/rayjob_controller.go, configureSubmitterContainer: the words
  joined with single spaces as the one argument of `/bin/bash -ce --`
  (utils.GetContainerCommand);
- ray-operator/controllers/ray/utils/constant.go: BasePythonHealthCommand,
  RayDashboardGCSHealthPath, RayDashboardGCSHealthCheckTimeoutSeconds.
"""

from __future__ import annotations

import json

import yaml

HEALTH_PATH = "api/gcs_healthz"
HEALTH_TIMEOUT_S = 10
HEALTH_COMMAND = ('python -c "import urllib.request; r=urllib.request.urlopen(\'%s\', timeout=%d); '
                  'exit(0 if b\'success\' in r.read() else 1)"')


def go_quote(text: str) -> str:
    """Go's strconv.Quote, for the printable text KubeRay quotes (JSON strings agree on it)."""
    return json.dumps(text, ensure_ascii=False)


def submit_words(rayjob: dict, dashboard_url: str, job_id: str) -> list[str]:
    """BuildJobSubmitCommand(rayJob, K8sJobMode) with Status.DashboardURL and Status.JobId."""
    spec = rayjob["spec"]
    assert spec.get("submissionMode", "K8sJobMode") == "K8sJobMode", "only K8sJobMode is ported"
    address = dashboard_url if dashboard_url.startswith("http://") else "http://" + dashboard_url
    entrypoint = spec["entrypoint"].strip()
    health = HEALTH_COMMAND % (f"{address}/{HEALTH_PATH}", HEALTH_TIMEOUT_S)
    cmd = ["until", health, ">/dev/null", "2>&1", ";",
           "do", "echo", go_quote(f"Waiting for Ray Dashboard GCS to become healthy at {address} ..."), ";",
           "sleep", "2", ";", "done", ";"]
    cmd += ["if", "!", "ray", "job", "status", "--address", address, job_id, ">/dev/null", "2>&1", ";", "then"]
    cmd += ["ray", "job", "submit", "--address", address, "--no-wait"]
    if spec.get("runtimeEnvYAML"):
        cmd += ["--runtime-env-json", go_quote(json.dumps(yaml.safe_load(spec["runtimeEnvYAML"]),
                                                          separators=(",", ":")))]
    if spec.get("metadata"):
        cmd += ["--metadata-json", go_quote(json.dumps(spec["metadata"], separators=(",", ":")))]
    if job_id:
        cmd += ["--submission-id", job_id]
    if spec.get("entrypointNumCpus", 0) > 0:
        cmd += ["--entrypoint-num-cpus", f"{spec['entrypointNumCpus']:f}"]
    if spec.get("entrypointNumGpus", 0) > 0:
        cmd += ["--entrypoint-num-gpus", f"{spec['entrypointNumGpus']:f}"]
    if spec.get("entrypointResources"):
        cmd += ["--entrypoint-resources", go_quote(spec["entrypointResources"])]
    cmd += ["--", entrypoint, ";", "fi", ";", "ray", "job", "logs", "--address", address, "--follow", job_id]
    return cmd


def submitter_command(rayjob: dict, dashboard_url: str, job_id: str) -> list[str]:
    """The submitter container's command and args, as one argv."""
    return ["/bin/bash", "-ce", "--", " ".join(submit_words(rayjob, dashboard_url, job_id))]
