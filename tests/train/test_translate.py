"""task=translate through the whole loop in one process: L1 + the adversarial term on (A, B)
pairs, evaluation on held-out pairs (with a gandist segmenter's score), grids, an exact resume,
and what the CLI does with the run (sample a folder, evaluate, export)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from PIL import Image

from helpers import small_overrides
from gandist.cli import main
from gandist.ckpt import load_checkpoint, read_meta
from gandist.config import ConfigError, absolutize, compose_config
from gandist.launchers.local import run_local
from gandist.losses import gan_loss
from gandist.models.factory import build_networks
from gandist.train.tasks import TranslateTask

PAIR_SCORES = ("eval/l1", "eval/psnr", "eval/ssim", "eval/fd_randconv", "eval/kd_randconv")


def translate_cfg(data_url: str, storage, name: str, *extra: str):
    return absolutize(compose_config(small_overrides(data_url, str(storage), name, task="translate") + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=4", "trainer.ckpt_every=2",
        "trainer.keep_checkpoints=2", "eval.every=2", "eval.batches=1", *extra]))


def test_the_task_feeds_d_pairs_and_weighs_l1_against_the_true_b():
    task = TranslateTask(l1_weight=100.0, adv_weight=1.0)
    image, target = torch.zeros(2, 3, 8, 8), torch.ones(2, 3, 8, 8)
    fake = torch.full((2, 3, 8, 8), 0.5)
    batch = {"image": image, "target": target}
    assert torch.equal(task.d_real(batch, fake), torch.cat([image, target], 1))
    assert torch.equal(task.d_fake(batch, fake), torch.cat([image, fake], 1))
    terms, _ = task.g_losses(batch, fake, torch.zeros(2, 1, 2, 2), gan_loss("nonsat"))
    assert terms["l1"][0] == 100.0 and terms["l1"][1].item() == pytest.approx(0.5)
    assert terms["adv"][1].item() == pytest.approx(math.log(2))
    terms, _ = TranslateTask(l1_weight=100.0, adv_weight=0.0).g_losses(batch, fake, None, gan_loss("nonsat"))
    assert set(terms) == {"l1"}  # the L1-only baseline: no D


@pytest.mark.parametrize("arch", ["pix2pix", "unet"])
def test_g_draws_images_of_b_channels_and_d_sees_a_and_b(arch):
    cfg = compose_config(["task=translate", f"model={arch}", "model.resolution=32", "model.g_width=8",
                          "model.d_width=8"])
    G, D = build_networks(cfg, 1)  # greyscale B: one band
    out = G(torch.randn(2, 3, 32, 32) * 10)
    assert out.shape == (2, 1, 32, 32) and out.abs().max() <= 1  # tanh: B in [-1, 1]
    assert D(torch.cat([torch.zeros(2, 3, 32, 32), out], 1)).dim() == 4


def test_translate_trains_evaluates_resumes_bitwise_and_the_cli_uses_the_run(
        shapes_url, shapes_pairs_url, tmp_path, capsys):
    """4 steps straight against the step-2 checkpoint copied to a new run and resumed to step
    4: every weight and both optimizers' moments identical. The evaluation scores the held-out
    pairs and, with eval.segmenter (a 2-step segment run on the same shapes' photos), its mIoU
    on the generated photos. Then sample (grid; a folder in, a folder out), evaluate, export."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gandist.inference.export import export_generator, load_generator

    segmenter = run_local(absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "seg") + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2"])))
    extra = [f"eval.segmenter={segmenter.run_dir}", "data.flips=horizontal", "data.crop_scale=0.8"]
    straight = run_local(translate_cfg(shapes_pairs_url, tmp_path, "straight", *extra))
    m = straight.metrics
    assert straight.step == 4 and all(tag in m for tag in PAIR_SCORES)
    assert 0 < m["eval/l1"] < 1 and 0 < m["eval/psnr"] < 60 and -1 <= m["eval/ssim"] <= 1
    assert 0 <= m["eval/seg_miou"] <= 1 and 0 <= m["eval/seg_miou_real"] <= 1
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "straight" / "checkpoint_00000002", tmp_path / "resumed" / "checkpoint_00000002")
    resumed = run_local(translate_cfg(shapes_pairs_url, tmp_path, "resumed", *extra))
    assert read_meta(resumed.checkpoint)["resumed_from"] == 2
    a, b = load_checkpoint(straight.checkpoint), load_checkpoint(resumed.checkpoint)
    assert a["classes"] == ["R", "G", "B"]
    for net in ("G", "D", "G_ema"):
        for key, tensor in a["state"][net].items():
            assert torch.equal(tensor, b["state"][net][key]), f"{net}.{key} differs"
    for opt in ("opt_g", "opt_d"):
        for i, moments in a["state"][opt]["state"].items():
            assert torch.equal(moments["exp_avg_sq"], b["state"][opt]["state"][i]["exp_avg_sq"])
    assert b["state"]["D"]["net.0.weight"].shape[1] == 6  # D judges (A, B): 3 + 3 channels

    acc = EventAccumulator(str(tmp_path / "straight" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    for tag in ("loss/G_l1", "loss/G_adv", "loss/D", *PAIR_SCORES, "eval/seg_miou"):
        assert tag in acc.Tags()["scalars"], tag
    grid = acc.Images("samples")[-1]
    assert grid.width == 3 * 34 + 2 and grid.height == 8 * 34 + 2  # A | true B | generated B, 8 rows

    run = str(tmp_path / "straight")
    assert main(["sample", run, "--out", str(tmp_path / "grid.png"), "--n", "4"]) == 0
    assert Image.open(tmp_path / "grid.png").size == (3 * 34 + 2, 4 * 34 + 2)
    (tmp_path / "a" / "sub").mkdir(parents=True)
    for name in ("x.png", "sub/y.jpg"):
        Image.new("RGB", (50, 40), (230, 25, 75)).save(tmp_path / "a" / name)
    assert main(["sample", run, "--data", str(tmp_path / "a"), "--out", str(tmp_path / "b")]) == 0
    written = sorted(p.relative_to(tmp_path / "b").as_posix() for p in (tmp_path / "b").rglob("*.png"))
    assert written == ["sub/y.png", "x.png"]
    assert Image.open(tmp_path / "b" / "x.png").size == (32, 32) and Image.open(tmp_path / "b" / "x.png").mode == "RGB"
    assert main(["sample", run, "--data", str(tmp_path / "a"), "--out", str(tmp_path / "b.png")]) == 2
    assert "--out must be a folder" in capsys.readouterr().err

    assert main(["evaluate", run, "eval.batches=0", "--json", str(tmp_path / "scores.json")]) == 0
    out = capsys.readouterr().out
    assert "eval/ssim" in out and "eval/seg_miou" in out and (tmp_path / "scores.json").exists()
    # FID/KID of the outputs, where the Inception weights are given (here untrained ones, in the file's format).
    from gandist.metrics.inception import FIDInceptionV3

    weights = tmp_path / "inception.pth"
    with torch.random.fork_rng(devices=[]):
        torch.save(FIDInceptionV3().state_dict(), weights)
    assert main(["evaluate", run, "eval.features=inception", f"eval.inception_weights={weights}", "eval.segmenter=null",
                 "--json", str(tmp_path / "fid.json")]) == 0
    scores = json.loads((tmp_path / "fid.json").read_text())["scores"]
    assert scores["eval/fid"] > 0 and scores["eval/kid"] is not None and "eval/fd_randconv" not in scores
    capsys.readouterr()

    export_generator(straight.checkpoint, str(tmp_path / "g.pt"))
    G, exported = load_generator(str(tmp_path / "g.pt"))
    with torch.no_grad():
        assert G(torch.zeros(2, 3, 32, 32)).shape == (2, 3, 32, 32)


def test_the_l1_only_baseline_trains_no_d(shapes_pairs_url, tmp_path):
    summary = run_local(translate_cfg(shapes_pairs_url, tmp_path, "l1", "task.adv_weight=0", "trainer.max_steps=2"))
    assert "loss/G_l1" in summary.metrics and "loss/D" not in summary.metrics
    state = load_checkpoint(summary.checkpoint)["state"]
    assert state["opt_d"]["state"] == {}  # D never stepped


def test_the_relativistic_loss_and_penalties_pair_each_real_pair_with_its_generated_pair(shapes_pairs_url, tmp_path):
    summary = run_local(translate_cfg(shapes_pairs_url, tmp_path, "rp", "task.loss=rpgan", "task.gamma=0.1",
                                      "model=unet", "trainer.max_steps=2"))
    m = summary.metrics
    assert m["loss/D_r1"] > 0 and m["loss/D_r2"] > 0 and math.isfinite(m["loss/G_adv"])


@pytest.mark.parametrize("task, needle", [
    ("translate", "task=translate needs image pairs"),
    ("segment", "use task=translate on it"),
    ("generate", "was written for task=translate"),
])
def test_a_shard_set_that_does_not_fit_the_task_is_refused_with_the_fix(shapes_url, shapes_pairs_url, tmp_path,
                                                                        task, needle):
    from gandist.data.checks import check_data_fits
    from gandist.data.manifest import Manifest

    url = shapes_url if task == "translate" else shapes_pairs_url
    cfg = absolutize(compose_config(small_overrides(url, str(tmp_path), "x", task=task)))
    with pytest.raises(ConfigError, match=needle):
        check_data_fits(cfg, Manifest.load(url))


@pytest.mark.parametrize("overrides, needle", [
    (["task=translate", "task.l1_weight=0", "task.adv_weight=0"], "leave G nothing to learn from"),
    (["task=translate", "model=dcgan"], "use model=pix2pix or model=unet"),
    (["task=segment", "task.l1_weight=50"], "segment's L1 loss is task.seg_loss=l1 with task.seg_weight"),
    (["task=generate", "eval.segmenter=/x"], "set eval.segmenter=null"),
    (["task=translate", "trainer.best_metric=eval/seg_miou"], "needs eval.segmenter"),
    (["task=translate", "trainer.best_metric=eval/miou"], "scores task=segment"),
    (["task=generate", "trainer.best_metric=eval/ssim"], "scores task=translate"),
    (["task=translate", "trainer.best_metric=eval/precision_randconv"], "is a generation score"),
])
def test_translate_rules_between_keys(overrides, needle):
    with pytest.raises(ConfigError, match=needle):
        compose_config(overrides)
    cfg = compose_config(["task=translate", "task.loss=rpgan", "trainer.best_metric=eval/ssim"])
    assert (cfg.model.arch, cfg.task.l1_weight, cfg.task.adv_weight) == ("pix2pix", 100.0, 1.0)


@pytest.mark.parametrize("task", ["segment", "translate", "segment_pix2pix"])
def test_a_config_rebuilt_from_its_dict_is_the_same(task):
    """Workers and checkpoints rebuild the config from its dict: segment's task.seg_weight and
    translate's task.l1_weight each stay what they were (an old segment config's l1_weight
    is its seg_weight, see test_config)."""
    from gandist.config import from_dict

    cfg = compose_config([f"task={task}"])
    assert from_dict(cfg.to_dict()) == cfg


def test_translate_scores_rank_checkpoints_the_right_way_round():
    from gandist.config.scores import best_metric, score_order

    assert [score_order(t) for t in ("eval/l1", "eval/psnr", "eval/ssim", "eval/seg_miou")] == ["min", "max", "max",
                                                                                                "max"]
    with pytest.raises(ValueError, match="not an evaluation score"):
        score_order("eval/seg_miou_real")  # the segmenter's ceiling, not the model's quality
    assert best_metric(compose_config(["task=translate"])) == ("eval/fd_randconv", "min")
