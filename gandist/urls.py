"""The one place that decides whether a URL names this machine's file system."""

from __future__ import annotations

import os


def is_local(url: str) -> bool:
    """A plain path or a file:// URL (as opposed to s3://, gs://, memory://, ...)."""
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    """The path of a local URL: file:// stripped."""
    return url[len("file://"):] if url.startswith("file://") else url


def absolute(url: str) -> str:
    """A relative local path made absolute (other processes do not share this working dir)."""
    return os.path.abspath(url) if "://" not in url else url


def cache_dir() -> str:
    """Local scratch space: $GANDIST_CACHE_DIR, else ~/.cache/gandist."""
    return os.environ.get("GANDIST_CACHE_DIR") or os.path.expanduser("~/.cache/gandist")
