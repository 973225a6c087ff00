"""Generation quality, side by side in one run: DCGAN against R3GAN for the same wall time on
builtin shapes, and R3GAN with and without augmentation (ADA) on a 10% subset.

Every run is one process on this machine (2 CPU cores here), batch 32, 32x32 builtin shapes,
scored by the shapes judge (eval.features=shapes, gandist.metrics.shapes_judge) at each
evaluation against the same held-out images: the Fréchet distance on the judge's features,
precision and recall (k = 3) on them, and mode coverage (modes reached of the 29, and
KL(real || generated) of the mode mixes).

Same wall time: a short calibration run of each recipe measures its step time; each run then
gets as many steps as fit in --minutes of training (evaluation time not counted).

  full data      dcgan         task=generate's default (DCGAN, non-saturating loss)
                 r3gan         model=r3gan (its whole recipe, its augmentation ramp included)
  10% subset     r3gan         model=r3gan on 10% of the images, task.augment=[] (no augmentation)
                 r3gan+ada     the same with ADA's controller on ADA's bgc ops (task.ada_target=0.6)

Targets: R3GAN's final FD below DCGAN's and its mode coverage at or above it; augmentation
better (lower FD) than none on the subset. Writes the table and every evaluation to --json.

    .venv/bin/python bench/quality_generate.py [--minutes 3] [--samples 8192] [--json bench/quality_generate.json]

`make quality-generate` runs it with the defaults: about 16 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from common import Row, finish, same_wall_time_run, scalars

COMMON = ["task=generate", "model.resolution=32", "data.batch_size=32", "data.loader_workers=0",
          "launcher.name=local", "trainer.num_workers=1", "eval.features=shapes"]
# ADA's controller on ADA's own ops (its 0.6 target was tuned for them), in place of model=r3gan's fixed ramp
ADA = ["task.augment=[bgc]", "task.augment_p=null", "task.augment_p_kimg=null", "task.augment_color_p=1",
       "task.ada_target=0.6", "task.ada_kimg=20"]
RUNS = {  # name -> (shard set, overrides)
    "dcgan": ("full", []),
    "r3gan": ("full", ["model=r3gan"]),
    "r3gan_subset": ("subset", ["model=r3gan", "task.augment=[]"]),
    "r3gan_subset_ada": ("subset", ["model=r3gan", *ADA]),
}
SCORES = ("eval/fd_shapes", "eval/precision_shapes", "eval/recall_shapes", "eval/modes", "eval/mode_kl")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training time of each run")
    parser.add_argument("--samples", type=int, default=8192, help="training images of the full set")
    parser.add_argument("--subset", type=float, default=0.1, help="fraction of them in the subset")
    parser.add_argument("--heldout", type=int, default=1024, help="held-out images (and samples) per evaluation")
    parser.add_argument("--evals", type=int, default=4, help="evaluations per run (the last at the end)")
    parser.add_argument("--calibrate", type=int, default=30, help="steps of each calibration run")
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated subset of " + ", ".join(RUNS))
    parser.add_argument("--json", default=None, help="also write the table to this file")
    parser.add_argument("--grids", default=None, help="copy each run's last sample grid (EMA G) to this folder")
    args = parser.parse_args()

    import shutil

    import torch

    from gandist.config import absolutize, compose_config
    from gandist.data import write_shard_set
    from gandist.launchers.common import configure_logging
    from gandist.metrics.judges import saved_accuracy
    from gandist.metrics.shapes_judge import judge_path, load_judge

    configure_logging()
    began = time.monotonic()
    load_judge(torch.device("cpu"))  # trained now if this machine has none: not inside a run's time
    judge_accuracy = saved_accuracy(judge_path())
    print(f"shapes judge, held-out accuracy: {judge_accuracy}", flush=True)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = {"full": os.path.join(tmp, "full"), "subset": os.path.join(tmp, "subset")}
        sizes = {"full": args.samples, "subset": max(64, round(args.samples * args.subset))}
        for name, url in data.items():  # the subset is the full set's first images; the same held-out set
            write_shard_set("builtin:shapes", url, samples=sizes[name], heldout=args.heldout, shard_size=512,
                            size=32, seed=0)

        def cfg(name: str, steps: int, every: int, extra: list[str]):
            subset, overrides = RUNS[name]
            return absolutize(compose_config(COMMON + overrides + extra + [
                f"data.url={data[subset]}", f"run.storage={tmp}/runs", f"run.name={name}-{steps}",
                f"trainer.max_steps={steps}", f"trainer.ckpt_every={steps}", f"eval.every={every}",
                f"eval.samples={args.heldout}"]))

        for name in [n for n in args.only.split(",") if n]:
            summary, steps, step_s, seconds = same_wall_time_run(
                lambda *a: cfg(name, *a), args.minutes, args.evals, args.calibrate)
            if args.grids:
                os.makedirs(args.grids, exist_ok=True)
                shutil.copy(os.path.join(tmp, "runs", f"{name}-{steps}", "samples", f"samples_{steps:08d}.png"),
                            os.path.join(args.grids, f"{name}.png"))
            curves = {tag: {str(k): v for k, v in sorted(scalars(summary.log_dir, tag).items())} for tag in SCORES}
            results[name] = {"overrides": RUNS[name][1], "images": sizes[RUNS[name][0]], "step_s": step_s,
                             "steps": steps, "seconds": seconds,
                             "final": {tag: summary.metrics[tag] for tag in SCORES}, "curves": curves}
            final = results[name]["final"]
            print(f"{name}: {steps} steps at {step_s * 1000:.0f} ms: FD {final['eval/fd_shapes']:.2f}, "
                  f"modes {final['eval/modes']:.0f}, mode KL {final['eval/mode_kl']:.3f} "
                  f"({time.monotonic() - began:.0f} s so far)", flush=True)

    print(f"\n{'run':<18} {'steps':>6} " + " ".join(f"{t.split('/')[1]:>17}" for t in SCORES))
    for name, r in results.items():
        for step in r["curves"][SCORES[0]]:
            print(f"{name:<18} {step:>6} " + " ".join(f"{r['curves'][t].get(step, float('nan')):>17.4g}" for t in SCORES))
    rows = []
    fd = {name: r["final"]["eval/fd_shapes"] for name, r in results.items()}
    if "dcgan" in fd and "r3gan" in fd:
        rows.append(Row("generate: R3GAN / DCGAN final FD(shapes), same wall time", fd["r3gan"], fd["dcgan"],
                        fd["r3gan"] / fd["dcgan"], "< 1", "FD"))
        modes = {n: results[n]["final"]["eval/modes"] for n in ("dcgan", "r3gan")}
        rows.append(Row("generate: R3GAN - DCGAN modes reached", modes["r3gan"], modes["dcgan"],
                        modes["r3gan"] - modes["dcgan"], ">= 0", "modes"))
    if "r3gan_subset" in fd and "r3gan_subset_ada" in fd:
        rows.append(Row("generate: R3GAN on 10%, ADA / none final FD(shapes)", fd["r3gan_subset_ada"],
                        fd["r3gan_subset"], fd["r3gan_subset_ada"] / fd["r3gan_subset"], "< 1", "FD"))
    return finish(rows, args.json, runs=results, judge_accuracy=judge_accuracy, minutes=args.minutes,
                  samples=args.samples, heldout=args.heldout, common=COMMON, seconds=time.monotonic() - began)


if __name__ == "__main__":
    sys.exit(main())
