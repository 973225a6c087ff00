"""Every segmentation loss, D input and D architecture trains, checkpoints, samples and evaluates."""

import json

import pytest
import torch

from helpers import small_overrides
from gandist.ckpt import load_checkpoint
from gandist.cli import main
from gandist.config import absolutize, compose_config
from gandist.launchers.local import run_local


# D's input channels for the 4 classes of builtin shapes: the class maps (x 3 for the product
# with the image), plus the image's 3 when D sees it.
@pytest.mark.parametrize("task, options, d_channels", [
    ("segment", ["task.seg_loss=ce_dice", "task.d_input=scaling", "task.d_image=false", "model.d_arch=pixel",
                 "data.flips=both", "data.crop_scale=0.75"], 4),
    ("segment_pix2pix", ["task.d_input=product"], 3 + 4 * 3),
], ids=["ce_dice-scaling-pixel-augmented", "pix2pix-l1-product"])
def test_each_recipe_option_trains_checkpoints_samples_and_evaluates(task, options, d_channels, shapes_url, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "recipe", task=task) + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2", *options]))
    summary = run_local(cfg)
    assert summary.step == 2 and 0 <= summary.metrics["eval/miou"] <= 1
    run = tmp_path / "recipe"
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert {"loss/G_seg", "loss/G_adv", "loss/D"} <= set(acc.Tags()["scalars"])

    state = load_checkpoint(summary.checkpoint)["state"]
    first_d_weight = next(v for k, v in state["D"].items() if k.endswith("weight"))
    assert first_d_weight.shape[1] == d_channels

    assert main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["evaluate", str(run)]) == 0
    scores = json.loads((run / "eval_recipe_step2.json").read_text())["scores"]
    assert scores["eval/miou"] == pytest.approx(summary.metrics["eval/miou"], rel=1e-6)
