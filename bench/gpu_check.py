"""The GPU check: what the CPU tests cannot see, run on a machine with CUDA (`make gpu-check`).

Runs, each a real `gandist train` under Ray on builtin shapes (64 px, task=segment's U-Net):
  1. one GPU, trainer.amp=auto (bf16 where native), channels-last on: images/s, peak memory
  2. every visible GPU, trainer.amp=fp16: images/s, peak memory per GPU, loss scales
  3. a worker killed after step 20 and recovered (trainer.max_failures=1), against the same
     run uninterrupted: bitwise equal, or the largest weight difference reported
  4. a checkpoint written on the CPU resumed on a GPU (channels-last, fused Adam)
  5. trainer.compile=true on one GPU
Prints one table and writes the figures as JSON (--json). Without CUDA it says so and exits
0 (or 1 with --require-gpu). Budget: under 8 minutes on one H200.

    .venv/bin/python bench/gpu_check.py [--steps 60] [--json bench/gpu_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def weights_diff(a: str, b: str) -> float:
    """The largest absolute difference between two checkpoints' G, D and EMA G."""
    from gandist.ckpt import find_latest_checkpoint, load_checkpoint

    sa, sb = (load_checkpoint(find_latest_checkpoint(p))["state"] for p in (a, b))
    worst = 0.0
    for net in ("G", "D", "G_ema"):
        for key, value in sa[net].items():
            if value.is_floating_point():
                worst = max(worst, (value.float() - sb[net][key].float()).abs().max().item())
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="steps of the throughput runs")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--require-gpu", action="store_true", help="exit 1 when no CUDA device is visible")
    args = parser.parse_args()
    import torch  # after the arguments: --help answers without loading it

    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA device visible (torch {torch.__version__}, CUDA build "
              f"{torch.version.cuda or 'none'}): nothing was run. Run it on a GPU node.")
        return 1 if args.require_gpu else 0

    from common import scalars

    from gandist.config import absolutize, compose_config
    from gandist.data.shards import write_shard_set
    from gandist.launchers.common import configure_logging
    from gandist.launchers.local import run_local
    from gandist.launchers.ray_launcher import run_ray

    configure_logging()
    gpus = torch.cuda.device_count()
    figures: dict[str, object] = {"gpu": torch.cuda.get_device_name(0), "gpus": gpus, "torch": torch.__version__}
    rows: list[tuple[str, str]] = []
    began = time.monotonic()
    # Deterministic cuBLAS, so a recovered run can end bitwise equal to an uninterrupted one.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "shapes")
        write_shard_set("builtin:shapes", data, samples=2048, heldout=128, shard_size=256, size=64, seed=0)

        def config(name: str, *extra: str):
            return absolutize(compose_config([
                "task=segment", f"data.url={data}", f"run.storage={tmp}/runs", f"run.name={name}",
                "data.batch_size=32", "data.loader_workers=2", "trainer.use_gpu=true", "trainer.log_every=10",
                "trainer.image_every=1000", "eval.every=1000", "eval.batches=2", *extra]))

        def throughput(name: str, *extra: str) -> dict[str, float]:
            summary = run_ray(config(name, f"trainer.max_steps={args.steps}", f"trainer.ckpt_every={args.steps}",
                                     *extra))
            rate = scalars(summary.log_dir, "perf/images_per_s")
            mem = scalars(summary.log_dir, "perf/gpu_mem_peak_gb")
            steady = [v for s, v in sorted(rate.items()) if s > 10]  # after warm-up
            return {"images_per_s": sum(steady) / max(len(steady), 1), "peak_gb_per_gpu": max(mem.values()),
                    "loss/G": summary.metrics.get("loss/G", float("nan"))}

        one = throughput("one-bf16", "trainer.num_workers=1", "trainer.amp=auto", "trainer.channels_last=true")
        figures["one_gpu_auto_amp"] = one
        rows.append(("1 GPU, amp=auto, channels-last", f"{one['images_per_s']:.0f} img/s, "
                                                         f"{one['peak_gb_per_gpu']:.2f} GB peak"))
        many = throughput("many-fp16", f"trainer.num_workers={gpus}", "trainer.amp=fp16")
        figures["all_gpus_fp16"] = many
        rows.append((f"{gpus} GPUs, amp=fp16", f"{many['images_per_s']:.0f} img/s, "
                                                f"{many['peak_gb_per_gpu']:.2f} GB peak per GPU"))

        drill = ["trainer.num_workers=1", "trainer.max_steps=40", "trainer.ckpt_every=10", "trainer.amp=bf16",
                 "model.dropout=0", "trainer.cudnn_benchmark=false"]  # no timing-dependent algorithm choice
        run_ray(config("clean", *drill))
        run_ray(config("killed", *drill, "faults.kill_rank=0", "faults.at_step=25", "trainer.max_failures=1"))
        diff = weights_diff(f"{tmp}/runs/clean", f"{tmp}/runs/killed")
        figures["kill_recovery_max_weight_diff"] = diff
        rows.append(("killed at step 25, recovered", "bitwise equal" if diff == 0 else f"max |diff| {diff:.3g}"))

        cpu = config("cpu-then-gpu", "launcher.name=local", "trainer.num_workers=1", "trainer.use_gpu=false",
                     "trainer.max_steps=4", "trainer.ckpt_every=4")
        run_local(cpu)
        resumed = config("cpu-then-gpu", "launcher.name=local", "trainer.num_workers=1", "trainer.max_steps=8",
                         "trainer.ckpt_every=4", "trainer.channels_last=true")
        step = run_local(resumed).step
        figures["cpu_checkpoint_resumed_on_gpu_to_step"] = step
        rows.append(("CPU checkpoint resumed on a GPU", f"reached step {step}" if step == 8 else f"FAILED at {step}"))

        started = time.monotonic()
        compiled = throughput("compiled", "trainer.num_workers=1", "trainer.compile=true")
        compiled["wall_s"] = time.monotonic() - started
        figures["one_gpu_compiled"] = compiled
        rows.append(("1 GPU, torch.compile", f"{compiled['images_per_s']:.0f} img/s after compiling "
                                              f"({compiled['wall_s']:.0f} s in all)"))

    figures["seconds"] = time.monotonic() - began
    width = max(len(name) for name, _ in rows)
    print(f"\ngpu-check on {figures['gpus']} x {figures['gpu']} ({figures['seconds']:.0f} s)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return 0 if step == 8 else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
