"""Loop overhead: gandist's training loop against a plain hand-written PyTorch loop.

Both train the demo model (pix2pix at 64x64, widths 32, batch 16) in this one process, from
the same batches held in memory, with the same networks, Adam settings, losses (non-saturating
GAN + 100 x L1), order (D step, then G step, D frozen while G trains, as pix2pix does) and
generator EMA. gandist's loop adds what it always does: divergence checks, gradient norms,
window statistics, TensorBoard logging, the LR schedule. Rounds alternate the two; the figure
is the ratio of steady-state steps per second (target: at least 0.97). Rounds alternate the
order too (ours first, then the reference first), as later runs in a process run warmer.

    .venv/bin/python bench/loop.py [--steps 60] [--rounds 4]
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

from common import DEMO, Row, demo_shards, finish, steady


def in_memory_batches(url: str, batch_size: int, count: int) -> list[dict]:
    from gandist.data import epoch_loader

    loader = epoch_loader(url, split="train", batch_size=batch_size, num_workers=0, epoch=0, with_masks=True)
    return [b for b, _ in zip(loader, range(count))]


def gandist_step_time(cfg, batches: list[dict]) -> float:
    """fit() under the one-process launcher, its training data replaced by ``batches``."""
    import gandist.train.loop as loop
    from gandist.dist.local import run_local

    real_loader = loop.epoch_loader

    def memory_loader(url, split="train", **kwargs):
        return itertools.cycle(batches) if split == "train" else real_loader(url, split=split, **kwargs)

    loop.epoch_loader = memory_loader
    try:
        summary = run_local(cfg)
    finally:
        loop.epoch_loader = real_loader
    return steady(summary.log_dir, "perf/step_time_s")


def plain_step_time(cfg, batches: list[dict], num_classes: int, warmup: int) -> float:
    """The same training written out by hand: what a careful pix2pix script does per step."""
    from gandist.train.ema import ema_beta
    from gandist.train.state import build_networks

    t = cfg.trainer
    G, D = build_networks(cfg, num_classes)
    G_ema = build_networks(cfg, num_classes)[0]
    G_ema.load_state_dict(G.state_dict())
    opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(t.beta1, t.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(t.beta1, t.beta2))
    began = 0.0
    for step, batch in enumerate(itertools.islice(itertools.cycle(batches), t.max_steps)):
        if step == warmup:
            began = time.perf_counter()
        image = batch["image"]
        real = F.one_hot(batch["mask"], num_classes).permute(0, 3, 1, 2).to(image.dtype)
        fake = torch.softmax(G(image), dim=1)
        D.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        loss_d = (F.softplus(D(torch.cat([image, fake.detach() * 2 - 1], 1))).mean()
                  + F.softplus(-D(torch.cat([image, real * 2 - 1], 1))).mean())
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss_g = (F.softplus(-D(torch.cat([image, fake * 2 - 1], 1))).mean()
                  + cfg.task.l1_weight * (fake - real).abs().mean())
        loss_g.backward()
        opt_g.step()
        beta = ema_beta(cfg.data.batch_size, (step + 1) * cfg.data.batch_size, t.ema_kimg, t.ema_rampup)
        with torch.no_grad():
            torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1 - beta)
    return (time.perf_counter() - began) / (t.max_steps - warmup)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--log-every", type=int, default=10, help="the first window is warm-up, left out")
    parser.add_argument("--rounds", type=int, default=4, help="even: each order (ours first, reference first) as often")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    from gandist.cli import absolutize, compose_config
    from gandist.data.manifest import Manifest

    times: dict[str, list[float]] = {"gandist": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_shards(tmp, samples=512)
        batches = in_memory_batches(data, batch_size=compose_config(DEMO).data.batch_size, count=16)
        num_classes = len(Manifest.load(data).classes)
        for round_ in range(args.rounds):  # alternate, so drift on a shared machine hits both
            cfg = absolutize(compose_config(DEMO + [
                f"data.url={data}", f"run.storage={tmp}/runs", f"run.name=loop{round_}", "dist.launcher=local",
                "trainer.num_workers=1", f"trainer.max_steps={args.steps}", f"trainer.log_every={args.log_every}",
                *(f"{key}={args.steps}" for key in ("trainer.ckpt_every", "trainer.image_every", "eval.every"))]))
            measure = {"gandist": lambda: gandist_step_time(cfg, batches),
                       "plain": lambda: plain_step_time(cfg, batches, num_classes, warmup=args.log_every)}
            for name in (("gandist", "plain") if round_ % 2 == 0 else ("plain", "gandist")):  # ABBA order
                times[name].append(measure[name]())
    ours, reference = (1 / statistics.median(times[k]) for k in ("gandist", "plain"))
    print(f"{args.rounds} rounds of {args.steps} steps, the first {args.log_every} left out; torch threads: "
          f"{torch.get_num_threads()}")
    rows = [Row("loop: gandist vs plain PyTorch (steps/s)", ours, reference, ours / reference, ">= 0.97")]
    return finish(rows, args.json, step_time_s=times, steps=args.steps)


if __name__ == "__main__":
    sys.exit(main())
