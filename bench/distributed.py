"""Ray Train overhead, scaling and data wait, on the demo model with 2 workers on this machine.

- Ray Train vs torchrun: the same 2-process DDP run (same fit loop, gloo, shards on local
  disk, one loader process per worker) launched by Ray Train and by torchrun, alternating;
  the figure is the steady-state step time under Ray over that under torchrun, minus one
  (target: an overhead of at most 3%). Rounds run them in ABBA order (Ray first, then
  torchrun first) and the figure compares the medians of all their windows after start-up:
  on a shared machine step times drift by several percent within minutes.
- The same with 1 worker each, which leaves a core for Ray's own processes (GCS, raylet,
  agents, the Train controller): on 2 cores the 2-worker runs have none to spare, so that
  figure also holds Ray's processes competing for the cores torchrun has to itself.
- Scaling: images per second of 2 Ray workers over twice that of 1, reported as efficiency.
  On a 2-core machine the two workers also share the cores with their loader processes and
  the Ray processes, so this is a floor, not what separate GPUs would give.
- Data wait: the fraction of step time the 2-worker runs spent waiting for batches
  (perf/data_wait_frac, mean over ranks; target: under 5%).

Step times are TensorBoard's perf/step_time_s windows after the first (start-up).

    .venv/bin/python bench/distributed.py [--steps 40] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

from common import DEMO, Row, demo_shards, finish, steady, windows


def overrides(data: str, storage: str, name: str, launcher: str, workers: int, steps: int, log_every: int) -> list[str]:
    return DEMO + [f"data.url={data}", f"run.storage={storage}", f"run.name={name}", f"launcher.name={launcher}",
                   f"trainer.num_workers={workers}", f"trainer.max_steps={steps}", f"trainer.log_every={log_every}",
                   "data.loader_workers=1",
                   *(f"{key}={steps}" for key in ("trainer.ckpt_every", "trainer.image_every", "eval.every"))]


def run_ray(args_: list[str]) -> str:
    from gandist.config import absolutize, compose_config
    from gandist.launchers.ray_launcher import run_ray as launch

    return launch(absolutize(compose_config(args_))).log_dir


def run_torchrun(args_: list[str], workers: int) -> str:
    from gandist.config import absolutize, compose_config
    from gandist.launchers.common import log_dir

    # One thread per worker, as Ray gives a 1-CPU worker (torchrun sets it only for 2 or more).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(workers),
           "-m", "gandist.cli", "train", *args_]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"torchrun failed:\n{done.stderr[-3000:]}")
    return log_dir(absolutize(compose_config(args_)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--log-every", type=int, default=10, help="the first window is warm-up, left out")
    parser.add_argument("--rounds", type=int, default=2, help="even: each order (Ray first, torchrun first) as often")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    import ray

    step: dict[str, list[float]] = {"ray2": [], "torchrun2": [], "ray1": [], "torchrun1": []}
    wait: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = demo_shards(tmp, samples=2048)  # no epoch boundary (a loader restart) within a run
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        try:
            for r in range(args.rounds):  # ABBA: drift on a shared machine hits both alike
                for workers in (2, 1):
                    for launcher in (("ray", "torchrun") if r % 2 == 0 else ("torchrun", "ray")):
                        args_ = overrides(data, tmp, f"{launcher}{workers}-{r}", launcher, workers, args.steps,
                                          args.log_every)
                        log = run_ray(args_) if launcher == "ray" else run_torchrun(args_, workers)
                        step[f"{launcher}{workers}"] += windows(log, "perf/step_time_s")
                        if launcher == "ray" and workers == 2:
                            wait.append(steady(log, "perf/data_wait_frac"))
        finally:
            ray.shutdown()

    from gandist.config import compose_config

    ray_t, torchrun_t, one_t, torchrun_one_t = (statistics.median(step[k])
                                                for k in ("ray2", "torchrun2", "ray1", "torchrun1"))
    batch = compose_config(DEMO).data.batch_size
    two_ips, one_ips = 2 * batch / ray_t, batch / one_t
    rows = [
        Row("ray: step time, Ray Train vs torchrun, overhead", ray_t, torchrun_t, ray_t / torchrun_t - 1, "<= 0.03", "s"),
        Row("ray: the same, 1 worker (a core to spare)", one_t, torchrun_one_t, one_t / torchrun_one_t - 1,
            "<= 0.03", "s"),
        Row("scaling: 2 vs 1 CPU worker, efficiency (img/s)", two_ips, 2 * one_ips, two_ips / (2 * one_ips), "report"),
        Row("data: wait fraction of step time (2 workers)", statistics.mean(wait), None, statistics.mean(wait), "< 0.05"),
    ]
    print(f"{args.rounds} rounds of {args.steps} steps (windows of {args.log_every}, the first left out), demo model, "
          f"2 workers on {os.cpu_count()} cores")
    return finish(rows, args.json, step_time_s=step, data_wait_frac=wait)


if __name__ == "__main__":
    sys.exit(main())
