"""What a checkpoint holds and how it is written and read back.

Persistence itself belongs to the launcher (Ray Train's report/get_checkpoint, or the local
writer in ``gandist.launchers.local``): this package only fills and reads a checkpoint directory.
"""

from gandist.ckpt.io import (
    CHECKPOINT_PREFIX,
    NO_SCORE,
    SCORE_ATTRIBUTE,
    CheckpointError,
    checkpoint_name,
    checkpoint_step,
    find_best_checkpoint,
    find_latest_checkpoint,
    is_complete,
    list_checkpoints,
    load_checkpoint,
    read_meta,
    resolve_checkpoint,
    retained_steps,
    score_key,
    scored_checkpoints,
    write_checkpoint,
)

__all__ = [
    "CHECKPOINT_PREFIX",
    "NO_SCORE",
    "SCORE_ATTRIBUTE",
    "CheckpointError",
    "checkpoint_name",
    "checkpoint_step",
    "find_best_checkpoint",
    "find_latest_checkpoint",
    "is_complete",
    "list_checkpoints",
    "load_checkpoint",
    "read_meta",
    "resolve_checkpoint",
    "retained_steps",
    "score_key",
    "scored_checkpoints",
    "write_checkpoint",
]
