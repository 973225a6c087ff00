"""Differentiable augmentation of everything D sees (DiffAugment, Zhao et al. 2020; applied per
sample with probability p as in StyleGAN2-ADA), and ADA's controller of p.

Real and generated images go through the same random transforms before D, in D's step and in
G's (where G's gradient flows back through them), so D cannot learn the transforms as a
feature of real images and G is not pushed to produce them. With few images this keeps D from
memorising the training set. Each op's random parameters are drawn on the CPU from the given
generator (by default the process's torch CPU generator, which every checkpoint saves per
rank), so the same seed gives the same transforms on any device.

ADA (Karras et al. 2020): the overfitting heuristic r_t = E[sign(D(real))] (under a relativistic
loss E[sign(D(real) - D(fake))], as R3GAN reports it: ``overfit_sign``) is measured over
``interval`` steps on all ranks together; p moves towards keeping r_t at ``target``, by at most
``batch x interval / (speed_kimg x 1000)`` per adjustment (from 0 to 1 in ``speed_kimg``
thousand images).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gandist.collectives import all_reduce_sum
from gandist.train.ada_augment import GROUPS as ADA_GROUPS, ORDER as ADA_ORDER, ada_augment
from gandist.train.schedule import cosine

TRANSLATION = 1 / 8  # the largest shift, as a fraction of the side (DiffAugment's)
CUTOUT = 1 / 2  # the side of the cut-out square, as a fraction of the image's


def _uniform(n: int, generator: Optional[torch.Generator], device: torch.device, *shape: int) -> Tensor:
    return torch.rand(n, *shape, generator=generator).to(device)


def color(x: Tensor, u: Tensor) -> Tensor:
    """Brightness (+[-0.5, 0.5)), saturation (x[0, 2)) and contrast (x[0.5, 1.5)), per sample;
    ``u`` [N, 3] uniform draws."""
    # In float32 whatever the image's dtype, so a bf16 fake and an fp32 real get the same maths.
    dtype = x.dtype
    x = x.to(torch.promote_types(dtype, torch.float32))
    b, s, c = (u[:, i].view(-1, 1, 1, 1).to(x.dtype) for i in range(3))
    x = x + (b - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (2 * s) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * (c + 0.5) + mean).to(dtype)


def translation(x: Tensor, u: Tensor) -> Tensor:
    """Shift each image by whole pixels, up to 1/8 of its side each way, filling with zeros;
    ``u`` [N, 2] uniform draws. A gather at integer source indices: differentiable with respect
    to the image, and every pixel lands in the same place whatever the image's dtype (a shift
    grid built in bf16 misplaces pixels: G's bf16 output and fp32 reals would differ)."""
    n, c, h, w = x.shape
    limit = torch.tensor([int(w * TRANSLATION), int(h * TRANSLATION)], device=x.device)
    shift = ((u.float() * (2 * limit + 1)).floor() - limit).long()  # integers in [-limit, limit]
    # Output pixel (i, j) reads input (i - dy, j - dx); outside the image it reads zero.
    rows = torch.arange(h, device=x.device).view(1, -1) - shift[:, 1:]  # [N, H]
    cols = torch.arange(w, device=x.device).view(1, -1) - shift[:, :1]  # [N, W]
    inside = (((rows >= 0) & (rows < h)).view(n, 1, h, 1) & ((cols >= 0) & (cols < w)).view(n, 1, 1, w))
    out = x.gather(2, rows.clamp(0, h - 1).view(n, 1, h, 1).expand(n, c, h, w))
    out = out.gather(3, cols.clamp(0, w - 1).view(n, 1, 1, w).expand(n, c, h, w))
    return out * inside.to(x.dtype)


def cutout(x: Tensor, u: Tensor) -> Tensor:
    """Zero a square of half the side at a random centre in each image; ``u`` [N, 2]."""
    n, _, h, w = x.shape
    size_y, size_x = int(h * CUTOUT), int(w * CUTOUT)
    cy = (u[:, 0] * (h + 1 - size_y % 2)).floor().view(-1, 1, 1)
    cx = (u[:, 1] * (w + 1 - size_x % 2)).floor().view(-1, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, -1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, -1)
    top, left = cy - size_y // 2, cx - size_x // 2
    inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x)
    return x * (~inside).unsqueeze(1).to(x.dtype)


DRAWS = {"color": (color, 3), "translation": (translation, 2), "cutout": (cutout, 2)}


def diff_augment(x: Tensor, ops: Sequence[str], p: float, generator: Optional[torch.Generator] = None) -> Tensor:
    """Each op applied to each image with probability ``p`` (independently), in the order given.
    The draws are made whatever ``p`` is, so the random stream does not depend on it."""
    n = x.shape[0]
    for op in ops:
        fn, k = DRAWS[op]
        u = _uniform(n, generator, x.device, k)
        apply = (_uniform(n, generator, x.device) < p).view(-1, 1, 1, 1)
        x = torch.where(apply, fn(x, u), x)
    return x


