"""Goodput: the share of a run's wall time that became new training steps, with one worker
killed mid-run, for trainer.ckpt_every=auto against the demo's fixed interval.

Both runs are the `make demo` recipe (task=segment trainer=demo: 2 Ray workers, 32-pixel
shapes) with faults.kill_rank=1 at the same step and trainer.max_failures=1, so Ray Train
restarts the workers once and they replay from the last checkpoint. The figures are read
from each run's goodput ledger (<run dir>/goodput.json, what `gandist report` prints):
productive steps over all time from the launch, start-up included.

The auto run's MTBF is the failure rate this benchmark imposes (one kill per run of about
--steps steps, on 2 workers: trainer.mtbf_hours = 2 x the expected run time), so Young-Daly
weighs the stall against the replay a failure here really costs.

    .venv/bin/python bench/goodput.py [--steps 500] [--kill-at 300] [--fixed-every 125]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

from common import Row, finish

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GANDIST = os.path.join(os.path.dirname(sys.executable), "gandist")


def train(data: str, storage: str, name: str, steps: int, kill_at: int, every: str, mtbf_hours: float) -> dict:
    """One demo-recipe run with one kill; its ledger."""
    from gandist.ledger import load_ledger

    argv = [GANDIST, "train", "task=segment", "trainer=demo", f"data.url={data}", f"run.storage={storage}",
            f"run.name={name}", f"trainer.max_steps={steps}", f"trainer.ckpt_every={every}",
            f"trainer.mtbf_hours={mtbf_hours}", "faults.kill_rank=1", f"faults.at_step={kill_at}",
            "trainer.max_failures=1", f"eval.every={steps}", f"trainer.image_every={steps}"]
    print(f"goodput: {name}: {' '.join(argv[2:])}", flush=True)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{name} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}")
    report = subprocess.run([GANDIST, "report", os.path.join(storage, name)], capture_output=True, text=True)
    print(report.stdout, flush=True)
    ledger = load_ledger(os.path.join(storage, name))
    return {"fraction": ledger.fraction, "total_s": ledger.total_s, "parts": dict(ledger.parts),
            "checkpoints": ledger.checkpoints, "interval": ledger.ckpt_interval, "report": report.stdout,
            "steps_lost": sum(ledger.steps_lost(a.index) for a in ledger.attempts)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500, help="trainer.max_steps of each run (the demo's: 500)")
    parser.add_argument("--kill-at", type=int, default=None, help="the step rank 1 is killed after (default 60%%)")
    parser.add_argument("--fixed-every", type=int, default=125, help="the fixed run's trainer.ckpt_every (the demo's)")
    parser.add_argument("--run-minutes", type=float, default=5.0,
                        help="expected length of one run, for the imposed MTBF (default 5: the demo on 2 cores)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    kill_at = args.kill_at or int(args.steps * 0.6)
    mtbf_hours = 2 * args.run_minutes / 60  # one failure per run, on 2 workers: per worker twice that

    from gandist.data.shards import write_shard_set

    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "shapes32")
        write_shard_set("builtin:shapes", data, samples=8192, heldout=512, shard_size=1024, size=32, seed=0)  # make demo's set
        storage = os.path.join(tmp, "store")
        runs["auto"] = train(data, storage, "goodput-auto", args.steps, kill_at, "auto", mtbf_hours)
        runs["fixed"] = train(data, storage, "goodput-fixed", args.steps, kill_at, str(args.fixed_every), mtbf_hours)

    for name, run in runs.items():
        parts = ", ".join(f"{p} {s:.1f} s" for p, s in run["parts"].items() if s > 0.05)
        print(f"{name}: goodput {run['fraction']:.3f} of {run['total_s']:.0f} s; {run['checkpoints']} checkpoints, "
              f"{run['steps_lost']} steps lost; {parts}")
    auto, fixed = runs["auto"]["fraction"], runs["fixed"]["fraction"]
    rows = [Row("goodput: ckpt_every=auto, 1 kill (2 workers)", auto, None, auto, ">= 0.90"),
            Row(f"goodput: auto vs ckpt_every={args.fixed_every}, 1 kill", auto, fixed, auto / fixed, "report")]
    return finish(rows, args.json, runs=runs, steps=args.steps, kill_at=kill_at, mtbf_hours=mtbf_hours)


if __name__ == "__main__":
    sys.exit(main())
