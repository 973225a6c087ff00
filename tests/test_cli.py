"""The command line explains itself and reports bad input without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from gandist.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gandist.cli", *args], capture_output=True, text=True)


def test_top_level_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("train", "shard", "inspect", "export", "sample", "evaluate"):
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


def test_renamed_key_names_its_new_place(capsys):
    assert main(["train", "trainer.eval_every=5"]) == 2
    assert "is now 'eval.every'; write eval.every=5" in capsys.readouterr().err


def trained_run(shapes_url, tmp_path, task: str) -> str:
    from conftest import small_overrides
    from gandist.cli import absolutize, compose_config
    from gandist.dist.local import run_local

    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), task, task=task) + [
        "dist.launcher=local", "trainer.num_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2",
        "eval.samples=16"]))
    run_local(cfg)
    return str(tmp_path / task)


def test_sample_and_evaluate_a_run_in_the_s3_server(shapes_url, bucket, tmp_path, capsys):
    """Both commands read checkpoints from (and write to) the S3 API server, and evaluate
    reproduces what training logged for the same checkpoint."""
    import json

    import fsspec
    from PIL import Image

    from gandist.ckpt import read_meta

    s3 = fsspec.filesystem("s3")
    for task in ("generate", "segment"):
        local = trained_run(shapes_url, tmp_path, task)
        s3.put(local, f"{bucket[len('s3://'):]}/runs/", recursive=True)
    s3.invalidate_cache()

    assert main(["sample", f"{bucket}/runs/generate", "--n", "9", "--out", f"{bucket}/out/g.png"]) == 0
    with s3.open(f"{bucket}/out/g.png", "rb") as f:
        assert Image.open(f).size == (3 * 34 + 2, 3 * 34 + 2)  # 3x3 grid of 32 px samples
    assert main(["sample", f"{bucket}/runs/segment", "--n", "4", "--out", str(tmp_path / "s.png")]) == 0
    width, height = Image.open(tmp_path / "s.png").size
    assert width == 3 * 34 + 2 and height > 4 * 34 + 2  # input | target | prediction, plus a legend

    out = tmp_path / "gen.json"
    assert main(["evaluate", f"{bucket}/runs/generate", f"data.url={shapes_url}", "--json", str(out)]) == 0
    scores = json.loads(out.read_text())["scores"]
    logged = read_meta(f"{bucket}/runs/generate/checkpoint_00000002")
    assert scores["eval/fd_randconv"] > 0 and "eval/kd_randconv" in scores
    assert "eval/fd_randconv" in capsys.readouterr().out  # the printed table

    assert main(["evaluate", f"{bucket}/runs/segment", f"data.url={shapes_url}", "--json",
                 f"{bucket}/out/seg.json"]) == 0
    with s3.open(f"{bucket}/out/seg.json") as f:
        record = json.load(f)
    assert record["step"] == logged["step"] == 2
    assert 0 <= record["scores"]["eval/miou"] <= 1
    assert {"eval/iou/background", "eval/iou/circle", "eval/pixel_accuracy"} <= set(record["scores"])


def test_evaluate_matches_the_training_time_scores(shapes_url, tmp_path):
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = trained_run(shapes_url, tmp_path, "segment")
    acc = EventAccumulator(f"{run}/tensorboard", size_guidance={"scalars": 0})
    acc.Reload()
    logged = acc.Scalars("eval/miou")[-1]
    out = tmp_path / "e.json"
    assert main(["evaluate", run, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["scores"]["eval/miou"] == pytest.approx(logged.value, rel=1e-6)


def test_evaluate_refuses_overrides_of_the_model(shapes_url, tmp_path, capsys):
    run = trained_run(shapes_url, tmp_path, "generate")
    assert main(["evaluate", run, "model.g_width=4"]) == 2
    assert "only data.KEY=VALUE and eval.KEY=VALUE" in capsys.readouterr().err
