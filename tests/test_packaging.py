"""gandist installs like any Python package: the wheel carries every package and the YAML
configs, and an installed (not editable) gandist trains and shards from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (nothing written into the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("gandist", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(out), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [built] = out.glob("gandist-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no -e); torch and the other dependencies come
    from the test venv's site-packages through a .pth line, so nothing is downloaded."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # Appended after the venv's own site-packages, and its .pth files are not run: the test
    # venv's editable gandist stays invisible, its dependencies (and pip) do not.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return venv


def run_in(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GANDIST_CONFIG_DIR", "PYTHONPATH")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_lists_every_package_and_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "gandist").rglob("__init__.py")}
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert missing == [], f"add these to [tool.setuptools] packages in pyproject.toml: {missing}"
    configs = {f"gandist/configs/{p.relative_to(REPO / 'configs')}" for p in (REPO / "configs").rglob("*.yaml")}
    assert configs and configs <= names, sorted(configs - names)


def test_installed_wheel_trains_and_shards_from_another_directory(installed, tmp_path):
    where = run_in(installed, tmp_path, installed / "bin" / "python", "-c", "import gandist; print(gandist.__file__)")
    assert where.stdout.startswith(str(installed)), where.stdout + where.stderr  # the wheel, not the checkout

    dry = run_in(installed, tmp_path, installed / "bin" / "gandist", "train", "--dry-run", "task=segment")
    assert dry.returncode == 0, dry.stderr
    assert "name: segment" in dry.stdout and "arch: unet" in dry.stdout and "seg_loss: ce" in dry.stdout

    shard = run_in(installed, tmp_path, installed / "bin" / "gandist", "shard", "builtin:shapes", "shapes",
                   "--samples", "16", "--heldout", "4", "--size", "16", "--shard-size", "8")
    assert shard.returncode == 0, shard.stderr
    assert (tmp_path / "shapes" / "manifest.json").exists() and "train: 16 samples in 2 shards" in shard.stdout


def test_a_source_tree_on_the_path_uses_its_own_configs(installed, tmp_path):
    """What a Ray job sees when `gandist submit` uploads a checkout as its working directory:
    the tree's gandist/ shadows the installed one, and its configs/ come with it."""
    for name in ("gandist", "configs"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "configs" / "trainer" / "uploaded.yaml").write_text("# @package _global_\ntrainer:\n  max_steps: 7\n")
    dry = run_in(installed, tmp_path, installed / "bin" / "python", "-m", "gandist.cli", "train", "--dry-run",
                 "trainer=uploaded")
    assert dry.returncode == 0, dry.stderr
    assert "max_steps: 7" in dry.stdout
