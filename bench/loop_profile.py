"""What gandist's training loop costs per step, call by call (issue 36, item 5).

The loop benchmark's setup (bench/loop.py: the demo model, the same in-memory batches, each
fetch first running one step of the hand-written loop), with a wall-clock timer around each
call the loop makes every step and at its log intervals. After ``--warmup`` steps the
timers start; ``--steps`` steps are then measured. The table gives each call's host time
per step (on a CPU device that is its whole cost: the work runs in the call), the loop
body's time per step (from receiving a batch to asking for the next, the hand-written
step left out) and the hand-written step's, for scale. Nested calls are indented under
their caller; "the rest of the loop" is the body less its top-level calls.

    .venv/bin/python bench/loop_profile.py [--steps 200] [--warmup 20] [--cprofile 25]
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib
import itertools
import sys
import tempfile
import time

import torch

from common import DEMO, demo_shards
from loop import PlainLoop, in_memory_batches

# (label, depth, "module:attribute" or "module:Class.method"); a label is timed wherever it
# is found (the loop's helpers may live in loop.py or run.py), missing ones are skipped.
CALLS = [
    ("to_device", 0, ["gandist.train.loop:to_device", "gandist.train.run:to_device"]),
    ("augment", 0, ["gandist.train.loop:augment", "gandist.train.run:augment"]),
    ("apply_lr", 0, ["gandist.train.loop:apply_lr", "gandist.train.run:apply_lr"]),
    ("augmenter.follow", 0, ["gandist.train.diffaugment:Augmenter.follow"]),
    ("run_step", 0, ["gandist.train.loop:run_step", "gandist.train.run:run_step"]),
    ("grad_norm", 1, ["gandist.train.phases:grad_norm"]),
    ("optimizer_step", 1, ["gandist.train.phases:optimizer_step"]),
    ("agree_on_step", 1, ["gandist.train.phases:agree_on_step"]),
    ("set_requires_grad", 1, ["gandist.train.phases:set_requires_grad"]),
    ("ada.observe", 0, ["gandist.train.diffaugment:AdaController.observe"]),
    ("ada.maybe_adjust", 0, ["gandist.train.diffaugment:AdaController.maybe_adjust"]),
    ("watch.record_step", 0, ["gandist.train.collapse:CollapseWatch.record_step"]),
    ("schedule_stats", 0, ["gandist.train.loop:schedule_stats", "gandist.train.run:schedule_stats"]),
    ("stats.add", 0, ["gandist.train.stats:Stats.add"]),
    ("stats.add_host", 0, ["gandist.train.stats:Stats.add_host"]),
    ("ema_beta_at", 0, ["gandist.train.loop:ema_beta_at", "gandist.train.run:ema_beta_at"]),
    ("update_ema", 0, ["gandist.train.ema:EmaUpdater.__call__"]),
    ("clock.step_done", 0, ["gandist.train.goodput:GoodputClock.step_done"]),
    ("clock.charge", 0, ["gandist.train.goodput:GoodputClock.charge"]),
    ("log interval: throughput.reduce", 0, ["gandist.train.progress:Throughput.reduce"]),
    ("log interval: clock.values", 0, ["gandist.train.goodput:GoodputClock.values"]),
    ("log interval: monitor.scalars", 0, ["gandist.monitor:TensorBoardMonitor.scalars"]),
    ("log interval: log_progress", 0, ["gandist.train.loop:log_progress", "gandist.train.run:log_progress"]),
    ("log interval: clock.heartbeat", 0, ["gandist.train.goodput:GoodputClock.heartbeat"]),
    ("log interval: watch.observe_log", 0, ["gandist.train.collapse:CollapseWatch.observe_log"]),
]

TIMES: dict[str, float] = collections.defaultdict(float)
COUNTS: collections.Counter = collections.Counter()
ACTIVE = [False]


def timer(label: str, fn):
    @functools.wraps(fn)
    def timed(*args, **kwargs):
        if not ACTIVE[0]:
            return fn(*args, **kwargs)
        began = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - began
            COUNTS[label] += 1
    return timed


def install() -> list[str]:
    """Wrap every call found; returns the labels found."""
    found = []
    for label, _, targets in CALLS:
        for target in targets:
            module_name, attr = target.split(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            owner, name = module, attr
            if "." in attr:
                cls, name = attr.split(".")
                owner = getattr(module, cls, None)
            if owner is None or name not in vars(owner):
                continue
            setattr(owner, name, timer(label, vars(owner)[name]))
            if label not in found:
                found.append(label)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--cprofile", type=int, default=0, help="also print cProfile's top N functions by own time")
    args = parser.parse_args()

    import gandist.train.loop as loop
    from gandist.config import absolutize, compose_config
    from gandist.data.manifest import Manifest
    from gandist.launchers.local import run_local

    found = install()
    total = args.warmup + args.steps
    from gandist.train.goodput import GoodputClock

    step_done = GoodputClock.step_done

    def last_step_done(self, step: int) -> None:  # the last step's evaluation and checkpoint are left out
        step_done(self, step)
        if step >= total:
            ACTIVE[0] = False

    GoodputClock.step_done = last_step_done
    body, plain_s, state = [0.0], [0.0], {"n": 0, "left": None}
    profiler = None
    if args.cprofile:
        import cProfile
        profiler = cProfile.Profile()

    with tempfile.TemporaryDirectory() as tmp:
        data = demo_shards(tmp, samples=512)
        batches = in_memory_batches(data, batch_size=compose_config(DEMO).data.batch_size, count=16)
        num_classes = len(Manifest.load(data).classes)
        cfg = absolutize(compose_config(DEMO + [
            f"data.url={data}", f"run.storage={tmp}/runs", "run.name=profile", "launcher.name=local",
            "trainer.num_workers=1", f"trainer.max_steps={total}", f"trainer.log_every={args.log_every}",
            *(f"{key}={total}" for key in ("trainer.ckpt_every", "trainer.image_every", "eval.every"))]))
        plain = PlainLoop(cfg, num_classes)

        def memory_batches(*_args, **_kwargs):
            for batch in itertools.cycle(batches):
                if state["n"] == args.warmup:
                    ACTIVE[0] = True
                    if profiler is not None:
                        profiler.enable()
                if ACTIVE[0]:
                    plain_s[0] += plain.step(batch)
                else:
                    plain.step(batch)
                state["n"] += 1
                left = time.perf_counter() if ACTIVE[0] else None
                yield batch
                if left is not None:  # the loop body, from handing over this batch to asking for the next
                    body[0] += time.perf_counter() - left

        real = loop.training_batches
        loop.training_batches = memory_batches
        try:
            run_local(cfg)
        finally:
            loop.training_batches = real
            ACTIVE[0] = False
            if profiler is not None:
                profiler.disable()

    steps = args.steps
    print(f"{steps} steps after {args.warmup} of warm-up, log every {args.log_every}; torch threads "
          f"{torch.get_num_threads()}; times are per step (a call made every 10th step shows a tenth)")
    print(f"{'call':<36} {'calls/step':>10} {'us/call':>9} {'us/step':>9} {'% of body':>9}")
    top = 0.0
    # The last step's body is not closed by a next fetch: count the steps whose body was timed.
    timed_steps = steps - 1
    per_step = body[0] / timed_steps
    for label, depth, _ in CALLS:
        if label not in found or not COUNTS[label]:
            continue
        # the log-interval calls of the last step are left out with its evaluation: per call / log_every
        us_step = (TIMES[label] / COUNTS[label] / args.log_every if label.startswith("log interval")
                   else TIMES[label] / steps) * 1e6
        calls = 1 / args.log_every if label.startswith("log interval") else COUNTS[label] / steps
        if depth == 0 and label != "clock.charge":  # charge runs inside step_done and the batches' wrapper
            top += us_step * 1e-6 * steps
        name = "  " * depth + label
        print(f"{name:<36} {calls:>10.2f} {TIMES[label] / COUNTS[label] * 1e6:>9.1f} "
              f"{us_step:>9.1f} {100 * us_step / (per_step * 1e6):>8.2f}%")
    rest = body[0] - top * timed_steps / steps
    print(f"{'the rest of the loop':<36} {'':>10} {'':>9} {rest / timed_steps * 1e6:>9.1f} "
          f"{100 * rest / body[0]:>8.2f}%")
    print(f"{'loop body (gandist step)':<36} {'':>10} {'':>9} {per_step * 1e6:>9.1f} {100:>8.2f}%")
    print(f"{'hand-written step (reference)':<36} {'':>10} {'':>9} {plain_s[0] / steps * 1e6:>9.1f}")
    print(f"body / hand-written: {per_step / (plain_s[0] / steps):.3f}")
    if profiler is not None:
        import pstats
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
