"""The quality records in docs/ are rendered from the JSON the benchmarks wrote (bench/records.py):
the tables in the documents match their JSON, and a missed target says by how much."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import records  # noqa: E402
from common import Row  # noqa: E402
from quality import verdicts  # noqa: E402


def test_every_record_table_in_the_docs_is_the_one_its_json_renders():
    marked = 0
    for path in records.DOCUMENTS:
        text = Path(path).read_text()
        marked += len(records.MARKED.findall(text))
        assert records.render(text) == text, f"{path} is stale: run .venv/bin/python bench/records.py"
    assert marked, "no <!-- record: ... --> table in " + ", ".join(records.DOCUMENTS)


def test_a_missed_target_says_by_how_much():
    assert Row("x", 0.013, None, 0.013, ">= 0.02").verdict == "missed by 0.007"
    assert Row("x", 0.03, None, 0.03, ">= 0.02").verdict == "met"
    assert Row("x", 0.03, None, 0.03, "report").verdict == "-"


def test_the_semi_record_needs_labels_that_limit_and_a_gain_beyond_the_seeds_spread(tmp_path):
    # (c) gains 2.5 points on (a), but (a)'s seeds disagree by 4: the gain is within their spread
    table = {"shapes": {"a_ce": [0.30, 0.34], "c_semi": [0.335, 0.355], "e_all_masks": [0.40, 0.42]}}
    rows = {r.benchmark: r for r in verdicts(table)}
    assert rows["shapes: labels limit, (e) - (a) mIoU"].verdict == "met"
    assert rows["shapes: (c) - (a) mIoU"].verdict == "met"
    over_spread = rows["shapes: (c) - (a) over the seeds' spread"]
    assert abs(over_spread.reference - 0.04) < 1e-9 and over_spread.verdict == "missed by 0.015"

    runs = [{"set": "shapes", "variant": v, "seed": i, "steps": 600, "miou": m, "seconds": 60.0}
            for v, scores in table["shapes"].items() for i, m in enumerate(scores)]
    record = {"rows": [{**r.__dict__, "verdict": r.verdict} for r in rows.values()], "runs": runs, "steps": {"shapes": 600},
              "width": 16, "seeds": 2, "seconds": 600}
    (tmp_path / "quality.json").write_text(json.dumps(record))
    doc = "before\n<!-- record: quality.json -->\nold table\n<!-- /record -->\nafter\n"
    out = records.render(doc, str(tmp_path))
    assert "old table" not in out and out.startswith("before\n") and out.endswith("<!-- /record -->\nafter\n")
    assert "| shapes | (a) CE | 0.320 | 0.040 | 0.300, 0.340 | 60 |" in out
    assert "Steps of 32 images per run: shapes 600 (19,200 images seen);" in out
    assert "**missed by 0.015**" in out
