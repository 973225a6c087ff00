"""The one function that derives every seed in gandist from the run's seed.

Per-rank, per-loader-worker and per-epoch seeds all come from ``derive_seed(seed, *parts)``,
so the same config gives the same numbers, and no two streams share a seed by accident
(``seed + rank`` would make rank 1 of seed 0 equal to rank 0 of seed 1).
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and a path of labels, e.g. ``derive_seed(0, "data", epoch, rank)``."""
    text = "/".join([str(int(seed)), *(str(p) for p in parts)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
