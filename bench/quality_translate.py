"""Translation quality, side by side in one run: pix2pix (L1 + conditional GAN) against its
L1-only baseline for the same wall time, translating builtin:shapes label maps to photos.

The data is `gandist shard builtin:shapes --pairs image` at 32x32 (A: the mask as a coloured
label map, B: the photo); the same images as plain shards train the segmenter that scores
the translations (eval.segmenter: the `make demo` segment recipe, gandist's U-Net, trained
once here for --seg-steps steps in one process). Every run is one process on this machine, batch 32, pix2pix's U-Net and
PatchGAN at --width channels; each run gets as many steps as fit in --minutes of training (a
short calibration run measures its step time; evaluation time not counted).

  l1        task=translate task.adv_weight=0 (L1 only: D neither run nor trained)
  pix2pix   task=translate (L1 x 100 + the adversarial term, pix2pix's recipe)

Scores on the held-out pairs at each evaluation: L1, PSNR, SSIM against the true photo; the
Fréchet distance of the generated photos on the shapes judge's features (eval.features=shapes,
against the true held-out photos); and the segmenter's mIoU on the generated photos against the
true masks (the pix2pix paper's FCN-score), beside its mIoU on the true photos (the ceiling).

Targets (the pix2pix paper's claim: the adversarial term makes outputs sharper and more real
than L1 alone, at some cost in per-pixel error): pix2pix's final FD below the baseline's, and
its segmenter mIoU at or above it. L1, PSNR and SSIM are reported, without a target.

    .venv/bin/python bench/quality_translate.py [--minutes 3] [--json bench/quality_translate.json]

`make quality-translate` runs it with the defaults: about 12 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

from common import Row, finish, same_wall_time_run, scalars

COMMON = ["task=translate", "model.resolution=32", "data.batch_size=32", "data.loader_workers=0",
          "launcher.name=local", "trainer.num_workers=1", "eval.features=shapes", "eval.batches=0"]
RUNS = {"l1": ["task.adv_weight=0"], "pix2pix": []}
SCORES = ("eval/l1", "eval/psnr", "eval/ssim", "eval/fd_shapes", "eval/seg_miou", "eval/seg_miou_real")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=15.0, help="training time of each translation run")
    parser.add_argument("--samples", type=int, default=4096, help="training pairs")
    parser.add_argument("--heldout", type=int, default=512, help="held-out pairs scored at each evaluation")
    parser.add_argument("--width", type=int, default=32, help="model.g_width and model.d_width")
    parser.add_argument("--seg-steps", type=int, default=500, help="steps of the segmenter that scores the photos")
    parser.add_argument("--evals", type=int, default=4, help="evaluations per run (the last at the end)")
    parser.add_argument("--calibrate", type=int, default=20, help="steps of each calibration run")
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated subset of " + ", ".join(RUNS))
    parser.add_argument("--json", default=None, help="also write the table to this file")
    parser.add_argument("--grids", default=None, help="copy each run's last A | true B | generated B grid here")
    args = parser.parse_args()

    import torch

    from gandist.config import absolutize, compose_config
    from gandist.data.shards import write_shard_set
    from gandist.launchers.common import configure_logging
    from gandist.launchers.local import run_local
    from gandist.metrics.shapes_judge import load_judge

    configure_logging()
    began = time.monotonic()
    load_judge(torch.device("cpu"))  # trained now if this machine has none: not inside a run's time
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        photos, pairs = os.path.join(tmp, "photos"), os.path.join(tmp, "pairs")
        for url, extra in ((photos, {}), (pairs, {"pairs": "image"})):  # the same images, seed 0
            write_shard_set("builtin:shapes", url, samples=args.samples, heldout=args.heldout, shard_size=512,
                            size=32, seed=0, **extra)
        segmenter = run_local(absolutize(compose_config([  # the `make demo` recipe, in one process
            "task=segment", "trainer=demo", "launcher.name=local", "trainer.num_workers=1", f"data.url={photos}",
            f"run.storage={tmp}/runs",
            "run.name=segmenter", f"trainer.max_steps={args.seg_steps}", f"trainer.ckpt_every={args.seg_steps}",
            f"eval.every={args.seg_steps}", "eval.batches=0", "trainer.log_every=100"])))
        seg_miou = segmenter.metrics["eval/miou"]
        print(f"segmenter: held-out mIoU {seg_miou:.3f} on the photos after {args.seg_steps} steps "
              f"({time.monotonic() - began:.0f} s so far)", flush=True)

        def cfg(name: str, steps: int, every: int, extra: list[str]):
            return absolutize(compose_config(COMMON + RUNS[name] + extra + [
                f"data.url={pairs}", f"run.storage={tmp}/runs", f"run.name={name}-{steps}",
                f"model.g_width={args.width}", f"model.d_width={args.width}", f"eval.segmenter={segmenter.run_dir}",
                f"trainer.max_steps={steps}", f"trainer.ckpt_every={steps}", f"eval.every={every}"]))

        for name in [n for n in args.only.split(",") if n]:
            summary, steps, step_s, seconds = same_wall_time_run(
                lambda *a: cfg(name, *a), args.minutes, args.evals, args.calibrate)
            if args.grids:
                os.makedirs(args.grids, exist_ok=True)
                shutil.copy(os.path.join(tmp, "runs", f"{name}-{steps}", "samples", f"samples_{steps:08d}.png"),
                            os.path.join(args.grids, f"translate_{name}.png"))
            curves = {tag: {str(k): v for k, v in sorted(scalars(summary.log_dir, tag).items())} for tag in SCORES}
            results[name] = {"overrides": RUNS[name], "step_s": step_s, "steps": steps,
                             "seconds": seconds,
                             "final": {tag: summary.metrics[tag] for tag in SCORES}, "curves": curves}
            final = results[name]["final"]
            print(f"{name}: {steps} steps at {step_s * 1000:.0f} ms: " + ", ".join(
                f"{tag.split('/')[1]} {final[tag]:.4g}" for tag in SCORES) +
                f" ({time.monotonic() - began:.0f} s so far)", flush=True)

    print(f"\n{'run':<10} {'steps':>6} " + " ".join(f"{t.split('/')[1]:>13}" for t in SCORES))
    for name, r in results.items():
        for step in r["curves"][SCORES[0]]:
            print(f"{name:<10} {step:>6} " + " ".join(f"{r['curves'][t].get(step, float('nan')):>13.4g}" for t in SCORES))
    rows = []
    if {"l1", "pix2pix"} <= set(results):
        gan, base = results["pix2pix"]["final"], results["l1"]["final"]
        rows.append(Row("translate: pix2pix / L1-only final FD(shapes), same wall time", gan["eval/fd_shapes"],
                        base["eval/fd_shapes"], gan["eval/fd_shapes"] / base["eval/fd_shapes"], "< 1", "FD"))
        rows.append(Row("translate: pix2pix - L1-only segmenter mIoU on the generated photos", gan["eval/seg_miou"],
                        base["eval/seg_miou"], gan["eval/seg_miou"] - base["eval/seg_miou"], ">= 0", "mIoU"))
    if "pix2pix" in results:  # issue 35: shapes where the label map says, against the segmenter's ceiling
        gan = results["pix2pix"]["final"]
        rows.append(Row("translate: pix2pix segmenter mIoU on the generated photos", gan["eval/seg_miou"],
                        gan["eval/seg_miou_real"], gan["eval/seg_miou"], ">= 0.5", "mIoU"))
    return finish(rows, args.json, runs=results, segmenter_miou=seg_miou, minutes=args.minutes, samples=args.samples,
                  heldout=args.heldout, width=args.width, common=COMMON, seconds=time.monotonic() - began)


if __name__ == "__main__":
    sys.exit(main())
