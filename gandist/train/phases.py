"""One GAN step as data: a list of phases, each training one network with its optimizer.

G runs forward once per step; the D phase sees its output detached, the G phase through D.
D's phase comes first (pix2pix order), or with ``g_first`` second, so that G's losses read D
from before its update in the step (Hung et al.'s semi-supervised segmentation); with
task.g_draw, G's phase draws its own fakes after D's update (StyleGAN2-ADA). A task
whose adversarial weight is 0 (the supervised baseline) has the G phase only. G and D sit
in separate DDP wrappers. While a phase runs, only its own network requires grad, and the
other network's DDP forward runs under ``no_sync`` so its reducer never waits for gradients
that will not come (stylegan2-ada).

Mixed precision: forwards run under the step's autocast; each network has its own grad
scaler (a no-op when fp16 is off).

Non-finite values: a rank's non-finite loss poisons its gradients (``guard``), so DDP's
gradient all-reduce carries it to every rank; each phase then skips its optimizer step on
every rank alike from the synced gradients, on the device. One small all-reduce and one
host sync per step then tell the host what happened, for the log and the divergence count.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandist.losses import GANLoss, gradient_penalty
from gandist.collectives import all_reduce_sum
from gandist.train.diffaugment import overfit_sign
from gandist.train.stats import Value
from gandist.train.tasks import Batch, GenerateTask, Task

Stats = dict[str, Value]


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
    losses: Callable[[StepVars], tuple[Tensor, Stats]]  # the loss to backpropagate, and the stats to log
    # Listed once: walking a U-Net's module tree for them costs more than using them, every step.
    params: list[Tensor] = field(init=False)
    buffers: list[Tensor] = field(init=False)
    backup: list[Tensor] = field(init=False)  # the buffers as they were before the step (run_step)

    def __post_init__(self) -> None:
        self.params = list(self.module.parameters())
        self.buffers = list(self.module.buffers())
        self.backup = [b.detach().clone() for b in self.buffers]


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


@dataclass(frozen=True)
class Penalty:
    """Zero-centred gradient penalties on D: (gamma / 2) x (R1 on reals [+ R2 on fakes]), applied
    every ``every`` steps at ``every`` x the weight (lazy regularization, StyleGAN2)."""

    gamma: Callable[[int], float]  # the weight at a step (R3GAN decays it)
    every: int = 1
    r2: bool = True

    def due(self, step: int) -> bool:
        return step % self.every == 0 and self.gamma(step) > 0


def penalty_inputs(task: Task, batch: Batch, fake: Tensor, r2: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """D's inputs for the fakes and the reals, and what R2 and R1 differentiate D by. generate:
    the raw images before task.augment, as both references do (the gradient of D(aug(x)) by the
    un-augmented x); the other tasks: D's inputs themselves."""
    if isinstance(task, GenerateTask):
        real_x = batch["image"].detach().requires_grad_(True)
        fake_x = fake.detach().requires_grad_(r2)
        return task.d_fake(batch, fake_x), task.d_real({**batch, "image": real_x}, fake_x), fake_x, real_x
    fake_in, real_in = task.d_fake(batch, fake), task.d_real(batch, fake)
    real_in = real_in.detach().requires_grad_(True)
    if r2:
        fake_in = fake_in.detach().requires_grad_(True)
    return fake_in, real_in, fake_in, real_in


