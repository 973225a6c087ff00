import hashlib
import io
import json
import tarfile

import fsspec
import numpy as np
import pytest
from PIL import Image

from gandist.data.manifest import Manifest, ShardSetError
from gandist.data.shards import write_shard_set
from gandist.data.layouts import open_source


def read_tar_members(fs, path: str) -> dict[str, bytes]:
    with fs.open(path, "rb") as f:
        with tarfile.open(fileobj=io.BytesIO(f.read())) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


@pytest.mark.parametrize("dest_kind", ["local", "memory"])
def test_write_then_read_back_every_sample_once(tmp_path, dest_kind):
    dest = str(tmp_path / "set") if dest_kind == "local" else "memory://gandist-test/set"
    manifest = write_shard_set("builtin:shapes", dest, samples=23, heldout=5, shard_size=10, size=24, seed=3)
    fs, root = fsspec.core.url_to_fs(dest)
    loaded = Manifest.load(dest)
    assert loaded.splits == manifest.splits
    assert loaded.samples("train") == 23 and loaded.samples("heldout") == 5
    assert [s["samples"] for s in loaded.shards("train")] == [10, 10, 3]

    source = open_source("builtin:shapes", size=24, seed=3)
    for split, count in (("train", 23), ("heldout", 5)):
        members: dict[str, bytes] = {}
        for entry in loaded.shards(split):
            path = f"{root}/{entry['name']}"
            with fs.open(path, "rb") as f:
                data = f.read()
            assert len(data) == entry["bytes"]
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            members.update(read_tar_members(fs, path))
        assert len(members) == 3 * count  # image, mask and label per sample, each once
        expected = list(source.samples(split, source.plan(23, 5)[split]))
        for sample in expected:
            image = np.asarray(Image.open(io.BytesIO(members[f"{sample.key}.image.png"])))
            mask = np.asarray(Image.open(io.BytesIO(members[f"{sample.key}.mask.png"])))
            assert np.array_equal(image, sample.image) and np.array_equal(mask, sample.mask)
            assert int(members[f"{sample.key}.cls"]) == sample.label
    assert not [p for p in fs.ls(root, detail=False) if p.endswith(".partial")]
    if dest_kind == "memory":
        fs.rm(root, recursive=True)


def test_refuses_to_overwrite_and_leaves_the_set_intact(tmp_path):
    dest = str(tmp_path / "set")
    write_shard_set("builtin:shapes", dest, samples=8, heldout=2, shard_size=4, size=16)
    before = {p.name: p.read_bytes() for p in (tmp_path / "set").iterdir()}
    with pytest.raises(ShardSetError, match="already holds a shard set"):
        write_shard_set("builtin:shapes", dest, samples=99, heldout=0, shard_size=4, size=16, seed=1)
    after = {p.name: p.read_bytes() for p in (tmp_path / "set").iterdir()}
    assert before == after


def test_manifest_records_what_training_checks(tmp_path):
    dest = str(tmp_path / "digits")
    write_shard_set("builtin:digits", dest, samples=30, heldout=0, shard_size=16, size=16)
    data = json.loads((tmp_path / "digits" / "manifest.json").read_text())
    assert data["image_size"] == 16 and data["has_masks"] and data["classes"][0] == "background"
    assert data["labels"] == [str(d) for d in range(10)]  # what model.conditional trains on
    assert set(data["splits"]) == {"train"}
    with pytest.raises(ShardSetError, match="no split 'heldout'.*train"):
        Manifest.load(dest).samples("heldout")


def test_missing_manifest_names_the_url(tmp_path):
    with pytest.raises(ShardSetError, match=f"{tmp_path}.*gandist shard"):
        Manifest.load(str(tmp_path))


def test_parallel_writing_gives_the_same_shards(tmp_path):
    one = write_shard_set("builtin:shapes", str(tmp_path / "one"), samples=30, heldout=3, shard_size=4,
                          size=16, workers=1)
    many = write_shard_set("builtin:shapes", str(tmp_path / "many"), samples=30, heldout=3, shard_size=4,
                           size=16, workers=4)
    assert one.splits == many.splits  # names, counts, bytes and sha256 of every shard


def test_cli_writes_a_masks_layout_with_classes_file(tmp_path, capsys):
    from gandist.cli import main

    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    for i in range(4):
        Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(src / "images" / f"{i}.png")
        Image.fromarray(np.full((16, 16), i % 2, np.uint8), "L").save(src / "masks" / f"{i}.png")
    (tmp_path / "classes.txt").write_text("background\nthing\n")
    code = main(["shard", str(src), str(tmp_path / "out"), "--classes", str(tmp_path / "classes.txt"),
                 "--size", "16", "--heldout", "1"])
    assert code == 0
    manifest = Manifest.load(str(tmp_path / "out"))
    assert manifest.classes == ["background", "thing"] and manifest.has_masks
    assert manifest.samples("train") == 3 and manifest.samples("heldout") == 1
    assert "tasks: generate, segment" in capsys.readouterr().out


def test_if_missing_writes_once_then_leaves_the_set_alone(tmp_path, capsys):
    """`gandist shard --if-missing`, as a job entrypoint that runs again on a retry uses it:
    the first call writes the set, the second exits 0 saying so and changes no byte."""
    from gandist.cli import main

    dest = str(tmp_path / "set")
    argv = ["shard", "builtin:shapes", dest, "--samples", "8", "--heldout", "2", "--size", "16", "--if-missing"]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "set").iterdir()}
    capsys.readouterr()
    assert main(argv[:4] + ["99", *argv[5:]]) == 0
    out = capsys.readouterr().out
    assert "already holds a shard set (train 8, heldout 2 samples, image size 16)" in out and "--if-missing" in out
    assert {p.name: p.read_bytes() for p in (tmp_path / "set").iterdir()} == before
    assert main(argv[:-1]) == 2  # without it, an existing set is still refused
