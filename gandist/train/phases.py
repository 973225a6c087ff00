"""One GAN step as data: a list of phases, each training one network with its optimizer.

G runs forward once per step; the D phase sees its output detached, the G phase through D
(pix2pix order). G and D sit in separate DDP wrappers. While a phase runs, only its own
network requires grad, and the other network's DDP forward runs under ``no_sync`` so its
reducer never waits for gradients that will not come (stylegan2-ada).

Mixed precision: forwards run under the step's autocast; each network has its own grad
scaler (a no-op when fp16 is off). After each phase's backward every rank checks its loss
and the (synced) gradient norm, and all ranks agree to skip the optimizer step together
if any rank saw a non-finite value, so the replicas never diverge from one another.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandist.losses import GANLoss
from gandist.collectives import all_reduce_sum
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
    scaler: torch.amp.GradScaler
    backward: Callable[[StepVars], Stats]  # computes the losses and calls backward; "loss/<name>" is the total
    # Listed once: walking a U-Net's module tree for them costs more than using them, every step.
    params: list[Tensor] = field(init=False)
    buffers: list[Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.params = list(self.module.parameters())
        self.buffers = list(self.module.buffers())


@dataclass
class StepResult:
    stats: Stats
    skipped: dict[str, list[int]]  # phase name -> ranks that saw a non-finite loss or gradient
    overflowed: list[str] = field(default_factory=list)  # fp16 phases whose step the grad scaler skipped


def autocast(device: torch.device, amp: str) -> Callable[[], contextlib.AbstractContextManager]:
    """The forward context for trainer.amp: off | bf16 | fp16."""
    if amp == "off":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def build_phases(task: Task, gan: GANLoss, G: nn.Module, D: nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 scaler_g: torch.amp.GradScaler, scaler_d: torch.amp.GradScaler,
                 amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext) -> list[Phase]:
    def d_backward(v: StepVars) -> Stats:
        # Two forwards, one backward (as pix2pix does). DDP prepares its reducer in forward
        # and refuses a second prepared forward before a backward: the first runs under
        # no_sync, and the one backward of the sum still all-reduces every gradient once.
        with no_sync(D), amp():
            fake_logits = D(task.d_input(v.batch, v.fake.detach()))
            loss_fake = gan.d_fake(fake_logits.float())
        with amp():
            real_logits = D(task.d_input(v.batch, task.real(v.batch)))
            loss_real = gan.d_real(real_logits.float())
        scaler_d.scale(loss_fake + loss_real).backward()
        return {
            "loss/D": (loss_fake + loss_real).detach(),
            "loss/D_real": loss_real.detach(),
            "loss/D_fake": loss_fake.detach(),
            "D/real": real_logits.detach().float().mean(),
            "D/fake": fake_logits.detach().float().mean(),
        }

    def g_backward(v: StepVars) -> Stats:
        with no_sync(D):
            with amp():
                logits = D(task.d_input(v.batch, v.fake))
                adv = gan.g(logits.float())
                extra = task.extra_g_losses(v.batch, v.fake)
                total = adv + sum(extra.values())
            scaler_g.scale(total).backward()
        stats = {"loss/G": total.detach(), "loss/G_adv": adv.detach()}
        stats.update({f"loss/G_{k}": val.detach() for k, val in extra.items()})
        return stats

    return [Phase("D", D, opt_d, scaler_d, d_backward), Phase("G", G, opt_g, scaler_g, g_backward)]


def set_requires_grad(params: list[Tensor], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def grad_norm(params: list[Tensor]) -> Tensor:
    """The L2 norm of all of a network's gradients (already synced by DDP)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


def agree_on_bad(bad: Tensor, overflow: Tensor, rank: int, world_size: int) -> tuple[list[int], bool]:
    """Every rank learns which ranks saw a non-finite value, and whether the fp16 gradients
    overflowed anywhere; all then act alike. One all-reduce, one host sync."""
    flags = torch.zeros(world_size, 2, device=bad.device)
    flags[rank, 0], flags[rank, 1] = bad.float(), overflow.float()
    all_reduce_sum(flags)
    rows = flags.tolist()
    return [r for r, (flag, _) in enumerate(rows) if flag], any(o for _, o in rows)


def run_step(phases: list[Phase], task: Task, G: nn.Module, batch: Batch,
             amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             rank: int = 0, world_size: int = 1) -> StepResult:
    """One GAN step: G forward once, then each phase in order."""
    # Forwards update BatchNorm statistics; a skipped step puts them back (they are small).
    buffers = [b for ph in {id(ph.module): ph for ph in phases}.values() for b in ph.buffers]
    saved = [b.detach().clone() for b in buffers]
    g_params = next(ph.params for ph in phases if ph.module is G)
    set_requires_grad(g_params, True)
    with amp():
        fake = task.fake(G, task.g_input(batch))
    set_requires_grad(g_params, False)  # the graph is built; phases switch their own module back on
    v = StepVars(batch=batch, fake=fake)
    stats: Stats = {}
    skipped: dict[str, list[int]] = {}
    overflowed: list[str] = []
    for ph in phases:
        set_requires_grad(ph.params, True)
        ph.opt.zero_grad(set_to_none=True)
        stats.update(ph.backward(v))
        ph.scaler.unscale_(ph.opt)
        norm = grad_norm(ph.params).to(fake.device)
        # fp16 gradient overflow (finite loss) is the grad scaler's to handle: it skips the
        # step and lowers the scale; the step is counted, its infinite norm is not logged. A
        # non-finite loss, or non-finite gradients without a scaler, is divergence.
        finite_loss, finite_grads = torch.isfinite(stats[f"loss/{ph.name}"]), torch.isfinite(norm)
        scaled = ph.scaler.is_enabled()
        bad = ~finite_loss if scaled else ~(finite_loss & finite_grads)
        bad_ranks, overflow = agree_on_bad(bad, finite_loss & ~finite_grads & scaled, rank, world_size)
        if bad_ranks:
            skipped[ph.name] = bad_ranks
            ph.opt.zero_grad(set_to_none=True)
        else:
            ph.scaler.step(ph.opt)
        ph.scaler.update()
        set_requires_grad(ph.params, False)
        if overflow and not bad_ranks:
            overflowed.append(ph.name)
        else:
            stats[f"grad/{ph.name}_norm"] = norm
    if skipped:
        with torch.no_grad():
            for buffer, value in zip(buffers, saved):
                buffer.copy_(value)
    return StepResult(stats, skipped, overflowed)
