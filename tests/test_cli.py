"""The command line explains itself and reports bad input without a traceback."""

from __future__ import annotations

import subprocess
import sys

import yaml

from gandist.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gandist.cli", *args], capture_output=True, text=True)


def test_top_level_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("train", "shard", "export"):
        assert command in out.stdout


def test_train_help_lists_groups_keys_and_docs():
    out = run_cli("train", "--help")
    assert out.returncode == 0
    assert "segment" in out.stdout and "pix2pix" in out.stdout
    assert "trainer.ckpt_every=" in out.stdout
    assert "steps between checkpoints" in out.stdout


def test_dry_run_prints_the_resolved_config(capsys):
    assert main(["train", "--dry-run", "task=segment", "trainer.max_steps=9", "run.name=x"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task"]["name"] == "segment"
    assert printed["model"]["arch"] == "pix2pix"
    assert printed["trainer"]["max_steps"] == 9
    assert printed["run"]["storage"].startswith("/")  # made absolute for the workers


def test_bad_override_exits_2_naming_it(capsys):
    assert main(["train", "trainer.nmu_workers=2"]) == 2
    err = capsys.readouterr().err
    assert "trainer.nmu_workers" in err and "trainer.num_workers" in err


def test_missing_data_is_reported_by_url(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    code = main(["train", f"data.url={missing}", f"run.storage={tmp_path}", "dist.launcher=local",
                 "trainer.num_workers=1"])
    assert code == 2
    assert str(missing) in capsys.readouterr().err


def test_shard_set_with_other_classes_is_refused(shapes_url, tmp_path, capsys):
    code = main(["train", "task=segment", f"data.url={shapes_url}", "data.classes=[background,cat]",
                 "model.resolution=32", f"run.storage={tmp_path}", "dist.launcher=local",
                 "trainer.num_workers=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "data.classes=['background', 'cat']" in err and "'circle'" in err
