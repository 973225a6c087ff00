"""One GAN step as data: a list of phases, each training one network with its optimizer.

G runs forward once per step; the D phase sees its output detached, the G phase through D
(pix2pix order). G and D sit in separate DDP wrappers. While a phase runs, only its own
network requires grad, and the other network's DDP forward runs under ``no_sync`` so its
reducer never waits for gradients that will not come (stylegan2-ada).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandist.losses import GANLoss
from gandist.train.tasks import Batch, Task

Stats = dict[str, Tensor]


def no_sync(module: nn.Module) -> contextlib.AbstractContextManager:
    """DDP's no_sync for wrapped modules; nothing for a plain module (one process)."""
    return module.no_sync() if isinstance(module, DDP) else contextlib.nullcontext()


@dataclass
class StepVars:
    """What the phases of one step share: the batch and G's output for it."""

    batch: Batch
    fake: Tensor


@dataclass
class Phase:
    name: str
    module: nn.Module  # the (DDP-wrapped) network this phase trains
    opt: torch.optim.Optimizer
    backward: Callable[[StepVars], Stats]  # computes the losses and calls backward
    every: int = 1  # for lazy regularisation: run every k steps


def build_phases(task: Task, gan: GANLoss, G: nn.Module, D: nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> list[Phase]:
    def d_backward(v: StepVars) -> Stats:
        fake = v.fake.detach()
        with no_sync(D):  # accumulate locally; the synced backward below all-reduces the sum
            fake_logits = D(task.d_input(v.batch, fake))
            loss_fake = gan.d_fake(fake_logits)
            loss_fake.backward()
        real_logits = D(task.d_input(v.batch, task.real(v.batch)))
        loss_real = gan.d_real(real_logits)
        loss_real.backward()
        return {
            "loss/D": (loss_fake + loss_real).detach(),
            "D/real": real_logits.detach().mean(),
            "D/fake": fake_logits.detach().mean(),
        }

    def g_backward(v: StepVars) -> Stats:
        with no_sync(D):
            logits = D(task.d_input(v.batch, v.fake))
        adv = gan.g(logits)
        extra = task.extra_g_losses(v.batch, v.fake)
        total = adv + sum(extra.values())
        total.backward()
        stats = {"loss/G": total.detach(), "loss/G_adv": adv.detach()}
        stats.update({f"loss/G_{k}": val.detach() for k, val in extra.items()})
        return stats

    return [Phase("D", D, opt_d, d_backward), Phase("G", G, opt_g, g_backward)]


def run_step(phases: list[Phase], task: Task, G: nn.Module, batch: Batch, step: int) -> Stats:
    """One GAN step: G forward once, then each due phase in order."""
    G.requires_grad_(True)
    fake = task.fake(G, task.g_input(batch))
    G.requires_grad_(False)  # the graph is built; phases switch their own module back on
    v = StepVars(batch=batch, fake=fake)
    stats: Stats = {}
    for ph in phases:
        if step % ph.every:
            continue
        ph.module.requires_grad_(True)
        ph.opt.zero_grad(set_to_none=True)
        stats.update(ph.backward(v))
        ph.opt.step()
        ph.module.requires_grad_(False)
    return stats
