"""Segmentation quality ablation: what the adversarial term and learning from unlabeled images
add when only 1/8 of the masks are known, side by side in one run.

Every variant trains the same U-Net (task=segment's, at width 8 so that ten runs fit in 15
minutes on 2 cores; one process, the same steps, batch, data and schedule) on builtin shapes
and is scored on the same held-out images (EMA G's mIoU):

  (a) ce           cross-entropy on the labeled 1/8 only (task.adv_weight=0, no D)
  (b) ce+adv       + 0.01 x the adversarial term from Hung et al.'s D as their code builds and
                   trains it (configs/task/segment_semi.yaml): the pixel D sees the class maps
                   alone in [0, 1] (softmax; one-hot masks), Adam lr 1e-4, betas (0.9, 0.99),
                   poly decay; G's losses read D from before its update in the step
  (c) ce+adv+semi  (b) + learning from the other 7/8 through D's confidence map: Hung et al.
                   (task.semi=adversarial, threshold 0.2, 0.1 x pseudo-label CE from 1/4 of the
                   run, 0.001 x adversarial on unlabeled predictions)
  (d) self-train   (a) + pseudo-labels where G's own top probability passes 0.9 (task.semi=self_training)
  (e) all masks    (a) with every mask: the ceiling

each with --seeds seeds. Target: (c) beats (a) by at least 3 mIoU points. Writes the table
(mean and each seed's figure, and each evaluation's mIoU) to --json.

    .venv/bin/python bench/quality.py [--steps 400] [--samples 2048] [--seeds 2] [--json bench/quality.json]

`make quality` runs it with the defaults: about 14 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from common import Row, finish, scalars

# The recipe every variant shares, and what each adds.
COMMON = ["task=segment", "model.resolution=32", "model.g_width=8", "model.d_width=16", "model.d_arch=pixel",
          "data.batch_size=32", "data.loader_workers=0", "launcher.name=local", "trainer.num_workers=1",
          "trainer.lr_g=3e-3", "trainer.lr_d=1e-3", "trainer.beta1=0.9", "trainer.lr_schedule=linear",
          "trainer.log_every=50", "trainer.image_every=100000", "eval.batches=0"]
FRACTION = ["data.label_fraction=0.125"]
# Hung et al.'s D and its optimiser (configs/task/segment_semi.yaml's, over COMMON's G recipe).
HUNG = ["task.adv_weight=0.01", "task.d_input=softmax", "task.d_image=false", "task.d_map_range=unit",
        "task.g_first=true", "trainer.lr_d=1e-4", "trainer.d_beta1=0.9", "trainer.d_beta2=0.99",
        "trainer.d_lr_schedule=poly"]
VARIANTS = {
    "a_ce": FRACTION + ["task.adv_weight=0"],
    "b_ce_adv": FRACTION + HUNG,
    "c_ce_adv_semi": FRACTION + HUNG + ["task.semi=adversarial"],
    "d_self_training": FRACTION + ["task.adv_weight=0", "task.semi=self_training"],
    "e_all_masks": ["task.adv_weight=0"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2048, help="training samples of builtin shapes")
    parser.add_argument("--heldout", type=int, default=512)
    parser.add_argument("--evals", type=int, default=4, help="evaluations per run (the last at the end)")
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--json", default=None, help="also write the table to this file")
    args = parser.parse_args()

    from gandist.config import absolutize, compose_config
    from gandist.data import write_shard_set
    from gandist.launchers.common import configure_logging
    from gandist.launchers.local import run_local

    configure_logging()
    every = max(1, args.steps // args.evals)
    results: dict[str, dict] = {}
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "shapes32")
        write_shard_set("builtin:shapes", data, samples=args.samples, heldout=args.heldout, shard_size=512,
                        size=32, seed=0)
        for name in [n for n in args.only.split(",") if n]:
            runs = []
            for seed in range(args.seeds):
                started = time.monotonic()
                cfg = absolutize(compose_config(COMMON + VARIANTS[name] + [
                    f"data.url={data}", f"run.storage={tmp}/runs", f"run.name={name}-{seed}",
                    f"trainer.seed={seed}", f"trainer.max_steps={args.steps}", f"trainer.ckpt_every={args.steps}",
                    f"eval.every={every}"]))
                summary = run_local(cfg)
                curve = scalars(summary.log_dir, "eval/miou")
                semi = {k: v for k, v in summary.metrics.items() if k.startswith("semi/")}  # the last log window
                runs.append({"seed": seed, "miou": summary.metrics["eval/miou"], "seconds": time.monotonic() - started,
                             "curve": {str(k): v for k, v in sorted(curve.items())}, "semi_last_window": semi})
                print(f"{name} seed {seed}: held-out mIoU {runs[-1]['miou']:.4f} in {runs[-1]['seconds']:.0f} s "
                      f"({time.monotonic() - began:.0f} s so far)", flush=True)
            results[name] = {"overrides": VARIANTS[name], "mean_miou": statistics.mean(r["miou"] for r in runs),
                             "runs": runs}

    print(f"\n{'variant':<18} {'mean mIoU':>9}  per seed")
    for name, r in results.items():
        print(f"{name:<18} {r['mean_miou']:>9.4f}  " + ", ".join(f"{x['miou']:.4f}" for x in r["runs"]))
    rows = []
    if "a_ce" in results and "c_ce_adv_semi" in results:
        a, c = results["a_ce"]["mean_miou"], results["c_ce_adv_semi"]["mean_miou"]
        rows.append(Row("quality: (c) - (a) held-out mIoU, 1/8 masks", c - a, None, c - a, ">= 0.03", "mIoU"))
    for name, r in results.items():
        rows.append(Row(f"quality: {name} held-out mIoU", r["mean_miou"], None, r["mean_miou"], "report", "mIoU"))
    return finish(rows, args.json, variants=results, steps=args.steps, seeds=args.seeds, samples=args.samples,
                  heldout=args.heldout, common=COMMON, seconds=time.monotonic() - began)


if __name__ == "__main__":
    sys.exit(main())
