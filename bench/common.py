"""What the benchmarks share: the result row and its target, the table, TensorBoard
scalars of a finished run, the demo shard set, and the JSON file each one writes."""

from __future__ import annotations

import contextlib
import json
import operator
import os
import statistics
import sys
from dataclasses import asdict, dataclass
from typing import Any, Optional

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


def print_table(rows: list[Row]) -> None:
    print(f"{'benchmark':<50} {'ours':>10} {'reference':>10} {'ratio':>7} {'target':>8}  met")
    for r in rows:
        ref = "-" if r.reference is None else f"{r.reference:.4g}"
        met = {True: "yes", False: "NO", None: "-"}[r.met]
        print(f"{r.benchmark:<50} {r.ours:>10.4g} {ref:>10} {r.ratio:>7.3f} {r.target:>8}  {met}")


def finish(rows: list[Row], json_path: Optional[str], **details: Any) -> int:
    """Print the table; write rows and details to ``json_path``. Exit status 0 either way:
    a missed target is a figure to report, not a crash."""
    print_table(rows)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"rows": [{**asdict(r), "met": r.met} for r in rows], **details}, f, indent=2)
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


# The benchmarks' model: pix2pix segmentation at 64x64, widths 32, batch 16 per worker (the
# `make demo` model when the figures on record were first taken; the demo now trains task=segment's
# default U-Net at 32 pixels). Kept, so that new figures compare with the recorded ones.
DEMO = ["task=segment", "model=pix2pix", "model.resolution=64", "model.g_width=32", "model.d_width=32",
        "data.batch_size=16"]


def demo_shards(root: str, samples: int = 1024) -> str:
    """A builtin:shapes shard set for the demo model under ``root``."""
    from gandist.data import write_shard_set

    url = os.path.join(root, "shapes")
    write_shard_set("builtin:shapes", url, samples=samples, heldout=64, shard_size=256)
    return url


def start_s3_server() -> contextlib.ExitStack:
    """A local S3 API server with this process (and the processes it starts) pointed at it
    through the AWS_* variables; ``.close()`` stops it and restores the variables."""
    stack = contextlib.ExitStack()
    stack.enter_context(environ(stack.enter_context(s3_api_server(key="bench", secret="bench"))))
    return stack
