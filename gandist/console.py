"""What the command line shows on a terminal besides its results: a progress line."""

from __future__ import annotations

import logging
import sys


class ProgressLine(logging.Handler):
    """A one-line progress display on stderr, for long work. While it is shown, gandist's log
    messages (a skipped input file, say) end the line first instead of landing inside it."""

    def __init__(self, what: str) -> None:
        super().__init__(logging.INFO)
        self.what, self.open, self.speaks = what, False, True

    def __call__(self, done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        print(f"\r{self.what}: {done}/{total} ({100 * done // max(total, 1)}%)", end=end, file=sys.stderr, flush=True)
        self.open = done < total

    def emit(self, record: logging.LogRecord) -> None:
        if self.open:
            print(file=sys.stderr)
            self.open = False
        if self.speaks:
            print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr, flush=True)

    def __enter__(self) -> "ProgressLine":
        logger = logging.getLogger("gandist")
        self.speaks = not logger.handlers  # else the handlers there print the message, after this one
        logger.handlers.insert(0, self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("gandist").removeHandler(self)
        if self.open:
            print(file=sys.stderr)