def overfit_sign(real_logits: Tensor, fake_logits: Tensor, relativistic: bool) -> Tensor:
    """One step's ADA heuristic r_t, before its mean over steps and ranks: E[sign(D(real))] for
    a separable loss; for a relativistic one E[sign(D(real) - D(fake))] over the pairs (what
    R3GAN reports as Loss/signs/real), since that loss sees only the difference and D(real)
    alone drifts with a constant no loss trains."""
    if relativistic:
        return (real_logits - fake_logits).sign().mean()
    return real_logits.sign().mean()


class Augmenter:
    """What task.augment applies to D's inputs, with its current probability ``p``: DiffAugment's
    ops, or ADA's (gandist.train.ada_augment) when the list names any of ADA's own ops.

    ``ramp_kimg``: p rises from 0 to ``p`` on a half cosine over that many thousand images, then
    stays (R3GAN's aug_scheduler); ``follow`` sets it from the images seen before each step, so
    it needs no state of its own beyond the images-seen count every checkpoint holds."""

    def __init__(self, ops: Sequence[str], p: float, color_p: float = 1.0, ramp_kimg: Optional[float] = None) -> None:
        self.ops, self.p = tuple(ops), p
        self.ada = uses_ada_ops(self.ops)
        self.color_p, self.target_p, self.ramp_kimg = color_p, p, ramp_kimg

    def follow(self, images_seen: int) -> None:
        """p for the step about to be taken, after ``images_seen`` training images."""
        if self.ramp_kimg is not None:
            self.p = cosine(0.0, self.target_p, images_seen, round(self.ramp_kimg * 1000))

    def __call__(self, x: Tensor) -> Tensor:
        if not self.ops or self.p <= 0:
            return x
        if self.ada:
            return ada_augment(x, self.ops, self.p, color_p=self.color_p)
        return diff_augment(x, self.ops, self.p)


def uses_ada_ops(ops: Sequence[str]) -> bool:
    """Whether ``ops`` names any of ADA's own ops (then "cutout" is ADA's too)."""
    return any(op in ADA_ORDER or op in ADA_GROUPS for op in ops if op not in DRAWS)


class AdaController:
    """ADA: every ``interval`` steps, r_t over them (all ranks) moves the augmenter's p by a
    fixed step towards r_t = ``target``. The augmenter's p is the one copy of it."""

    def __init__(self, augmenter: Augmenter, target: float, speed_kimg: float, interval: int,
                 global_batch: int, device: torch.device) -> None:
        self.augmenter = augmenter
        self.target, self.interval, self.device = target, interval, device
        self.step_size = global_batch * interval / (speed_kimg * 1000)
        self.rt = 0.0
        self._sum: Optional[Tensor] = None
        self._count = 0

    @property
    def p(self) -> float:
        return self.augmenter.p

    @p.setter
    def p(self, value: float) -> None:
        self.augmenter.p = value

    def observe(self, real_sign_mean: Tensor) -> None:
        """One step's mean sign(D(real)) on this rank (a device tensor: no host sync here)."""
        value = real_sign_mean.detach().double()
        self._sum = value if self._sum is None else self._sum + value
        self._count += 1

    def _window(self) -> Tensor:
        """[sum, count] of this rank's open window, on the device."""
        total = self._sum if self._sum is not None else torch.zeros((), dtype=torch.float64, device=self.device)
        return torch.stack([total, torch.tensor(float(self._count), dtype=torch.float64, device=total.device)])

    def maybe_adjust(self, step: int) -> bool:
        """At every ``interval``-th step: one all-reduce of the window, then p moves; all ranks
        call it together and get the same p."""
        if step % self.interval:
            return False
        total, count = all_reduce_sum(self._window()).tolist()
        self._sum, self._count = None, 0
        if count == 0:
            return False
        self.rt = total / count
        direction = (self.rt > self.target) - (self.rt < self.target)
        # Bounded below only, as StyleGAN2-ADA's training loop does: p above 1 acts as 1 (every
        # op applied) and must come back down before fewer images are augmented.
        self.p = max(self.p + direction * self.step_size, 0.0)
        return True

    def state_dict(self) -> dict[str, float]:
        """p, the last r_t, and the open window summed over all ranks (a collective: every rank
        calls it at a checkpoint), so a resume mid-window adjusts p as it would have."""
        window_sum, window_count = all_reduce_sum(self._window()).tolist()
        return {"p": self.p, "rt": self.rt, "window_sum": window_sum, "window_count": int(window_count)}

    def load_state_dict(self, sd: dict[str, float], rank: int) -> None:
        """Rank 0 carries the saved window on; the others start theirs empty (the sum is global)."""
        self.p, self.rt = float(sd["p"]), float(sd["rt"])
        self._sum, self._count = None, 0
        if rank == 0 and sd["window_count"]:
            self._sum = torch.tensor(sd["window_sum"], dtype=torch.float64, device=self.device)
            self._count = int(sd["window_count"])
