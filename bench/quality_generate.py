"""Generation quality on builtin digits: DCGAN against R3GAN at equal training images (how the
papers compare) and at equal wall time (what a CPU user pays), and R3GAN with and without ADA
on a 10% subset, side by side in one run.

The data is `make demo-generate`'s: builtin:digits at 32 px (1,497 training images, 300 held
out), scored by the digits judge (eval.features=digits, gandist.metrics.digits_judge) on the
held-out images at every evaluation: the Fréchet distance on the judge's features (FD),
improved precision and recall (k = 3) on them, and the digits reached (modes, of 10).

  dcgan     task=generate's default DCGAN at batch 64: `make demo-generate`'s recipe
  r3gan     model=r3gan at batch 32 (the preset's CPU scale), data.flips=none: digits are not
            mirror-symmetric (R3GAN's --mirror=1 is a per-dataset flag; it mirrors CIFAR-10)

Budgets, each run one process with one thread, --jobs runs at a time:
  1. r3gan, --seeds seeds, as many steps as --minutes of training allow (a calibration run
     measures the step time first; evaluation time not counted). Its images seen are the
     equal-images budget.
  2. dcgan, the same seeds: trained to the same images seen and evaluated there, then resumed
     (the same run, bitwise as one; its rate is constant) to --minutes of its own training:
     the equal-wall-time point.
  3. r3gan on a 10% subset (the first tenth of the training images, the same held-out set),
     task.augment=[] against ADA's controller on ADA's bgc ops (task.ada_target=0.6), one
     seed each, --subset-minutes each.

Targets: at equal images R3GAN's mean FD below DCGAN's; on the subset ADA's FD at or below no
augmentation's. The equal-wall-time FDs are reported beside them with the winner, no target.
Every run's recipe, steps, images seen, seconds, scores at each evaluation and last grid
(EMA G, under --grids) are in the JSON.

    .venv/bin/python bench/quality_generate.py [--minutes 30] [--seeds 2] [--json bench/records/quality_generate.json]
    .venv/bin/python bench/quality_generate.py --quick     # a smoke run: 1 seed, seconds per run

`make quality-generate` runs it with the defaults: about 80 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from common import Row, finish, scalars, windows

COMMON = ["task=generate", "model.resolution=32", "data.loader_workers=0", "launcher.name=local",
          "trainer.num_workers=1", "eval.features=digits", "eval.samples=300"]
# ADA's controller on ADA's own ops (its 0.6 target was tuned for them), in place of model=r3gan's fixed ramp
ADA = ["task.augment=[bgc]", "task.augment_p=null", "task.augment_p_kimg=null", "task.augment_color_p=1",
       "task.ada_target=0.6", "task.ada_kimg=20"]
RECIPES = {  # name -> (shard set, batch, overrides)
    "dcgan": ("full", 64, ["data.batch_size=64"]),
    "r3gan": ("full", 32, ["model=r3gan", "data.batch_size=32", "data.flips=none"]),
    "r3gan_subset": ("subset", 32, ["model=r3gan", "data.batch_size=32", "data.flips=none", "task.augment=[]"]),
    "r3gan_subset_ada": ("subset", 32, ["model=r3gan", "data.batch_size=32", "data.flips=none", *ADA]),
}
SCORES = ("eval/fd_digits", "eval/precision_digits", "eval/recall_digits", "eval/modes")


def train_one(job: dict) -> dict:
    """One run in a worker process, one thread: its legs in turn on the same run directory
    (a later leg resumes the earlier one's last checkpoint); returns each leg's scores."""
    import torch

    torch.set_num_threads(1)
    from gandist.config import absolutize, compose_config
    from gandist.launchers.common import configure_logging
    from gandist.launchers.local import run_local

    configure_logging()
    legs = []
    for steps, every, label in job["legs"]:
        started = time.monotonic()
        summary = run_local(absolutize(compose_config(job["overrides"] + [
            f"trainer.max_steps={steps}", f"trainer.ckpt_every={steps}", f"eval.every={every}",
            f"trainer.image_every={steps}", f"trainer.log_every={max(1, min(25, steps // 5))}"])))
        legs.append({"steps": steps, "images_seen": steps * job["batch"], "seconds": round(time.monotonic() - started, 1),
                     "final": {tag: summary.metrics.get(tag) for tag in SCORES}})
        grid = os.path.join(summary.run_dir, "samples", f"samples_{steps:08d}.png")
        if job["grids"] and os.path.exists(grid):
            shutil.copy(grid, os.path.join(job["grids"], f"generate_{job['name']}_s{job['seed']}{label}.png"))
    step_s = statistics.median(windows(summary.log_dir, "perf/step_time_s", skip_windows=1))
    # augment/p and augment/rt: what ADA's controller did (its r_t, the share of positive D(real))
    curves = {tag: {str(k): v for k, v in sorted(scalars(summary.log_dir, tag).items())}
              for tag in SCORES + ("augment/p", "augment/rt")}
    return {"name": job["name"], "seed": job["seed"], "recipe": job["recipe"], "batch": job["batch"],
            "step_s": step_s, "legs": legs, "curves": curves}


def calibrate(pool: ProcessPoolExecutor, jobs: list[dict], steps: int) -> float:
    """The step time of one recipe with --jobs runs beside each other (as the real runs will
    be): the slowest of the calibration runs, so every seed gets the same steps."""
    probes = [{**j, "legs": [(steps, 10 ** 9, "")], "grids": None,
               "overrides": [o.replace("run.name=", "run.name=calibrate-") for o in j["overrides"]]} for j in jobs]
    return max(r["step_s"] for r in pool.map(train_one, probes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="R3GAN's training time: the images budget")
    parser.add_argument("--subset-minutes", type=float, default=10.0, help="training time of each subset run")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--subset", type=float, default=0.1, help="fraction of the training images in the subset")
    parser.add_argument("--evals", type=int, default=4, help="evaluations per run (the last at the end)")
    parser.add_argument("--calibrate", type=int, default=50, help="steps of each calibration run")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 0.2 minutes, 10-step calibration")
    parser.add_argument("--json", default=None, help="also write the table and every run to this file")
    parser.add_argument("--grids", default=None, help="copy each run's last sample grid (EMA G) to this folder")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.minutes, args.subset_minutes, args.calibrate = 1, 0.2, 0.1, 10

    import torch

    from gandist.data.shards import write_shard_set
    from gandist.metrics.digits_judge import judge_path, load_judge
    from gandist.metrics.judges import saved_accuracy

    began = time.monotonic()
    load_judge(torch.device("cpu"))  # trained now if this machine has none: not inside a run's time
    judge_accuracy = saved_accuracy(judge_path())
    print(f"digits judge, held-out accuracy: {judge_accuracy}", flush=True)
    if args.grids:
        os.makedirs(args.grids, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, \
            ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        data = {"full": os.path.join(tmp, "full"), "subset": os.path.join(tmp, "subset")}
        images = write_shard_set("builtin:digits", data["full"], heldout=300, shard_size=512, size=32,
                                 seed=0).samples("train")
        write_shard_set("builtin:digits", data["subset"], samples=max(64, round(images * args.subset)), heldout=300,
                        shard_size=512, size=32, seed=0)

        def jobs(name: str, seeds: range) -> list[dict]:
            subset, batch, overrides = RECIPES[name]
            recipe = COMMON + overrides
            return [{"name": name, "seed": s, "batch": batch, "recipe": recipe, "grids": args.grids,
                     "overrides": recipe + [f"data.url={data[subset]}", f"run.storage={tmp}/runs",
                                            f"run.name={name}-{s}", f"trainer.seed={s}"]} for s in seeds]

        def every(steps: int) -> int:
            return -(-steps // args.evals)  # ceil: --evals evaluations, the last at the end

        def report(run: dict) -> None:
            """Keep a finished run and print each leg's scores."""
            runs.append(run)
            for leg in run["legs"]:
                f = leg["final"]
                print(f"{run['name']} seed {run['seed']}: {leg['steps']} steps ({leg['images_seen']} images) in "
                      f"{leg['seconds']:.0f} s: FD {f['eval/fd_digits']:.1f}, precision {f['eval/precision_digits']:.3f}, "
                      f"recall {f['eval/recall_digits']:.3f}, digits {f['eval/modes']:.0f} "
                      f"({time.monotonic() - began:.0f} s so far)", flush=True)

        runs: list[dict] = []
        seeds = range(args.seeds)
        r3_step = calibrate(pool, jobs("r3gan", seeds), args.calibrate)
        r3_steps = max(args.evals, int(args.minutes * 60 / r3_step))
        budget = r3_steps * RECIPES["r3gan"][1]
        print(f"r3gan: {r3_step * 1000:.0f} ms a step: {r3_steps} steps, {budget} images in {args.minutes} minutes",
              flush=True)
        for run in pool.map(train_one, [{**j, "legs": [(r3_steps, every(r3_steps), "")]} for j in jobs("r3gan", seeds)]):
            report(run)

        dc_step = calibrate(pool, jobs("dcgan", seeds), args.calibrate)
        dc_equal = max(1, round(budget / RECIPES["dcgan"][1]))
        dc_wall = max(dc_equal + 1, int(args.minutes * 60 / dc_step))
        print(f"dcgan: {dc_step * 1000:.0f} ms a step: {dc_equal} steps for {dc_equal * 64} images, {dc_wall} steps "
              f"in {args.minutes} minutes", flush=True)
        for run in pool.map(train_one, [{**j, "legs": [(dc_equal, dc_equal, "_equal_images"),
                                                                  (dc_wall, every(dc_wall), "")]}
                                        for j in jobs("dcgan", seeds)]):
            report(run)

        subset_jobs = jobs("r3gan_subset", range(1)) + jobs("r3gan_subset_ada", range(1))
        sub_step = calibrate(pool, subset_jobs, args.calibrate)
        sub_steps = max(args.evals, int(args.subset_minutes * 60 / sub_step))
        for run in pool.map(train_one, [{**j, "legs": [(sub_steps, every(sub_steps), "")]} for j in subset_jobs]):
            report(run)

    def mean(name: str, leg: int, tag: str = "eval/fd_digits") -> float:
        return statistics.mean(r["legs"][leg]["final"][tag] for r in runs if r["name"] == name)

    rows = [Row("generate: R3GAN / DCGAN FD(digits), equal images", mean("r3gan", 0), mean("dcgan", 0),
                mean("r3gan", 0) / mean("dcgan", 0), "< 1", "FD"),
            Row("generate: R3GAN / DCGAN FD(digits), equal wall time", mean("r3gan", 0), mean("dcgan", 1),
                mean("r3gan", 0) / mean("dcgan", 1), "report", "FD"),
            Row("generate: R3GAN on 10%, ADA / none FD(digits)", mean("r3gan_subset_ada", 0),
                mean("r3gan_subset", 0), mean("r3gan_subset_ada", 0) / mean("r3gan_subset", 0), "<= 1", "FD")]
    for budget_name, dc_leg in (("equal images", 0), ("equal wall time", 1)):
        winner = "R3GAN" if mean("r3gan", 0) < mean("dcgan", dc_leg) else "DCGAN"
        print(f"{budget_name}: {winner} wins (mean FD R3GAN {mean('r3gan', 0):.1f}, DCGAN {mean('dcgan', dc_leg):.1f})")
    return finish(rows, args.json, runs=runs, judge_accuracy=judge_accuracy, minutes=args.minutes,
                  subset_minutes=args.subset_minutes, seeds=args.seeds, jobs=args.jobs, training_images=images, quick=args.quick,
                  seconds=round(time.monotonic() - began))


if __name__ == "__main__":
    sys.exit(main())