def build_phases(task: Task, gan: GANLoss, G: nn.Module, D: nn.Module,
                 opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                 scaler_g: torch.amp.GradScaler, scaler_d: torch.amp.GradScaler,
                 amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 penalty: Optional[Penalty] = None, g_first: bool = False) -> list[Phase]:
    def d_losses(v: StepVars) -> tuple[Tensor, Stats]:
        # Two forwards, one backward (as pix2pix does). DDP prepares its reducer in forward
        # and refuses a second prepared forward before a backward: the first runs under
        # no_sync, and the one backward of the sum still all-reduces every gradient once.
        # The penalties differentiate the logits by D's inputs inside that graph (double
        # backward); they compute no parameter gradients of their own, so DDP sees one backward.
        penalize = penalty is not None and penalty.due(v.batch["step"])
        fake = task.d_learns_from(v.batch, v.fake.detach())
        if penalize:
            fake_in, real_in, fake_x, real_x = penalty_inputs(task, v.batch, fake, penalty.r2)
        else:
            fake_in, real_in = task.d_fake(v.batch, fake), task.d_real(v.batch, fake)
        d_args = task.d_args(v.batch)
        with no_sync(D), amp():
            fake_logits = D(fake_in, *d_args)
        with amp():
            real_logits = D(real_in, *d_args)
        total, stats = gan.d(real_logits.float(), fake_logits.float())
        stats = {"loss/D": total.detach(), **stats}
        if penalize:
            scale = scaler_d.scale(torch.ones((), device=real_logits.device)) if scaler_d.is_enabled() else None
            r1 = gradient_penalty(real_logits, real_x, scale)
            reg = r1
            stats["loss/D_r1"] = r1.detach()
            if penalty.r2:
                r2 = gradient_penalty(fake_logits, fake_x, scale)
                reg = reg + r2
                stats["loss/D_r2"] = r2.detach()
            total = total + (penalty.gamma(v.batch["step"]) / 2) * penalty.every * reg
        stats.update({"D/real": real_logits.detach().float().mean(), "D/fake": fake_logits.detach().float().mean(),
                      "D/real_sign": overfit_sign(real_logits.detach().float(), fake_logits.detach().float(),
                                                  gan.relativistic)})
        return total, stats

    def g_losses(v: StepVars) -> tuple[Tensor, Stats]:
        with amp():
            d_logits = real_logits = None
            if task.adv_weight > 0:
                with no_sync(D):
                    if gan.relativistic:  # G's loss pairs D(fake) with D(real); nothing to learn through D(real)
                        with torch.no_grad():
                            real_logits = D(task.d_real(v.batch, v.fake.detach()), *task.d_args(v.batch)).float()
                    d_logits = D(task.d_fake(v.batch, v.fake), *task.d_args(v.batch)).float()
            terms, extra = task.g_losses(v.batch, v.fake, d_logits, gan, real_logits)
            total = torch.zeros((), device=v.fake.device)
            for weight, value in terms.values():
                total = total + weight * value
        stats: Stats = dict(extra)
        stats["loss/G"] = total.detach()
        # Unweighted, so a term reads the same whatever its weight.
        stats.update({f"loss/G_{name}": value.detach() for name, (_, value) in terms.items()})
        return total, stats

    g_phase = Phase("G", G, opt_g, scaler_g, g_losses)
    if task.adv_weight == 0:
        return [g_phase]  # the supervised baseline: D is neither run nor trained
    d_phase = Phase("D", D, opt_d, scaler_d, d_losses)
    return [g_phase, d_phase] if g_first else [d_phase, g_phase]


