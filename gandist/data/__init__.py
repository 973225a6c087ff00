"""The data path: sources (user data) -> shards (tar + manifest.json) -> stream (per rank).

Never imports ray or the models.
"""

from gandist.data.manifest import Manifest, ShardSetError
from gandist.data.shards import write_shard_set
from gandist.data.loader import StreamLoader, epoch_loader
from gandist.data.stream import ShardStream, batches_per_epoch

__all__ = ["Manifest", "ShardSetError", "ShardStream", "StreamLoader", "batches_per_epoch", "epoch_loader", "write_shard_set"]
