"""Shard sets in a real S3 API server: write, inspect, verify, read back."""

from __future__ import annotations

import fsspec
import pytest

from gandist.cli import main
from gandist.data.manifest import Manifest, ShardSetError
from gandist.data.loader import epoch_loader
from gandist.data.shards import write_shard_set


def test_shard_to_s3_inspect_verify_and_stream(bucket, capsys):
    url = f"{bucket}/shapes"
    assert main(["shard", "builtin:shapes", url, "--samples", "20", "--heldout", "4",
                 "--shard-size", "8", "--size", "16"]) == 0
    assert main(["inspect", url, "--verify"]) == 0
    out = capsys.readouterr().out
    assert "train     : 20 samples in 3 shards" in out and "verify: 4 of 4 shards intact" in out

    keys = [k for batch in epoch_loader(url, batch_size=4, num_workers=1) for k in batch["key"]]
    assert sorted(keys) == [f"train_{i:08d}" for i in range(20)]

    # A damaged shard and a missing one are each named, and verify fails.
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    root = url[len("s3://"):]
    fs.pipe(f"{root}/train-000001.tar", b"not a tar")
    fs.rm(f"{root}/train-000002.tar")
    fsspec.filesystem("s3").invalidate_cache()
    assert main(["inspect", url, "--verify"]) == 1
    out = capsys.readouterr().out
    assert f"BAD {url}/train-000001.tar: 9 bytes" in out
    assert f"BAD {url}/train-000002.tar: missing" in out
    assert "verify: 2 of 4 shards intact" in out
    assert Manifest.load(url).samples("train") == 20  # the manifest itself is untouched


def test_missing_shard_and_wrong_credentials_fail_at_start_naming_the_url(bucket, monkeypatch, tmp_path, capsys):
    url = f"{bucket}/set"
    write_shard_set("builtin:shapes", url, samples=12, heldout=0, shard_size=4, size=16)
    manifest = Manifest.load(url)
    manifest.check_shards("train")  # all there
    fsspec.filesystem("s3", skip_instance_cache=True).rm(f"{url[5:]}/train-000001.tar")
    fsspec.filesystem("s3").invalidate_cache()
    with pytest.raises(ShardSetError, match=f"1 shard.*missing: {url}/train-000001.tar"):
        Manifest.load(url).check_shards("train")
    code = main(["train", "task=segment", f"data.url={url}", f"run.storage={tmp_path}", "model.resolution=16",
                 "launcher.name=local", "trainer.num_workers=1"])
    assert code == 2 and f"{url}/train-000001.tar" in capsys.readouterr().err

    # An endpoint that answers nothing: the error names the manifest URL and what to check.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    fsspec.filesystem("s3").clear_instance_cache()
    with pytest.raises(ShardSetError, match=f"cannot read {url}/manifest.json.*AWS_ENDPOINT_URL"):
        Manifest.load(url)
    fsspec.filesystem("s3").clear_instance_cache()


def test_wrong_credentials_fail_naming_the_url(bucket, s3_server, tmp_path, capsys):
    import urllib.request

    url = f"{bucket}/set"
    write_shard_set("builtin:shapes", url, samples=4, heldout=0, shard_size=4, size=16)

    def require_auth(count: str) -> None:
        """moto checks credentials once this many unauthenticated requests are spent ('inf': never)."""
        request = urllib.request.Request(f"{s3_server}/moto-api/reset-auth", data=count.encode(),
                                         headers={"Content-Type": "text/plain"}, method="POST")
        urllib.request.urlopen(request).read()

    fsspec.filesystem("s3").clear_instance_cache()
    require_auth("0")  # from now on only real IAM keys work; ours are not
    try:
        with pytest.raises(ShardSetError, match=f"cannot read {url}/manifest.json.*AWS_ACCESS_KEY_ID"):
            Manifest.load(url)
        code = main(["train", "task=segment", f"data.url={url}", f"run.storage={tmp_path}",
                     "model.resolution=16", "launcher.name=local", "trainer.num_workers=1"])
        assert code == 2 and f"cannot read {url}/manifest.json" in capsys.readouterr().err
    finally:
        require_auth("inf")
        fsspec.filesystem("s3").clear_instance_cache()
    assert Manifest.load(url).samples("train") == 4  # the same call works with auth off again


def test_each_loader_worker_builds_one_s3_client_for_all_epochs(s3_shapes_url, monkeypatch):
    import functools

    import s3fs
    import torch
    from torch.utils.data import get_worker_info

    from gandist.data.loader import StreamLoader

    def keys(batches) -> list:
        return [b["key"] for b in batches]

    fresh = [keys(epoch_loader(s3_shapes_url, batch_size=4, num_workers=2, epoch=e)) for e in range(3)]
    built = torch.zeros((), dtype=torch.int64).share_memory_()  # counted in the workers, read here
    init = s3fs.S3FileSystem.__init__

    @functools.wraps(init)
    def counting(self, *args, **kwargs):
        if get_worker_info() is not None:
            built.add_(1)
        init(self, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "__init__", counting)
    loader = StreamLoader(s3_shapes_url, batch_size=4, num_workers=2, epoch=0)
    assert [keys(loader.epoch(e)) for e in range(3)] == fresh
    assert int(built) == 2  # one per worker; a loader per epoch built one per worker per epoch
