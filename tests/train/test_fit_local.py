"""fit() in one plain process: it learns, checkpoints, and resumes at the right step."""

from __future__ import annotations

import os

import torch

from helpers import local_cfg, run_logged, small_overrides
from gandist.config import absolutize, compose_config
from gandist.ckpt import find_latest_checkpoint, read_meta
from gandist.data.loader import epoch_loader
from gandist.launchers.local import run_local
from gandist.train.state import TrainState
from gandist.losses import gan_loss
from gandist.train.tasks import SegmentTask


@torch.no_grad()
def ce_on(G: torch.nn.Module, batch: dict, task: SegmentTask) -> float:
    torch.manual_seed(0)  # same dropout masks for both measurements
    terms, _ = task.g_losses(batch, task.fake(G.train(), batch["image"]), None, gan_loss("nonsat"))
    return terms["seg"][1].item()


def test_one_process_fit_lowers_cross_entropy_on_a_fixed_batch(shapes_url, tmp_path):
    # lr 1e-3 and 40 steps: enough for a clear drop in a few seconds on a CPU.
    cfg = local_cfg(shapes_url, tmp_path, "learns", "trainer.max_steps=40", "trainer.ckpt_every=40",
                    "trainer.lr_g=1e-3", "trainer.log_every=10", "trainer.image_every=40",
                    "eval.every=40")
    batch = next(iter(epoch_loader(shapes_url, split="train", batch_size=16, rank=0, world_size=1,
                                   num_workers=0, epoch=0, seed=0, shuffle=False)))
    task = SegmentTask(num_classes=4, seg_loss="ce", seg_weight=1.0)
    before = ce_on(TrainState.fresh(cfg, 4, torch.device("cpu")).G, batch, task)
    summary = run_local(cfg)
    assert summary.step == 40
    from gandist.ckpt import load_checkpoint
    trained = TrainState.fresh(cfg, 4, torch.device("cpu"))
    trained.load_state_dict(load_checkpoint(summary.checkpoint)["state"])
    after = ce_on(trained.G, batch, task)
    assert after < 0.8 * before, (before, after)


def test_local_run_checkpoints_and_resumes_at_the_right_step(shapes_url, tmp_path):
    cfg = local_cfg(shapes_url, tmp_path, "resume", "trainer.max_steps=4", "trainer.ckpt_every=2",
                    "trainer.keep_checkpoints=1")
    first = run_local(cfg)
    run_dir = tmp_path / "resume"
    assert sorted(p for p in os.listdir(run_dir) if p.startswith("checkpoint_")) == ["checkpoint_00000004"]
    assert read_meta(first.checkpoint)["step"] == 4

    cfg.trainer.max_steps = 6
    second, messages = run_logged(cfg)
    assert any(m.startswith("Resumed from checkpoint at step 4") for m in messages), messages
    assert second.step == 6
    assert read_meta(find_latest_checkpoint(str(run_dir)))["step"] == 6
    # An interrupted write (no meta.json) is never picked up as the latest checkpoint.
    (run_dir / "checkpoint_00000099").mkdir()
    (run_dir / "checkpoint_00000099" / "state.pt").write_bytes(b"partial")
    assert find_latest_checkpoint(str(run_dir)).endswith("checkpoint_00000006")


def test_generate_task_trains_and_writes_sample_grids(shapes_url, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "gen", task="generate") + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=3", "trainer.ckpt_every=3"]))
    assert cfg.model.arch == "dcgan"
    summary = run_local(cfg)
    assert summary.step == 3 and "eval/miou" not in summary.metrics
    acc = EventAccumulator(str(tmp_path / "gen" / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    assert {"loss/D", "loss/G", "D/real", "D/fake"} <= set(acc.Tags()["scalars"])
    grids = acc.Images("samples")
    assert [g.step for g in grids] == [2, 3]
    assert (grids[0].width, grids[0].height) == (8 * 34 + 2, 8 * 34 + 2)  # 8x8 grid of 32 px samples
    assert sorted(p.name for p in (tmp_path / "gen" / "samples").iterdir()) == [
        "samples_00000002.png", "samples_00000003.png"]


def test_resume_with_another_batch_size_splits_the_rest_of_the_epoch(shapes_url, tmp_path):
    from gandist.ckpt import load_checkpoint

    cfg = local_cfg(shapes_url, tmp_path, "relayout", "trainer.max_steps=3", "trainer.ckpt_every=3")
    run_local(cfg)  # 3 of the 8 batches of 8 in epoch 0
    cfg.data.batch_size, cfg.trainer.max_steps = 4, 5
    summary, messages = run_logged(cfg)
    assert any(m.startswith("Data layout changed") for m in messages), messages
    state = load_checkpoint(summary.checkpoint)["state"]
    assert state["epoch"] == 0 and state["batch_in_epoch"] == 2
    assert state["data_history"] == [{"world_size": 1, "batch_size": 8, "num_workers": 0, "batches": 3}]
    assert state["data_layout"] == {"world_size": 1, "batch_size": 4, "num_workers": 0}


def test_a_conditional_dcgan_logs_one_grid_row_per_class_and_exports_a_conditional_g(shapes_url, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from gandist.inference.export import export_generator, load_generator

    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "cond", task="generate") + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2",
        "model.conditional=true"]))
    summary = run_local(cfg)
    assert summary.step == 2 and "eval/fd_randconv" in summary.metrics
    acc = EventAccumulator(str(tmp_path / "cond" / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    last = acc.Images("samples")[-1]
    assert last.height == 3 * 34 + 2 and last.width > 8 * 34 + 2  # circle, square, triangle rows, named
    export_generator(summary.checkpoint, str(tmp_path / "g.pt"))
    G, exported = load_generator(str(tmp_path / "g.pt"))
    assert exported["classes"] == ["circle", "square", "triangle"]
    z = torch.randn(2, cfg.model.z_dim)
    with torch.no_grad():
        a, b = G(z, torch.tensor([0, 0])), G(z, torch.tensor([2, 2]))
    assert a.shape == (2, 3, 32, 32) and not torch.equal(a, b)


def test_the_training_loop_reads_on_one_screen():
    """issue 36: train() holds the loop, the collaborators built elsewhere (train/run.py)."""
    import ast
    import inspect

    from gandist.train import loop

    node = ast.parse(inspect.getsource(loop)).body
    train = next(n for n in node if isinstance(n, ast.FunctionDef) and n.name == "train")
    assert train.end_lineno - train.lineno + 1 <= 60
