"""Segmentation with 1/8 of the masks, where the labels limit: what the adversarial term and
learning from unlabeled images add, side by side in one run, on two builtin sets.

Every variant trains the same U-Net (model=unet at --width, 32 pixels, batch 32, one process
per run, its set's steps: shapes 600, digits 900; the demo segmenter's optimiser for G: Adam
3e-3, beta1 0.9, linear decay over the second half) and is scored by EMA G's mIoU on the same
held-out images of its set.
The labeled 1/8 is the same fixed subset in every variant (data.label_fraction=0.125):

  (a) ce           cross-entropy on the labeled 1/8 only (task.adv_weight=0, no D)
  (b) ce+adv       + 0.01 x the adversarial term from Hung et al.'s D as configs/task/segment_semi.yaml
                   builds and trains it (class maps alone in [0, 1], Adam 1e-4, betas (0.9, 0.99),
                   poly decay, a map of 8x8 at 32 pixels; width 32, the preset's 64 halved for
                   the CPU), no learning from unlabeled images
  (c) semi         task=segment_semi: (b) + Hung et al.'s semi-supervision on the other 7/8
                   (pseudo-labels where D's confidence passes 0.2, from 1/4 of the run)
  (d) self-train   (a) + pseudo-labels where G's own top probability passes 0.9
  (e) all masks    (a) with every mask: the ceiling, which says whether the labels limit

builtin:shapes runs all five; builtin:digits (the 1,797 handwritten digits) runs (a), (c), (e).
Each with --seeds seeds (trainer.seed: G's and D's initial weights and the data order; the
labeled subset stays the same). Runs go --jobs at a time, one thread each.

Verdicts, per set: the labels limit when (e) - (a) >= 5 mIoU points (the design of the record:
without it (c) has nothing to add); the target is (c) - (a) >= 2 points and larger than the
seeds' spread (the larger max - min of (a) and (c)). The JSON holds each run's recipe, steps,
images seen, seconds, mIoU curve and the last window of its semi/ scalars (why (c) did or did
not help: confidence AUROC, share of pixels selected, pseudo-label accuracy).

    .venv/bin/python bench/quality.py [--seeds 3] [--steps N] [--jobs 2] [--json bench/records/quality.json] [KEY=VALUE ...]
    .venv/bin/python bench/quality.py --quick     # a smoke run: 1 seed, 20 steps, small sets

`make quality` runs it with the defaults and rewrites docs/quality.md's table from the JSON.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from common import Row, finish, scalars

COMMON = ["model=unet", "model.resolution=32", "data.batch_size=32", "data.loader_workers=0",
          "launcher.name=local", "trainer.num_workers=1", "trainer.log_every=50", "trainer.image_every=1000000",
          "eval.batches=0", "data.label_fraction=0.125"]
# G's optimiser: the demo segmenter's (configs/trainer/demo.yaml). The trainer's default (2e-4, beta1 0.5)
# is a GAN generator's rate: a U-Net from scratch at it is still rising after 600 steps (digits with
# every mask: 0.47 to 0.94 mIoU by seed on 2026-12-07), so the record measured seeds, not recipes.
# Hung et al.'s G is an ImageNet-pretrained DeepLab-v2 on SGD at 2.5e-4: nothing to copy from scratch.
G_OPTIMISER = ["trainer.lr_g=3e-3", "trainer.beta1=0.9", "trainer.lr_schedule=linear", "trainer.lr_decay_start=0.5"]
CE = ["task=segment", "task.adv_weight=0"]
# Hung et al.'s D and its optimiser without the unlabeled images: what task=segment_semi sets
# (Config.__post_init__ for task.semi=adversarial), spelled out because task.semi=none drops it.
HUNG_D = ["task=segment", "model.d_arch=pixel", "model.d_layers=3", "task.loss=nonsat",
          "task.adv_weight=0.01", "task.d_input=softmax", "task.d_image=false", "task.d_map_range=unit",
          "task.g_first=true", "trainer.lr_d=1e-4", "trainer.d_beta1=0.9", "trainer.d_beta2=0.99",
          "trainer.d_lr_schedule=poly"]
# D's width, scaled down for 2 CPU cores as the U-Net is (width 16): Hung et al.'s FCDiscriminator and
# task=segment_semi are 64 wide; its 512-wide layer at the 8x8 map is most of a semi step (0.9 s at 64,
# 0.6 s at 32, one thread), and 64 would take the bench past its hour.
D_WIDTH = ["model.d_width=32"]
VARIANTS = {
    "a_ce": CE,
    "b_ce_adv": HUNG_D + D_WIDTH,
    "c_semi": ["task=segment_semi"] + D_WIDTH,
    "d_self_training": CE + ["task.semi=self_training"],
    "e_all_masks": CE + ["data.label_fraction=1.0"],
}
# Steps per set: each set's curves flat by its last evaluation. On digits one seed (1) learns late in
# every variant: at 600 steps it was still rising (cross-entropy 0.47 at 400, 0.70 at 600; 2026-12-07),
# at 900 it levels (0.81 at 675, 0.83 at 900), within a point of the other seeds.
SETS = {  # name -> (source, training images (None: all the rest), held-out images, steps, variants)
    "shapes": ("builtin:shapes", 1200, 500, 600, list(VARIANTS)),
    "digits": ("builtin:digits", None, 597, 900, ["a_ce", "c_semi", "e_all_masks"]),
}
SEMI_TAGS = ("semi/confidence_auroc", "semi/selected_fraction", "semi/pseudo_label_accuracy", "loss/D")
LABELS_LIMIT, TARGET = 0.05, 0.02


def train_one(job: dict) -> dict:
    """One run in a worker process; returns what the table and the JSON need."""
    import torch

    torch.set_num_threads(1)
    from gandist.config import absolutize, compose_config
    from gandist.launchers.common import configure_logging
    from gandist.launchers.local import run_local

    configure_logging()
    started = time.monotonic()
    summary = run_local(absolutize(compose_config(job["overrides"])))
    last = {}
    for tag in SEMI_TAGS:
        curve = scalars(summary.log_dir, tag)
        if curve:
            last[tag] = curve[max(curve)]
    return {**{k: job[k] for k in ("set", "variant", "seed", "steps", "recipe")},
            "images_seen": job["steps"] * 32, "seconds": round(time.monotonic() - started, 1),
            "miou": summary.metrics["eval/miou"], "foreground_iou": summary.metrics.get("eval/foreground_iou"),
            "curve": {str(k): v for k, v in sorted(scalars(summary.log_dir, "eval/miou").items())},
            "last_window": last}


def spread(values: list[float]) -> float:
    return max(values) - min(values)


def verdicts(table: dict[str, dict[str, list[float]]]) -> list[Row]:
    """The labels-limit check and the target, per set, as rows with a met/missed verdict."""
    rows = []
    for name, by_variant in table.items():
        mean = {v: statistics.mean(s) for v, s in by_variant.items()}
        if "a_ce" in mean and "e_all_masks" in mean:
            gap = mean["e_all_masks"] - mean["a_ce"]
            rows.append(Row(f"{name}: labels limit, (e) - (a) mIoU", gap, None, gap, f">= {LABELS_LIMIT}", "mIoU"))
        if "a_ce" in mean and "c_semi" in mean:
            gain = mean["c_semi"] - mean["a_ce"]
            noise = max(spread(by_variant["a_ce"]), spread(by_variant["c_semi"]))
            rows.append(Row(f"{name}: (c) - (a) mIoU", gain, None, gain, f">= {TARGET}", "mIoU"))
            rows.append(Row(f"{name}: (c) - (a) over the seeds' spread", gain, noise, gain - noise, "> 0", "mIoU"))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None,
                        help="steps per run; default each set's own (" + ", ".join(f"{n} {s[3]}" for n, s in SETS.items()) + ")")
    parser.add_argument("--width", type=int, default=16, help="the U-Net's width (model.g_width)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--evals", type=int, default=3, help="evaluations per run (the last at the end)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of " + ", ".join(SETS))
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 seed, 20 steps, 256 training and 64 held-out images per set")
    parser.add_argument("overrides", nargs="*", help="config overrides added to every variant's recipe, e.g. trainer.lr_g=3e-3")
    parser.add_argument("--json", default=None, help="also write the table and every run to this file")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.steps = 1, 20
    steps = {name: args.steps or SETS[name][3] for name in SETS}

    from gandist.data.shards import write_shard_set

    began = time.monotonic()
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS] + [v for v in args.only.split(",") if v and v not in VARIANTS]
    if unknown:
        parser.error(f"unknown set or variant {', '.join(unknown)}; sets: {', '.join(SETS)}; variants: "
                     f"{', '.join(VARIANTS)}")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for name in sets:
            source, samples, heldout, _, variants = SETS[name]
            if args.quick:
                samples, heldout = 256, 64
            url = os.path.join(tmp, name)
            write_shard_set(source, url, samples=samples, heldout=heldout, shard_size=512, size=32, seed=0)
            for variant in [v for v in variants if v in args.only.split(",")]:
                for seed in range(args.seeds):
                    recipe = COMMON + G_OPTIMISER + [f"model.g_width={args.width}"] + VARIANTS[variant] + args.overrides
                    jobs.append({"set": name, "variant": variant, "seed": seed, "steps": steps[name], "recipe": recipe,
                                 "overrides": recipe + [
                                     f"data.url={url}", f"run.storage={tmp}/runs", f"run.name={name}-{variant}-{seed}",
                                     f"trainer.seed={seed}", f"trainer.max_steps={steps[name]}",
                                     f"trainer.ckpt_every={steps[name]}", f"eval.every={max(1, steps[name] // args.evals)}"]})
        print(f"{len(jobs)} runs ({', '.join(f'{n} {steps[n]} steps' for n in sets)}), {args.jobs} at a time", flush=True)
        runs = []
        # spawn: each worker imports torch afresh rather than forking this process's threads
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for run in pool.map(train_one, jobs):
                runs.append(run)
                print(f"{run['set']} {run['variant']} seed {run['seed']}: held-out mIoU {run['miou']:.4f}, "
                      f"{run['steps']} steps ({run['images_seen']} images) in {run['seconds']:.0f} s "
                      f"({time.monotonic() - began:.0f} s so far)", flush=True)

    table: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        table.setdefault(run["set"], {}).setdefault(run["variant"], []).append(run["miou"])
    print(f"\n{'set':<8} {'variant':<16} {'mean mIoU':>9} {'spread':>7}  per seed")
    for name, by_variant in table.items():
        for variant, scores in by_variant.items():
            print(f"{name:<8} {variant:<16} {statistics.mean(scores):>9.4f} {spread(scores):>7.4f}  "
                  + ", ".join(f"{s:.4f}" for s in scores))
    rows = verdicts(table)
    for name, by_variant in table.items():
        for variant, scores in by_variant.items():
            rows.append(Row(f"{name}: {variant} held-out mIoU", statistics.mean(scores), None,
                            statistics.mean(scores), "report", "mIoU"))
    return finish(rows, args.json, runs=runs, steps={n: steps[n] for n in sets}, width=args.width, seeds=args.seeds,
                  sets={n: SETS[n][:3] for n in sets}, quick=args.quick, seconds=round(time.monotonic() - began))


if __name__ == "__main__":
    sys.exit(main())
