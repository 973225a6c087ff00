"""manifest.json: what a shard set holds. Readers find shards here, never by listing a bucket."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

import fsspec

from gandist import __version__

MANIFEST = "manifest.json"
FORMAT = "gandist-shards"


class ShardSetError(ValueError):
    """A shard set is missing, malformed or unfit; the message names the URL and the fix."""


def join(url: str, name: str) -> str:
    return f"{url.rstrip('/')}/{name}"


@dataclass
class Manifest:
    source: str
    image_size: int
    classes: Optional[list[str]]
    has_masks: bool
    tasks: list[str]
    splits: dict[str, dict[str, Any]]  # split -> {"samples": n, "shards": [{name, samples, bytes, sha256}]}
    seed: int = 0
    labels: Optional[list[str]] = None  # whole-image classes of the samples' labels ("cls"); None: no labels
    target_mode: Optional[str] = None  # translation pairs: B's PIL mode ("target.png"); None: no B images
    format: str = FORMAT
    version: int = 1
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    gandist_version: str = __version__
    url: str = field(default="", compare=False)  # where it was loaded from; not stored

    @classmethod
    def load(cls, url: str) -> "Manifest":
        path = join(url, MANIFEST)
        try:
            with fsspec.open(path, "r") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise ShardSetError(
                f"no shard set at {url}: {MANIFEST} not found. Write one with "
                f"`gandist shard SOURCE {url}` or fix data.url"
            ) from None
        except json.JSONDecodeError as e:
            raise ShardSetError(f"{path} is not valid JSON ({e}); write the shard set again") from None
        except Exception as e:  # permissions, credentials, endpoint, network: say where and what
            raise ShardSetError(
                f"cannot read {path}: {type(e).__name__}: {e}. Check the URL and, for object storage, "
                "the credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the "
                "endpoint (AWS_ENDPOINT_URL or storage.endpoint_url)"
            ) from None
        if data.get("format") != FORMAT:
            raise ShardSetError(f"{path} is not a gandist shard manifest (format {data.get('format')!r})")
        data.pop("url", None)
        return cls(**data, url=url)

    def save(self, url: str) -> None:
        data = asdict(self)
        data.pop("url")
        with fsspec.open(join(url, MANIFEST), "w") as f:
            json.dump(data, f, indent=1)

    def _split(self, split: str) -> dict[str, Any]:
        if split not in self.splits:
            raise ShardSetError(
                f"the shard set at {self.url or '(unsaved)'} has no split {split!r}; "
                f"it has {', '.join(sorted(self.splits)) or 'none'}"
            )
        return self.splits[split]

    def samples(self, split: str) -> int:
        return int(self._split(split)["samples"])

    def shards(self, split: str) -> list[dict[str, Any]]:
        return list(self._split(split)["shards"])

    def shard_urls(self, split: str) -> list[str]:
        return [join(self.url, s["name"]) for s in self.shards(split)]

    def check_shards(self, split: str) -> None:
        """Fail now, naming them, if shards of ``split`` are missing (one listing, at start)."""
        fs, root = fsspec.core.url_to_fs(self.url)
        present = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)}
        missing = [s["name"] for s in self.shards(split) if s["name"] not in present]
        if missing:
            listed = ", ".join(join(self.url, n) for n in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ShardSetError(f"{len(missing)} shard(s) of split {split!r} are missing: {listed}; "
                                "write the shard set again (gandist inspect --verify checks one)")
