"""The data path: sources (user data) -> shards (tar + manifest.json) -> stream (per rank).

Never imports ray or the models.
"""

from gandist.data.manifest import Manifest, ShardSetError
from gandist.data.shards import write_shard_set
from gandist.data.stream import ShardStream, StreamLoader, batches_per_epoch, epoch_loader

__all__ = ["Manifest", "ShardSetError", "ShardStream", "StreamLoader", "batches_per_epoch", "epoch_loader", "write_shard_set"]