def set_requires_grad(params: list[Tensor], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


def grad_norm(params: list[Tensor]) -> Tensor:
    """The L2 norm of all of a network's gradients (already synced by DDP); not finite when
    any gradient is not."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    if grads[0].device.type == "cpu" and all(g.dtype == torch.float32 for g in grads):
        # On a CPU, BLAS's dot reads each gradient once at nearly memory speed: 1.3 ms against
        # 2.4 ms for _foreach_norm over the demo U-Net's 7.3M gradients out of cache (as they
        # are after backward), and nearer the float64 norm (1e-7 against 1e-5 relative). On a
        # GPU, _foreach_norm is one fused kernel.
        return torch.stack([torch.dot(g.reshape(-1), g.reshape(-1)) for g in grads]).sum().sqrt()
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)).float())


def guard(loss: Tensor) -> Tensor:
    """``loss`` unchanged when finite, else NaN with NaN gradients: a rank's non-finite loss
    then reaches every rank through DDP's own gradient all-reduce, and every rank skips the
    step without a collective or host sync of its own."""
    poison = torch.where(torch.isfinite(loss), 1.0, float("nan")).to(loss.dtype).detach()
    return loss * poison


def optimizer_step(ph: Phase, finite_grads: Tensor) -> None:
    """Step ``ph``'s optimizer unless its (synced, so rank-identical) gradients are not
    finite. Fused Adam skips on the device (``found_inf``, the grad scaler's own contract
    with it, step counts included), so the CPU keeps queueing work; other optimizers need
    the answer on the host."""
    if ph.scaler.is_enabled():
        ph.scaler.step(ph.opt)  # the scaler found the same non-finite gradients in unscale_
    elif ph.opt.defaults.get("fused"):
        ph.opt.found_inf = (~finite_grads).float()  # type: ignore[attr-defined]
        try:
            ph.opt.step()
        finally:
            del ph.opt.found_inf  # type: ignore[attr-defined]
    elif finite_grads.item():
        ph.opt.step()


def agree_on_step(bad: Tensor, rank: int, world_size: int) -> tuple[list[list[bool]], list[bool]]:
    """Per phase, which ranks saw a non-finite loss, and whether the (synced) gradients were
    not finite, from this rank's ``bad`` [2, phases] (non-finite loss, non-finite gradients):
    one all-reduce and one host sync for the whole step. Returns, on the host, [rank][phase]
    and [phase]."""
    flags = torch.zeros(world_size, *bad.shape, device=bad.device)
    flags[rank] = bad
    all_reduce_sum(flags)
    rows = flags.tolist()  # the host sync
    loss_bad = [[v > 0 for v in loss] for loss, _ in rows]
    return loss_bad, [any(v > 0 for v in ranks) for ranks in zip(*(grads for _, grads in rows))]


def run_step(phases: list[Phase], task: Task, G: nn.Module, batch: Batch,
             amp: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
             rank: int = 0, world_size: int = 1) -> StepResult:
    """One GAN step: G forward once (twice with task.g_draw), then each phase in order.

    A phase whose gradients are not finite does not step, on any rank (D's skip is decided
    on the device before G's phase runs through D). Why it skipped is learned once, at the
    end: a non-finite loss on some rank is divergence; non-finite fp16 gradients from a finite
    loss are the grad scaler's overflow (it lowers the scale): counted, their norm not logged.
    """
    # Forwards update BatchNorm statistics; a diverged step puts them back (they are small):
    # each network's copied into the backup its phase keeps, in one call.
    owners = [ph for ph in {id(ph.module): ph for ph in phases}.values() if ph.buffers]
    for ph in owners:
        torch._foreach_copy_(ph.backup, ph.buffers)
    g_params = next(ph.params for ph in phases if ph.module is G)
    g_batch = task.g_batch(batch)  # None: G's phase trains on these fakes; else it draws its own

    def draw(b: Batch, grad: bool) -> StepVars:
        set_requires_grad(g_params, grad)
        with amp(), torch.set_grad_enabled(grad):
            out = task.fake(G, task.g_input(b))
        set_requires_grad(g_params, False)  # the graph is built; phases switch their own module back on
        return StepVars(batch=b, fake=out)

    v = draw(batch, grad=g_batch is None)
    fake = v.fake
    stats: Stats = {}
    loss_bad, grads_bad, norms = [], [], []
    for ph in phases:
        if g_batch is not None and ph.module is G:
            v = draw(g_batch, grad=True)  # after D's update, as StyleGAN2-ADA and R3GAN
        set_requires_grad(ph.params, True)
        ph.opt.zero_grad(set_to_none=True)
        loss, phase_stats = ph.losses(v)
        ph.scaler.scale(guard(loss)).backward()
        stats.update(phase_stats)
        ph.scaler.unscale_(ph.opt)
        norm = grad_norm(ph.params).to(fake.device)
        finite_grads = torch.isfinite(norm)
        optimizer_step(ph, finite_grads)
        ph.scaler.update()
        set_requires_grad(ph.params, False)
        loss_bad.append(~torch.isfinite(loss.detach()))
        grads_bad.append(~finite_grads)
        norms.append(norm)

    bad, not_finite = agree_on_step(torch.stack(loss_bad + grads_bad).view(2, len(phases)), rank, world_size)
    skipped: dict[str, list[int]] = {}
    overflowed: list[str] = []
    for i, ph in enumerate(phases):
        ranks = [r for r in range(world_size) if bad[r][i]]
        if not_finite[i] and not ph.scaler.is_enabled():
            ranks = list(range(world_size))  # without a scaler, non-finite gradients are divergence
        if ranks:
            skipped[ph.name] = ranks
        elif not_finite[i]:
            overflowed.append(ph.name)
            continue
        stats[f"grad/{ph.name}_norm"] = norms[i]
    if skipped:
        with torch.no_grad():
            for ph in owners:
                torch._foreach_copy_(ph.buffers, ph.backup)
    return StepResult(stats, skipped, overflowed)
