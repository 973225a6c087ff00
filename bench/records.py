"""Rewrite the tables of the quality records from the JSON the quality benchmarks wrote, so the
figures in docs/ are the ones measured and never typed by hand.

A document marks each generated table with a pair of HTML comments:

    <!-- record: quality.json -->
    ...generated; edited by hand it is overwritten...
    <!-- /record -->

and this script replaces what lies between them with the table rendered from
bench/records/<name> (`<!-- record: <name> verdicts -->`: its verdict lines alone, for
summaries such as bench/BENCHMARKS.md). Run by `make quality` after the benchmark; alone:

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
MARKED = re.compile(r"(<!-- record: (?P<name>[\w.-]+)(?: (?P<view>verdicts))? -->\n).*?(?P<end><!-- /record -->)", re.S)

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
    steps = {run["set"]: run["steps"] for run in record["runs"]}
    lines = ["Steps of 32 images per run: " + ", ".join(f"{name} {n:,} ({n * 32:,} images seen)" for name, n in steps.items())
             + f"; the U-Net at width {record['width']}, {record['seeds']} seeds; {record['seconds'] / 60:.0f} minutes in all.",
             "",
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


GENERATE_NAMES = {"dcgan": "DCGAN", "r3gan": "R3GAN", "r3gan_subset": "R3GAN, 10%", "r3gan_subset_ada": "R3GAN + ADA, 10%"}


def generate_table(record: dict) -> str:
    """bench/quality_generate.py: a row per run and budget (each seed), the means per budget
    with the winner, the verdicts and the grids."""
    runs = record["runs"]
    lines = [f"R3GAN's budget: {record['minutes']:g} minutes of training; the subset runs: "
             f"{record['subset_minutes']:g} minutes; {record['seeds']} seeds; one thread per run, {record['jobs']} runs at a "
             f"time on 2 CPU cores; "
             f"{record['seconds'] / 60:.0f} minutes in all. Scores of EMA G on the digits judge.", "",
             "| run | seed | budget | steps (ms each) | images seen | seconds | FD(digits) | precision | recall | "
             "digits reached |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        budgets = ["equal images", "equal wall time"] if len(run["legs"]) == 2 else [
            f"{record['minutes']:g} minutes: the images budget" if run["name"] == "r3gan" else
            f"{record['subset_minutes']:g} minutes"]
        for i, (budget, leg) in enumerate(zip(budgets, run["legs"])):
            f, seconds = leg["final"], sum(earlier["seconds"] for earlier in run["legs"][:i + 1])  # a leg resumes the last
            lines.append(f"| {GENERATE_NAMES.get(run['name'], run['name'])} | {run['seed']} | {budget} | "
                         f"{leg['steps']:,} ({run['step_s'] * 1000:.0f}) | {leg['images_seen']:,} | {seconds:.0f} | "
                         f"{f['eval/fd_digits']:.1f} | {f['eval/precision_digits']:.3f} | "
                         f"{f['eval/recall_digits']:.3f} | {f['eval/modes']:.0f} |")

    def fds(name: str, leg: int) -> list[float]:
        return [r["legs"][leg]["final"]["eval/fd_digits"] for r in runs if r["name"] == name]

    lines += ["", "| budget | R3GAN FD, mean (seeds) | DCGAN FD, mean (seeds) | lower FD |", "|---|---|---|---|"]
    for budget, leg in (("equal images", 0), ("equal wall time", 1)):
        r3, dc = fds("r3gan", 0), fds("dcgan", leg)
        if r3 and dc:
            winner = "R3GAN" if statistics.mean(r3) < statistics.mean(dc) else "DCGAN"
            lines.append(f"| {budget} | {statistics.mean(r3):.1f} ({', '.join(f'{v:.1f}' for v in r3)}) | "
                         f"{statistics.mean(dc):.1f} ({', '.join(f'{v:.1f}' for v in dc)}) | {winner} |")
    grids = []  # (title, file): a DCGAN run's first leg is its equal-images point
    for r in runs:
        for i in range(len(r["legs"])):
            equal = len(r["legs"]) == 2 and i == 0
            grids.append((f"{GENERATE_NAMES.get(r['name'], r['name'])}{', equal images' if equal else ''}, seed {r['seed']}",
                          f"generate_{r['name']}_s{r['seed']}{'_equal_images' if equal else ''}.png"))
    lines += ["", "| " + " | ".join(title for title, _ in grids) + " |", "|" + "---|" * len(grids),
              "| " + " | ".join(f"![{title}](../bench/grids/{name})" for title, name in grids) + " |"]
    return "\n".join(lines + [""] + verdict_lines(record))


def translate_table(record: dict) -> str:
    """bench/quality_translate.py: a row per run with its scores at the end and its curves."""
    lines = [f"{record['minutes']:g} minutes of training per run on 2 CPU cores, one after the other (batch 32, width "
             f"{record['width']}, {record['samples']:,} pairs, {record['heldout']} held out); the segmenter reads the "
             f"true held-out photos at mIoU {record['segmenter_miou']:.3f} (the ceiling); "
             f"{record['seconds'] / 60:.0f} minutes in all.", "",
             "| run | steps (ms each) | images seen | L1 | PSNR | SSIM | FD(shapes) at each evaluation | "
             "seg mIoU at each evaluation |", "|---|---|---|---|---|---|---|---|"]
    for name, run in record["runs"].items():
        f, c = run["final"], run["curves"]
        lines.append(f"| {'pix2pix' if name == 'pix2pix' else 'L1 only'} | {run['steps']:,} ({run['step_s'] * 1000:.0f}) "
                     f"| {run['steps'] * 32:,} | {f['eval/l1']:.3f} | {f['eval/psnr']:.2f} | {f['eval/ssim']:.3f} | "
                     f"{', '.join(f'{v:.1f}' for v in c['eval/fd_shapes'].values())} | "
                     f"{', '.join(f'{v:.3f}' for v in c['eval/seg_miou'].values())} |")
    return "\n".join(lines + [""] + verdict_lines(record))


RENDERERS: dict[str, Callable[[dict], str]] = {"quality.json": quality_table, "quality_generate.json": generate_table,
                                               "quality_translate.json": translate_table}


def render(text: str, records_dir: str = RECORDS) -> str:
    """``text`` with every marked table rendered afresh from its JSON record."""
    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in RENDERERS:
            raise SystemExit(f"no renderer for record {name!r}; known: {', '.join(RENDERERS)}")
        with open(os.path.join(records_dir, name)) as f:
            record = json.load(f)
        body = "\n".join(verdict_lines(record)) if match["view"] == "verdicts" else RENDERERS[name](record)
        return match[1] + body + "\n" + match["end"]
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
