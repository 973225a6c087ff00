"""Loop overhead: gandist's training loop against a plain hand-written PyTorch loop.

Both train the demo model (pix2pix at 64x64, widths 32, batch 16) in this one process, from
the same batches held in memory, with the same networks, Adam settings, losses (non-saturating
GAN + 100 x L1), order (D step, then G step, D frozen while G trains, as pix2pix does) and
generator EMA. gandist's loop adds what it always does: divergence checks, gradient norms,
window statistics, TensorBoard logging, the LR schedule.

The two alternate step by step, so that whatever else the machine does hits both alike
(rounds of whole runs drifted by 10% on a shared 2-core machine, more than the gap being
measured): gandist's data source is replaced by the in-memory batches, and fetching each
batch first runs one step of the hand-written loop on it and times it. gandist counts that
as waiting for data, so its own time per step is its step time minus its data wait, per
logging window. The figure is the ratio of steady-state steps per second taken window by
window (the two loops' steps of one window ran interleaved, at the same moment of the
machine), median over the windows after the first (target: at least 0.98). The ratio of the
two loops' median windows would compare windows from different moments of a machine whose
speed drifts: 0.957, 0.979 and 0.993 in three runs where the paired figure was 0.968, 0.976
and 0.979. The steps/s columns are each loop's median window.

    .venv/bin/python bench/loop.py [--steps 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from common import DEMO, Row, demo_shards, finish, scalars


def in_memory_batches(url: str, batch_size: int, count: int) -> list[dict]:
    from gandist.data.loader import epoch_loader

    loader = epoch_loader(url, split="train", batch_size=batch_size, num_workers=0, epoch=0, with_masks=True)
    return [b for b, _ in zip(loader, range(count))]


class PlainLoop:
    """The same training written out by hand: what a careful pix2pix script does per step."""

    def __init__(self, cfg, num_classes: int) -> None:
        from gandist.models.factory import build_networks

        t = cfg.trainer
        self.cfg, self.num_classes, self.images = cfg, num_classes, 0
        self.G, self.D = build_networks(cfg, num_classes)
        self.G_ema = build_networks(cfg, num_classes)[0]
        self.G_ema.load_state_dict(self.G.state_dict())
        adam = dict(betas=(t.beta1, t.beta2), fused=t.fused_adam)  # the same Adam implementation as gandist's
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, **adam)

    def step(self, batch: dict) -> float:
        """One D step and one G step and the EMA update; returns the seconds it took."""
        from gandist.train.ema import ema_beta

        began = time.perf_counter()
        cfg, G, D = self.cfg, self.G, self.D
        image = batch["image"]
        real = F.one_hot(batch["mask"], self.num_classes).permute(0, 3, 1, 2).to(image.dtype)
        logits = G(image)
        fake = torch.softmax(logits, dim=1)
        D.requires_grad_(True)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = (F.softplus(D(torch.cat([image, fake.detach() * 2 - 1], 1))).mean()
                  + F.softplus(-D(torch.cat([image, real * 2 - 1], 1))).mean())
        loss_d.backward()
        self.opt_d.step()
        D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g = (cfg.task.adv_weight * F.softplus(-D(torch.cat([image, fake * 2 - 1], 1))).mean()
                  + cfg.task.seg_weight * F.cross_entropy(logits, batch["mask"]))
        loss_g.backward()
        self.opt_g.step()
        self.images += cfg.data.batch_size
        t = cfg.trainer
        beta = ema_beta(cfg.data.batch_size, self.images, t.ema_kimg, t.ema_rampup)
        with torch.no_grad():
            torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), 1 - beta)
        return time.perf_counter() - began


def interleaved_round(cfg, batches: list[dict], num_classes: int) -> tuple[list[float], list[float]]:
    """One run of fit() whose batches come from memory, each fetch first running one plain
    step; returns the per-window step times (gandist's own, the plain loop's)."""
    import gandist.train.loop as loop
    from gandist.launchers.local import run_local

    plain, plain_times = PlainLoop(cfg, num_classes), []
    real_batches = loop.training_batches

    def memory_batches(*args, **kwargs):
        for batch in itertools.cycle(batches):
            plain_times.append(plain.step(batch))
            yield batch

    loop.training_batches = memory_batches  # the training batches only; evaluation reads shards as usual
    try:
        log_dir = run_local(cfg).log_dir
    finally:
        loop.training_batches = real_batches
    every = cfg.trainer.log_every
    step_time, wait = scalars(log_dir, "perf/step_time_s"), scalars(log_dir, "perf/data_wait_frac")
    ours = [step_time[s] * (1 - wait[s]) for s in sorted(step_time)]
    reference = [statistics.mean(plain_times[s - every:s]) for s in sorted(step_time)]
    return ours[1:], reference[1:]  # the first window is warm-up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10, help="the first window is warm-up, left out")
    parser.add_argument("--rounds", type=int, default=3, help="runs, each with fresh networks")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    from gandist.config import absolutize, compose_config
    from gandist.data.manifest import Manifest

    windows: dict[str, list[float]] = {"gandist": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_shards(tmp, samples=512)
        batches = in_memory_batches(data, batch_size=compose_config(DEMO).data.batch_size, count=16)
        num_classes = len(Manifest.load(data).classes)
        for round_ in range(args.rounds):  # fresh networks each round
            cfg = absolutize(compose_config(DEMO + [
                f"data.url={data}", f"run.storage={tmp}/runs", f"run.name=loop{round_}", "launcher.name=local",
                "trainer.num_workers=1", f"trainer.max_steps={args.steps}", f"trainer.log_every={args.log_every}",
                *(f"{key}={args.steps}" for key in ("trainer.ckpt_every", "trainer.image_every", "eval.every"))]))
            ours, reference = interleaved_round(cfg, batches, num_classes)
            windows["gandist"] += ours
            windows["plain"] += reference
    ours, reference = (1 / statistics.median(windows[k]) for k in ("gandist", "plain"))
    paired = statistics.median(plain / own for own, plain in zip(windows["gandist"], windows["plain"]))
    print(f"{args.rounds} rounds of {args.steps} steps, alternating step by step, windows of {args.log_every} "
          f"steps after the first; torch threads: {torch.get_num_threads()}")
    rows = [Row("loop: gandist vs plain PyTorch (steps/s)", ours, reference, paired, ">= 0.98")]
    return finish(rows, args.json, window_step_time_s=windows, steps=args.steps)


if __name__ == "__main__":
    sys.exit(main())
