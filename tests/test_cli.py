"""The command line explains itself and reports bad input without a traceback."""

from __future__ import annotations

import os
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


def test_help_inspect_dry_run_and_report_never_load_torch(shapes_url, tmp_path):
    """Commands that only read configs, manifests and ledgers answer without importing torch
    (about a second and a half of every start): the CLI and what it loads up front import
    torch only in the functions that use it."""
    script = ("import sys; from gandist.cli import build_parser, main; build_parser(); "
              "import gandist.launchers.submit, gandist.inference.report; "  # what submit and report run
              f"codes = [main(['inspect', {shapes_url!r}]), main(['train', '--dry-run', 'task=segment', "
              f"'data.url={shapes_url}', 'model.resolution=32']), main(['report', {str(tmp_path)!r}])]; "
              "print(codes, sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # report exits 2 here: tmp_path holds no run (its error path is what a typo meets).
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 2] []", done.stdout[-500:]


def test_dry_run_prints_the_resolved_config(capsys):
    assert main(["train", "--dry-run", "task=segment", "trainer.max_steps=9", "run.name=x"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task"]["name"] == "segment"
    assert printed["model"]["arch"] == "unet"
    assert printed["trainer"]["max_steps"] == 9
    assert printed["run"]["storage"].startswith("/")  # made absolute for the workers


def test_bad_override_exits_2_naming_it(capsys):
    assert main(["train", "trainer.nmu_workers=2"]) == 2
    err = capsys.readouterr().err
    assert "trainer.nmu_workers" in err and "trainer.num_workers" in err


def test_missing_data_is_reported_by_url(tmp_path, capsys):
    missing = tmp_path / "nothing-here"
    code = main(["train", f"data.url={missing}", f"run.storage={tmp_path}", "launcher.name=local",
                 "trainer.num_workers=1"])
    assert code == 2
    assert str(missing) in capsys.readouterr().err


def test_shard_set_with_other_classes_is_refused(shapes_url, tmp_path, capsys):
    code = main(["train", "task=segment", f"data.url={shapes_url}", "data.classes=[background,cat]",
                 "model.resolution=32", f"run.storage={tmp_path}", "launcher.name=local",
                 "trainer.num_workers=1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "data.classes=['background', 'cat']" in err and "'circle'" in err


@pytest.mark.parametrize("old, new, shown", [
    ("trainer.eval_every=5", "eval.every=5", "every: 5"),
    ("dist.launcher=local", "launcher.name=local", "name: local"),
    ("dist.socket_ifname=eth0", "launcher.socket_ifname=eth0", "socket_ifname: eth0"),
])
def test_renamed_key_still_works_with_a_note_naming_its_new_place(old, new, shown, capsys):
    assert main(["train", "--dry-run", old, "trainer.num_workers=1"]) == 0
    out, err = capsys.readouterr()
    assert f"is now {new.split('=')[0]} (write {new})" in err
    assert shown in out


def trained_run(shapes_url, tmp_path, task: str) -> str:
    from helpers import small_overrides
    from gandist.config import absolutize, compose_config
    from gandist.launchers.local import run_local

    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), task, task=task) + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2",
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
    assert main(["evaluate", run]) == 0  # no --json: the scores go beside the checkpoints
    out = tmp_path / "segment" / "eval_segment_step2.json"
    assert json.loads(out.read_text())["scores"]["eval/miou"] == pytest.approx(logged.value, rel=1e-6)


def test_evaluate_refuses_overrides_of_the_model(shapes_url, tmp_path, capsys):
    run = trained_run(shapes_url, tmp_path, "generate")
    assert main(["evaluate", run, "model.g_width=4"]) == 2
    assert "only data.KEY=VALUE and eval.KEY=VALUE" in capsys.readouterr().err


def test_export_loads_with_weights_only(shapes_url, tmp_path):
    import torch

    from gandist.inference.export import load_generator

    run = trained_run(shapes_url, tmp_path, "segment")
    out = tmp_path / "g.pt"
    assert main(["export", run, str(out)]) == 0
    exported = torch.load(out, weights_only=True)  # plain values and tensors only: no pickled code runs
    assert exported["step"] == 2 and exported["config"]["task"]["name"] == "segment"
    G, _ = load_generator(str(out))
    assert G(torch.zeros(1, 3, 32, 32)).shape == (1, len(exported["classes"]), 32, 32)


def test_printed_commands_run_as_printed_without_an_activated_venv(tmp_path, monkeypatch, capsys):
    """After `make demo` the venv is not active: the summary spells out where the commands are."""
    import shlex

    from gandist.cli import print_summary
    from gandist.config import Config
    from gandist.launchers import RunSummary

    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # gandist's bin/ not on it
    summary = RunSummary(run_dir=str(tmp_path / "r"), log_dir=str(tmp_path / "r" / "tensorboard"), step=4,
                         checkpoint=None, metrics={"eval/miou": 0.5, "eval/pixel_accuracy": 0.9})
    print_summary(Config(), summary)
    out = capsys.readouterr().out
    assert "held-out mIoU" in out and "0.5" in out
    rows = dict(line.split(" : ", 1) for line in out.splitlines() if " : " in line)
    commands = {name.strip(): value for name, value in rows.items() if name.strip() in ("TensorBoard", "export", "sample")}
    assert len(commands) == 3, out
    for command in commands.values():
        program = shlex.split(command)[0]
        assert os.access(program, os.X_OK), f"{program} (printed as {command!r}) is not a program that runs"


def test_shard_ends_its_progress_line_before_a_skipped_file_is_named(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "images"
    src.mkdir()
    for i in range(3):
        Image.new("RGB", (20, 20), (i * 60, 0, 0)).save(src / f"ok{i}.png")
    (src / "bad.png").write_bytes(b"not a png")
    assert main(["shard", str(src), str(tmp_path / "out"), "--size", "16", "--heldout", "0"]) == 0
    err = capsys.readouterr().err
    lines = err.replace("\r", "\n").splitlines()
    skipped = [line for line in lines if "bad.png" in line]
    assert skipped and all("writing samples" not in line for line in skipped), err
