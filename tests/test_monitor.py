"""TensorBoard as a user sees it: a real `tensorboard` server queried over HTTP, and logs
that follow a run living in the S3 API server."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import fsspec
import pytest
import torch

from helpers import local_cfg, run_logged, tensorboard_server
from gandist.launchers.local import run_local
from gandist.monitor import TensorBoardMonitor, flatten

MONITORING_DOC = Path(__file__).resolve().parent.parent / "docs" / "monitoring.md"


def documented_tags() -> list[str]:
    """The tag column of the table of scalars in docs/monitoring.md."""
    text = MONITORING_DOC.read_text()
    table = text[text.index("| tag |"):]
    table = table[:table.index("\n\n")]
    return re.findall(r"^\| `([^`]+)` \|", table, flags=re.M)


def is_documented(tag: str, documented: list[str]) -> bool:
    return any(re.fullmatch(re.escape(d).replace(re.escape("<class>"), "[^/]+"), tag) for d in documented)


@pytest.mark.slow  # starts a TensorBoard server
def test_tensorboard_serves_documented_scalars_images_hparams_and_no_rewound_steps(shapes_url, tmp_path):
    cfg = local_cfg(shapes_url, tmp_path, "tb", "trainer.max_steps=4", "trainer.ckpt_every=2",
                    "eval.every=2", "trainer.image_every=2")
    run_local(cfg)
    # Lose the step-4 checkpoint: the rerun resumes at step 2 and writes steps 3 and 4 again.
    shutil.rmtree(tmp_path / "tb" / "checkpoint_00000004")
    summary, messages = run_logged(cfg)
    assert summary.step == 4 and any(m.startswith("Resumed from checkpoint at step 2") for m in messages)

    with tensorboard_server(str(tmp_path / "tb" / "tensorboard"), wait_for_tag="eval/miou") as tb:
        tags = set(tb.get("/data/plugin/scalars/tags")["."])
        expected = {"loss/D", "loss/D_real", "loss/D_fake", "loss/G", "loss/G_adv", "loss/G_seg", "D/real",
                    "D/fake", "grad/D_norm", "grad/G_norm", "lr/G", "lr/D", "perf/images_per_s",
                    "perf/step_time_s", "perf/data_wait_frac", "ckpt/stall_s", "ckpt/write_s",
                    "ckpt/persist_s", "eval/miou", "eval/pixel_accuracy", "eval/iou/circle", "eval/time_s",
                    "train/skipped_steps", "train/images_seen"}
        assert expected <= tags, sorted(expected - tags)
        documented = documented_tags()
        assert not [t for t in tags if not is_documented(t, documented)], "tags missing from docs/monitoring.md"
        assert tb.scalar_steps("loss/D") == [1, 2, 3, 4]  # steps 3-4 once, from the resumed attempt
        assert tb.scalar_steps("eval/miou") == [2, 4]
        assert "samples" in tb.get("/data/plugin/images/tags")["."]

        experiment = tb.post("/data/plugin/hparams/experiment", {"experimentName": ""})
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        assert {"trainer.lr_g", "task.name", "data.batch_size", "eval.every"} <= hparams
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert {"eval/miou", "loss/G_seg"} <= metrics


def test_flatten_gives_tensorboard_friendly_values():
    assert flatten({"a": {"b": 1, "c": None, "d": [1, 2]}, "e": True}) == {
        "a.b": 1, "a.c": "null", "a.d": "[1, 2]", "e": True}


def read_remote_scalars(remote: str, tag: str, tmp: Path) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fs, root = fsspec.core.url_to_fs(remote)
    fs.invalidate_cache()
    fs.get(f"{root}/tensorboard", str(tmp), recursive=True)
    acc = EventAccumulator(str(tmp), size_guidance={"scalars": 0})
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def test_logs_follow_the_run_to_s3_in_the_background_and_back_on_resume(bucket, tmp_path):
    remote = f"{bucket}/runs/sync"
    fs, root = fsspec.core.url_to_fs(remote)
    first = TensorBoardMonitor(str(tmp_path / "a" / "tensorboard"), sync_to=remote, sync_interval=0.2)
    for step in (1, 2, 3):
        first.scalars({"loss/D": float(step)}, step)
    first.image("samples", torch.rand(3, 8, 8), 3)
    deadline = time.monotonic() + 20  # uploaded by the background thread, before close
    while not (fs.exists(f"{root}/samples/samples_00000003.png") and fs.find(f"{root}/tensorboard")):
        assert time.monotonic() < deadline, "logs were not uploaded in the background"
        time.sleep(0.2)
        fs.invalidate_cache()
    first.close()
    assert read_remote_scalars(remote, "loss/D", tmp_path / "check1") == [1, 2, 3]

    # Another machine resumes at step 2: it fetches the history, then rewrites step 3 onwards.
    second = TensorBoardMonitor(str(tmp_path / "b" / "tensorboard"), purge_step=3, sync_to=remote,
                                sync_interval=60)
    assert (tmp_path / "b" / "samples" / "samples_00000003.png").exists()
    for step in (3, 4):
        second.scalars({"loss/D": 10.0 + step}, step)
    second.close()  # the final upload happens on close, whatever the interval
    assert read_remote_scalars(remote, "loss/D", tmp_path / "check2") == [1, 2, 3, 4]


def test_tensorboard_says_which_r_t_the_run_measures(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gandist.config import Config, LossName
    from gandist.tags import descriptions

    cfg = Config()
    cfg.task.loss = LossName.rpgan
    monitor = TensorBoardMonitor(str(tmp_path / "tensorboard"))
    monitor.describe(descriptions(cfg))
    for step in (1, 2):
        monitor.scalars({"D/real_sign": 0.5, "loss/D": 1.0}, step)
    monitor.close()
    acc = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [e.value for e in acc.Scalars("D/real_sign")] == [0.5, 0.5]
    assert "sign(D(real) - D(fake))" in acc.SummaryMetadata("D/real_sign").summary_description
    cfg.task.loss = LossName.nonsat
    assert "E[sign(D(real))]" in descriptions(cfg)["D/real_sign"]
