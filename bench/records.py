"""Rewrite the tables of the quality records from the JSON the quality benchmarks wrote, so the
figures in docs/ are the ones measured and never typed by hand.

A document marks each generated table with a pair of HTML comments:

    <!-- record: quality.json -->
    ...generated; edited by hand it is overwritten...
    <!-- /record -->

and this script replaces what lies between them with the table rendered from
bench/records/<name>. Run by `make quality` after the benchmark; alone:

    .venv/bin/python bench/records.py [--check]     # --check: exit 1 if a document is stale
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RECORDS = os.path.join(HERE, "records")
DOCUMENTS = [os.path.join(ROOT, "docs", "quality.md"), os.path.join(HERE, "BENCHMARKS.md")]
MARKED = re.compile(r"(<!-- record: (?P<name>[\w.-]+) -->\n).*?(<!-- /record -->)", re.S)

VARIANT_NAMES = {"a_ce": "(a) CE", "b_ce_adv": "(b) CE + adversarial", "c_semi": "(c) Hung et al.",
                 "d_self_training": "(d) self-training", "e_all_masks": "(e) all masks"}


def verdict_lines(record: dict) -> list[str]:
    """One line per row with a target: what was measured against what, and met or missed by how much."""
    return [f"- {r['benchmark']}: {r['ratio']:.3f} (target {r['target']}): **{r['verdict']}**"
            for r in record["rows"] if r["target"] != "report"]


def quality_table(record: dict) -> str:
    """bench/quality.py: a row per set and variant with each seed's mIoU, the mean and spread."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for run in record["runs"]:
        runs.setdefault((run["set"], run["variant"]), []).append(run)
    lines = [f"{record['steps']} steps of 32 images ({record['steps'] * 32:,} images seen) per run, the U-Net at "
             f"width {record['width']}, {record['seeds']} seeds; {record['seconds'] / 60:.0f} minutes in all.", "",
             "| set | variant | held-out mIoU, mean | spread (max - min) | each seed | seconds per run |",
             "|---|---|---|---|---|---|"]
    for (name, variant), group in runs.items():
        scores = [r["miou"] for r in sorted(group, key=lambda r: r["seed"])]
        lines.append(f"| {name} | {VARIANT_NAMES.get(variant, variant)} | {statistics.mean(scores):.3f} | "
                     f"{max(scores) - min(scores):.3f} | {', '.join(f'{s:.3f}' for s in scores)} | "
                     f"{statistics.mean(r['seconds'] for r in group):.0f} |")
    lines += ["", "Why, from TensorBoard (each run's last logging window): how well the confidence map ranks right "
              "pixels above wrong ones, the share of unlabeled pixels it selects, how many of those pseudo-labels "
              "are right, and D's loss (Hung et al. call 0.2-0.5 working).", "",
              "| set | variant | seed | confidence AUROC | selected | pseudo-labels right | loss/D |",
              "|---|---|---|---|---|---|---|"]
    for (name, variant), group in runs.items():
        for run in sorted(group, key=lambda r: r["seed"]):
            last = run.get("last_window", {})
            if "semi/selected_fraction" in last:
                cells = [f"{last[t]:.3f}" if t in last else "-" for t in
                         ("semi/confidence_auroc", "semi/selected_fraction", "semi/pseudo_label_accuracy", "loss/D")]
                lines.append(f"| {name} | {VARIANT_NAMES.get(variant, variant)} | {run['seed']} | {' | '.join(cells)} |")
    return "\n".join(lines + [""] + verdict_lines(record))


RENDERERS: dict[str, Callable[[dict], str]] = {"quality.json": quality_table}


def render(text: str, records_dir: str = RECORDS) -> str:
    """``text`` with every marked table rendered afresh from its JSON record."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise SystemExit(f"no renderer for record {name!r}; known: {', '.join(RENDERERS)}")
        with open(os.path.join(records_dir, name)) as f:
            return match[1] + RENDERERS[name](json.load(f)) + "\n" + match[3]
    return MARKED.sub(replace, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is stale")
    args = parser.parse_args()
    stale = []
    for path in DOCUMENTS:
        with open(path) as f:
            text = f.read()
        new = render(text)
        if new != text:
            stale.append(os.path.relpath(path, ROOT))
            if not args.check:
                with open(path, "w") as f:
                    f.write(new)
    verb = "stale" if args.check else "rewritten"
    print(f"{verb}: {', '.join(stale)}" if stale else "every record table is up to date")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
