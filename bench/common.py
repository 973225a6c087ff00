"""What the benchmarks share: the result row and its target, the table, TensorBoard
scalars of a finished run, a quality run of a set wall time, the demo shard set, and the JSON
file each one writes."""

from __future__ import annotations

import contextlib
import json
import operator
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional

# One S3 API server starter for the tests and the benchmarks: tests/helpers.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from helpers import environ, s3_api_server  # noqa: E402

OPS = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt}


@dataclass
class Row:
    """One figure: ours against the reference measured in the same run, and the target the
    ratio must meet (e.g. ">= 0.97"; "report" for figures without one)."""

    benchmark: str
    ours: float
    reference: Optional[float]
    ratio: float
    target: str
    unit: str = ""

    @property
    def met(self) -> Optional[bool]:
        if self.target == "report":
            return None
        op, value = self.target.split()
        return OPS[op](self.ratio, float(value))

    @property
    def verdict(self) -> str:
        """"met", "missed by <how much>" (the ratio's distance from the target) or "-"."""
        if self.met is None:
            return "-"
        return "met" if self.met else f"missed by {abs(self.ratio - float(self.target.split()[1])):.3g}"


def print_table(rows: list[Row]) -> None:
    print(f"{'benchmark':<50} {'ours':>10} {'reference':>10} {'ratio':>7} {'target':>8}  verdict")
    for r in rows:
        ref = "-" if r.reference is None else f"{r.reference:.4g}"
        print(f"{r.benchmark:<50} {r.ours:>10.4g} {ref:>10} {r.ratio:>7.3f} {r.target:>8}  {r.verdict}")


def finish(rows: list[Row], json_path: Optional[str], **details: Any) -> int:
    """Print the table; write rows and details to ``json_path``. Exit status 0 either way:
    a missed target is a figure to report, not a crash."""
    print_table(rows)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"rows": [{**asdict(r), "met": r.met, "verdict": r.verdict} for r in rows], **details}, f, indent=2)
    return 0


def scalars(log_dir: str, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)} if tag in acc.Tags()["scalars"] else {}


def windows(log_dir: str, tag: str, skip_windows: int = 1) -> list[float]:
    """A per-window scalar (e.g. perf/step_time_s) after the first windows, which hold
    start-up (first batches, allocator warm-up, DDP's first bucket rebuild)."""
    values = [v for _, v in sorted(scalars(log_dir, tag).items())][skip_windows:]
    if not values:
        raise RuntimeError(f"no {tag} windows after the first {skip_windows} in {log_dir}: run more steps")
    return values


def steady(log_dir: str, tag: str, skip_windows: int = 1) -> float:
    """Median of the windows after start-up: one window slowed by something else on the
    machine does not move the figure."""
    return statistics.median(windows(log_dir, tag, skip_windows))


def same_wall_time_run(cfg: Callable[[int, int, list[str]], Any], minutes: float, evals: int, calibrate: int
                       ) -> tuple[Any, int, float, float]:
    """A quality run given ``minutes`` of training: a ``calibrate``-step run (no evaluation)
    measures the step time, then the run takes as many steps as fit, with ``evals``
    evaluations, the last at the end, and one sample grid at the end. ``cfg(steps,
    eval_every, extra overrides)`` builds each config. Returns (summary, steps, step time,
    seconds the run took)."""
    from gandist.launchers.local import run_local

    probe = run_local(cfg(calibrate, 10 ** 9, ["trainer.log_every=5", "trainer.image_every=100000"]))
    step_s = statistics.median(windows(probe.log_dir, "perf/step_time_s"))
    steps = max(evals, int(minutes * 60 / step_s))
    started = time.monotonic()
    every = -(-steps // evals)  # ceil: `evals` evaluations, the last at the end
    summary = run_local(cfg(steps, every, ["trainer.log_every=50", f"trainer.image_every={steps}"]))
    return summary, steps, step_s, time.monotonic() - started


# The benchmarks' model: pix2pix segmentation at 64x64, widths 32, batch 16 per worker (the
# `make demo` model when the figures on record were first taken; the demo now trains task=segment's
# default U-Net at 32 pixels). Kept, so that new figures compare with the recorded ones.
DEMO = ["task=segment", "model=pix2pix", "model.resolution=64", "model.g_width=32", "model.d_width=32",
        "data.batch_size=16"]


def demo_shards(root: str, samples: int = 1024) -> str:
    """A builtin:shapes shard set for the demo model under ``root``."""
    from gandist.data.shards import write_shard_set

    url = os.path.join(root, "shapes")
    write_shard_set("builtin:shapes", url, samples=samples, heldout=64, shard_size=256)
    return url


def start_s3_server() -> contextlib.ExitStack:
    """A local S3 API server with this process (and the processes it starts) pointed at it
    through the AWS_* variables; ``.close()`` stops it and restores the variables."""
    stack = contextlib.ExitStack()
    stack.enter_context(environ(stack.enter_context(s3_api_server(key="bench", secret="bench"))))
    return stack
