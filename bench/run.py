"""`make bench`: every benchmark, one after the other, then one table of all the figures
and bench/results.json (the figures, each benchmark's details, the machine and the date).

Each benchmark runs in its own process (Ray clusters and torch threads do not carry over)
and alternates ours and the reference within its run. Figures are ratios: absolute times
on a shared machine are noise, side-by-side ratios much less so.

    .venv/bin/python bench/run.py [--only loop,data] [--out bench/results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

from common import Row, print_table

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> the script's arguments under `make bench` (sized for 10 minutes on 2 CPU cores)
BENCHMARKS = {
    "loop": [],
    "distributed": [],
    "data": [],
    "checkpoint": [],
    "plan": [],
    "goodput": ["--steps", "300", "--run-minutes", "3"],
    "evaluation": ["--resolution", "32", "--steps", "500", "--every", "250", "--samples", "512"],
}


def machine() -> dict[str, str]:
    import torch

    info = {"cpus": str(os.cpu_count()), "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "device": "cpu"}
    if torch.cuda.is_available():
        info["device"] = torch.cuda.get_device_name(0)
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset of " + ", ".join(BENCHMARKS))
    parser.add_argument("--out", default=os.path.join(HERE, "results.json"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")

    results: dict[str, dict] = {}
    rows: list[Row] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            out = os.path.join(tmp, f"{name}.json")
            print(f"== {name} ({time.monotonic() - began:.0f} s so far)", flush=True)
            started = time.monotonic()
            done = subprocess.run([sys.executable, os.path.join(HERE, f"{name}.py"), "--json", out, *BENCHMARKS[name]],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            seconds = time.monotonic() - started
            if done.returncode != 0 or not os.path.exists(out):
                print(done.stdout[-4000:])
                print(f"benchmark {name} failed (exit {done.returncode}) after {seconds:.0f} s")
                results[name] = {"error": done.stdout[-4000:], "seconds": seconds}
                continue
            with open(out) as f:
                results[name] = {**json.load(f), "seconds": seconds}
            rows += [Row(**{k: v for k, v in r.items() if k not in ("met", "verdict")}) for r in results[name]["rows"]]
    total = time.monotonic() - began
    print(f"\nAll benchmarks: {total:.0f} s on {os.cpu_count()} cores\n")
    print_table(rows)
    with open(args.out, "w") as f:
        json.dump({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "machine": machine(), "seconds": total, "benchmarks": results}, f, indent=2)
    print(f"\nwritten: {args.out}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
