"""`gandist report RUN`: a run's attempts as a timeline and where its time went, from the
goodput ledger in its run directory (local or any fsspec URL)."""

from __future__ import annotations

import time

from gandist.ckpt import CheckpointError
from gandist.ledger import PARTS, Ledger, ledger_url, load_ledger


def read_report(run_dir: str) -> str:
    """The report of the run at ``run_dir``; a clear error when it has no ledger."""
    ledger = load_ledger(run_dir)
    if ledger is None or not ledger.attempts:
        raise CheckpointError(
            f"{ledger_url(run_dir)} does not exist: {run_dir} is not the directory of a gandist run that has started "
            "training (give <run.storage>/<run.name>, e.g. runs/store/demo or s3://bucket/runs/exp1)")
    return format_report(ledger, run_dir)


def _clock(t: float, with_date: bool) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S", time.localtime(t))


def _seconds(s: float) -> str:
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    if s >= 60:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{s:.1f} s"


def format_report(ledger: Ledger, run_dir: str) -> str:
    total = ledger.total_s
    lines = [f"Run {run_dir}: {len(ledger.attempts)} attempt(s), {_seconds(total)} since it first started, "
             f"goodput {ledger.fraction:.3f}", ""]
    header = ("#", "started", "ended", "steps", "workers", "resumed from", "steps lost", "recovery", "cause")
    rows = []
    for i, a in enumerate(ledger.attempts):
        lost = ledger.steps_lost(a.index)
        # Time from this attempt's failure to the next one training again: the gap, then its start-up.
        after = ledger.attempts[i + 1] if i + 1 < len(ledger.attempts) else None
        recovery = "-"
        if after is not None and after.recovery_s > 0:
            back = (after.first_step_at or after.ended) - after.started
            recovery = _seconds(after.recovery_s + back)
        first_step = a.resumed_from or 0
        rows.append((str(a.index), _clock(a.started, True), _clock(a.ended, False), f"{first_step}-{a.last_step}",
                     str(a.world_size), "-" if a.resumed_from is None else str(a.resumed_from),
                     "-" if after is None else str(lost), recovery, a.cause))
    widths = [max(len(r[c]) for r in rows + [header]) for c in range(len(header))]
    for row in [header] + rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    lines += ["", "Where the time went:"]
    for part in PARTS:
        seconds = ledger.parts[part]
        share = seconds / total if total > 0 else 0.0
        lines.append(f"  {part:<11} {seconds:10.1f} s  {share:6.1%}")
    lines.append(f"  {'total':<11} {total:10.1f} s")
    lines.append(f"Checkpoints: {ledger.checkpoints}" + (f" (interval {ledger.ckpt_interval} steps, chosen by "
                                                         "trainer.ckpt_every=auto)" if ledger.ckpt_interval else "")
                 + f"; collapse rollbacks: {ledger.rollbacks}; highest step: {ledger.high_water}")
    return "\n".join(lines)
