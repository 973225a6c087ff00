"""task.g_draw: what G's phase trains on. R3GAN's and StyleGAN2-ADA's loops draw G's phase its own
noise (G_z) and its own real batch (G_img) beside D's (D_z, D_img); the DCGAN example reuses the
fakes D was just updated against."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import small_overrides
from gandist.ckpt import load_checkpoint
from gandist.config import absolutize, compose_config
from gandist.launchers.local import run_local
from gandist.losses import gan_loss
from gandist.train.phases import build_phases, run_step
from gandist.train.tasks import GenerateTask


def record(module: nn.Module) -> list[torch.Tensor]:
    """Every input the module sees, in order (a forward pre-hook on the real module)."""
    seen: list[torch.Tensor] = []
    module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    return seen


@pytest.mark.parametrize("g_draw", ["shared", "noise", "batch"])
def test_g_phase_draws_its_own_noise_and_real_batch_as_asked(g_draw):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 48), nn.Unflatten(1, (3, 4, 4)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(48, 1))
    G.requires_grad_(False), D.requires_grad_(False)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (G, D))
    scalers = [torch.amp.GradScaler("cpu", enabled=False) for _ in range(2)]
    task = GenerateTask(8, g_draw=g_draw)
    phases = build_phases(task, gan_loss("rpgan"), G, D, opt_g, opt_d, *scalers)
    g_in, d_in = record(G), record(D)
    d_real, g_real = torch.randn(4, 3, 4, 4), torch.randn(4, 3, 4, 4)
    run_step(phases, task, G, {"image": d_real, "g_real": {"image": g_real}, "step": 0})
    # D's phase: D(fake), D(real); G's: D(real) for the pairing, D(fake) through G.
    d_fake, d_phase_real, g_phase_real, g_fake = d_in
    assert torch.equal(d_phase_real, d_real)
    assert torch.equal(g_phase_real, g_real if g_draw == "batch" else d_real)
    assert len(g_in) == (1 if g_draw == "shared" else 2)  # a second G forward for G's own noise
    assert torch.equal(g_fake, d_fake) == (g_draw == "shared")
    if g_draw != "shared":
        assert not torch.equal(g_in[0], g_in[1])  # fresh noise


def test_a_second_real_batch_is_counted_by_the_data_cursor(shapes_url, tmp_path):
    """task.g_draw=batch reads two batches a step: the checkpoint's cursor says so, so a resume
    continues after both (test_r3gan_fit's bitwise resume runs the R3GAN preset, which uses it);
    images seen count D's batches, as R3GAN's cur_nimg."""
    cfg = absolutize(compose_config(small_overrides(shapes_url, str(tmp_path), "pairs", task="generate") + [
        "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=2", "trainer.ckpt_every=2",
        "eval.every=100", "eval.samples=16", "trainer.image_every=100", "task.g_draw=batch"]))
    state = load_checkpoint(run_local(cfg).checkpoint)["state"]
    assert (state["epoch"], state["batch_in_epoch"], state["images_seen"]) == (0, 4, 2 * cfg.data.batch_size)
