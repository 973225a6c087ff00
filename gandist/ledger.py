"""The goodput ledger: where every second of a run went, across all its attempts.

One attempt is one start of the training processes (the first run, each restart of Ray's
worker group, each resubmission). Rank 0 charges each second of its attempt to one part
(``PARTS``) and writes the ledger to ``<run dir>/goodput.json`` every few seconds; a copy
also travels in each checkpoint. A restarted attempt reads the file back, closes the
previous attempt (its cause, when known) and charges the gap between that attempt's last
record and its own start to ``recovery``.

So the parts add up to the run's wall time from the first start, except for the time
between an attempt that finished and a later resubmission, which is nobody's loss.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import fsspec

log = logging.getLogger(__name__)

LEDGER_FILE = "goodput.json"
VERSION = 1

# Every second of an attempt goes to exactly one of these.
PARTS = (
    "productive",  # training steps not taken before (D and G updates of new steps)
    "data_wait",   # waiting for the next batch
    "checkpoint",  # training stalled for a checkpoint (writing, and the upload unless asynchronous)
    "evaluation",  # scoring EMA G
    "startup",     # from the attempt's start until its first step (building, resuming, loader start-up)
    "replayed",    # steps taken again after a failure (their results were lost with the attempt)
    "recovery",    # from a failed attempt's last record until the next attempt started
    "rollback",    # steps thrown away by a collapse rollback (trainer.max_rollbacks)
    "other",       # logging, sample grids, the rest of the loop
)

# Causes an attempt can end with; others are free text (an error message).
RUNNING, FINISHED, FAILED = "running", "finished", "failed (the processes stopped without a last record)"


@dataclass
class Attempt:
    index: int
    started: float  # unix time: rank 0 began fit()
    ended: float  # unix time of the last record (the end, when it ended cleanly)
    resumed_from: Optional[int]  # the checkpoint step it started from; None: a fresh run
    last_step: int  # the highest step it completed, as of its last record
    world_size: int
    cause: str = RUNNING
    first_step_at: Optional[float] = None  # unix time its first step began
    recovery_s: float = 0.0  # the gap charged to recovery before this attempt (0 after a clean end)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Ledger:
    attempts: list[Attempt] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PARTS, 0.0))
    high_water: int = 0  # the highest step any attempt completed: steps up to it are replays
    productive_steps: int = 0  # the steps charged to productive (a rollback takes back those it throws away)
    rollbacks: int = 0
    checkpoints: int = 0
    ckpt_interval: Optional[int] = None  # trainer.ckpt_every=auto: the last interval chosen, in steps
    launched: Optional[float] = None  # unix time a driver launched the next attempt (taken up by it)

    @property
    def total_s(self) -> float:
        return sum(self.parts.values())

    @property
    def fraction(self) -> float:
        """Goodput: the share of the run's time that became new training steps."""
        return self.parts["productive"] / self.total_s if self.total_s > 0 else 0.0

    @property
    def current(self) -> Attempt:
        return self.attempts[-1]

    def begin_attempt(self, now: float, resumed_from: Optional[int], world_size: int,
                      cause_of_previous: Optional[str] = None) -> Attempt:
        """Close the previous attempt (``cause_of_previous`` when known) and open this one."""
        recovery = 0.0
        if self.attempts:
            previous = self.current
            if previous.cause == RUNNING:
                previous.cause = cause_of_previous or FAILED
            if previous.cause != FINISHED:
                recovery = max(0.0, now - previous.ended)
        self.parts["recovery"] += recovery
        attempt = Attempt(index=len(self.attempts) + 1, started=now, ended=now, resumed_from=resumed_from,
                          last_step=resumed_from or 0, world_size=world_size, recovery_s=recovery)
        self.attempts.append(attempt)
        return attempt

    def steps_lost(self, index: int) -> int:
        """Steps attempt ``index`` (1-based) completed that the next one had to take again."""
        if index >= len(self.attempts):
            return 0
        attempt, after = self.attempts[index - 1], self.attempts[index]
        return max(0, attempt.last_step - (after.resumed_from or 0))

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "updated": time.time(), "goodput": self.fraction, "total_s": self.total_s,
                **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Ledger":
        parts = dict.fromkeys(PARTS, 0.0)
        parts.update({k: float(v) for k, v in d.get("parts", {}).items() if k in parts})
        return cls(attempts=[Attempt(**a) for a in d.get("attempts", [])], parts=parts,
                   high_water=int(d.get("high_water", 0)), productive_steps=int(d.get("productive_steps", 0)),
                   rollbacks=int(d.get("rollbacks", 0)),
                   checkpoints=int(d.get("checkpoints", 0)), ckpt_interval=d.get("ckpt_interval"),
                   launched=d.get("launched"))


def ledger_url(run_dir: str) -> str:
    return f"{run_dir.rstrip('/')}/{LEDGER_FILE}"


def load_ledger(run_dir: str) -> Optional[Ledger]:
    """The run directory's ledger, or None when the run has none (yet)."""
    fs, path = fsspec.core.url_to_fs(ledger_url(run_dir))
    try:
        with fs.open(path, "r") as f:
            return Ledger.from_dict(json.load(f))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, TypeError, KeyError) as e:
        log.warning("Ignoring the unreadable goodput ledger %s (%s); the ledger starts afresh", path, e)
        return None


def save_ledger(run_dir: str, data: dict[str, Any]) -> None:
    """Write a ledger (as ``Ledger.to_dict`` gives it) to the run directory; local files are
    replaced atomically, object stores write an object whole."""
    fs, path = fsspec.core.url_to_fs(ledger_url(run_dir))
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    text = json.dumps(data, indent=1)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        tmp = path + ".tmp"
        with fs.open(tmp, "w") as f:
            f.write(text)
        fs.mv(tmp, path)
    else:
        with fs.open(path, "w") as f:
            f.write(text)


def note_launch(run_dir: str, now: Optional[float] = None) -> None:
    """The driver's record that it is launching an attempt: its start-up (starting workers,
    importing, building) is then charged to the attempt, not left out."""
    ledger = load_ledger(run_dir) or Ledger()
    ledger.launched = time.time() if now is None else now
    save_ledger(run_dir, ledger.to_dict())
