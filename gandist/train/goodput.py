"""Rank 0's goodput clock: charges each second of this attempt to one part of the run's ledger
(``gandist.ledger``) and keeps the ledger in the run directory as training goes.

The loop calls ``charge(part)`` after each piece of work, so the time since the previous
call goes to that part and nothing is counted twice or left out. Other ranks get a clock
that records nothing.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Iterable, Iterator, Optional, TypeVar

import fsspec

from gandist.ledger import FINISHED, PARTS, Ledger, load_ledger, save_ledger

log = logging.getLogger("gandist.train")
T = TypeVar("T")

WRITE_EVERY_S = 10.0  # how often the run directory's ledger is brought up to date while training


class GoodputClock:
    def __init__(self, run_dir: Optional[str], is_chief: bool, write_every_s: float = WRITE_EVERY_S) -> None:
        self.started, self.mark = time.time(), time.perf_counter()
        self.t0 = self.mark
        self.run_dir = run_dir if is_chief else None
        self.active = is_chief
        self.write_every_s = write_every_s
        self.ledger = Ledger()
        self.begun = False  # no attempt is recorded before the data and checkpoint are known good
        self._writer: Optional[ThreadPoolExecutor] = None
        self._pending: Optional[Future] = None
        self._last_write = 0.0

    def begin(self, resumed_from: Optional[int], checkpoint_ledger: Optional[dict[str, Any]], world_size: int,
              drill: Optional[dict[str, Any]] = None) -> None:
        """Take up the run's ledger (the run directory's, else the checkpoint's copy) and open
        this attempt; ``drill`` is the fault drill's record, which explains a previous end."""
        if not self.active:
            return
        ledger = load_ledger(self.run_dir) if self.run_dir else None
        if ledger is None and checkpoint_ledger:
            ledger = Ledger.from_dict(checkpoint_ledger)
        self.ledger = ledger or Ledger()
        previous = self.ledger.attempts[-1] if self.ledger.attempts else None
        if (drill is not None and previous is not None and previous.cause != FINISHED
                and not any("fault drill" in a.cause for a in self.ledger.attempts)):
            # The drill's kill explains the end better than what the surviving ranks saw of it.
            previous.cause = f"fault drill: rank {drill.get('rank')} killed after step {drill.get('step')}"
        launched = self.ledger.launched
        self.ledger.launched = None
        last_end = previous.ended if previous is not None else float("-inf")
        if launched is not None and last_end <= launched <= self.started:
            # A driver launched this attempt: the time since then is its start-up too.
            self.ledger.parts["startup"] += self.started - launched
            self.t0 -= self.started - launched
            self.started = launched
        attempt = self.ledger.begin_attempt(self.started, resumed_from, world_size)
        self.begun = True
        if len(self.ledger.attempts) > 1:
            previous = self.ledger.attempts[-2]
            log.info("Goodput ledger: attempt %d (the previous one %s at step %d; %d steps to take again, "
                     "%.1f s from its last record to this start)", attempt.index, previous.cause, previous.last_step,
                     self.ledger.steps_lost(previous.index), attempt.recovery_s)

    def charge(self, part: str) -> None:
        """The time since the previous charge goes to ``part``."""
        now = time.perf_counter()
        if self.begun:
            self.ledger.parts[part] += now - self.mark
            self.ledger.current.ended = self.started + (now - self.t0)
        self.mark = now

    def timed(self, batches: Iterable[T]) -> Iterator[T]:
        """``batches``, their waits charged: the first to start-up, the rest to data_wait."""
        first = True
        for batch in batches:
            self.charge("startup" if first else "data_wait")
            if first and self.begun:
                self.ledger.current.first_step_at = self.ledger.current.ended
            first = False
            yield batch

    def step_done(self, step: int) -> None:
        """A step completed: new work, or a replay of one an earlier attempt had done."""
        replay = step <= self.ledger.high_water
        self.charge("replayed" if replay else "productive")
        if self.begun:
            self.ledger.productive_steps += 0 if replay else 1
            self.ledger.current.last_step = step
            self.ledger.high_water = max(self.ledger.high_water, step)

    def rolled_back(self, steps: int) -> None:
        """A collapse rollback threw away the last ``steps`` steps: their time (at the mean
        productive step time) moves from productive to rollback, as does the reload."""
        self.charge("rollback")
        if not self.begun:
            return
        ledger = self.ledger
        ledger.rollbacks += 1
        steps = min(steps, ledger.productive_steps)
        if steps > 0:
            moved = ledger.parts["productive"] * steps / ledger.productive_steps
            ledger.parts["productive"] -= moved
            ledger.parts["rollback"] += moved
            ledger.productive_steps -= steps

    def values(self) -> dict[str, float]:
        """goodput/fraction and each part's seconds so far, for TensorBoard and the progress line."""
        if not self.begun:
            return {}
        return {"goodput/fraction": self.ledger.fraction, **{f"goodput/{p}_s": self.ledger.parts[p] for p in PARTS}}

    def state_dict(self) -> Optional[dict[str, Any]]:
        """The ledger as of now, for a checkpoint (None on ranks that keep none)."""
        return self.ledger.to_dict() if self.begun else None

    def heartbeat(self, force: bool = False) -> None:
        """Bring the run directory's ledger up to date, in the background, every few seconds."""
        if self.run_dir is None or not self.begun:
            return
        now = time.perf_counter()
        if not force and now - self._last_write < self.write_every_s:
            return
        if self._pending is not None and not self._pending.done():
            return  # the previous write is still going: the next heartbeat carries this one's figures
        self._last_write = now
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gandist-ledger")
        self._pending = self._writer.submit(self._write, self.ledger.to_dict())

    def flush(self) -> None:
        """Write the ledger as of now and wait for it (the fault drill, before its kill)."""
        self.charge("other")
        if self.run_dir is None or not self.begun:
            return
        if self._pending is not None:
            self._pending.result()
        self._write(self.ledger.to_dict())

    def _write(self, data: dict[str, Any]) -> None:
        try:
            save_ledger(self.run_dir, data)
        except OSError as e:  # a record of time, never a reason to stop training
            log.warning("Could not write the goodput ledger to %s: %s", self.run_dir, e)

    def finish(self, cause: str = FINISHED) -> None:
        """Close this attempt with ``cause`` and write the ledger now."""
        self.charge("other")
        if not self.begun:
            return
        self.begun = False
        self.ledger.current.cause = cause
        if self._pending is not None:
            self._pending.result()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        if self.run_dir is not None:
            self._write(self.ledger.to_dict())
        if cause == FINISHED:
            log.info("Goodput %.3f: %.0f s productive of %.0f s since the run first started (gandist report %s)",
                     self.ledger.fraction, self.ledger.parts["productive"], self.ledger.total_s, self.run_dir)


def read_drill_record(run_dir: Optional[str], marker: str) -> Optional[dict[str, Any]]:
    """The fault drill's record in the run directory, if a drill has happened."""
    if run_dir is None:
        return None
    fs, path = fsspec.core.url_to_fs(f"{run_dir.rstrip('/')}/{marker}")
    try:
        with fs.open(path, "r") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
