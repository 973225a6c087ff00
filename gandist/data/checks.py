"""Whether a shard set can train a config: refused before any worker starts, with the fix."""

from __future__ import annotations

from typing import Optional

from gandist.config import JUDGED_SOURCES, Config, ConfigError, TaskName
from gandist.data.manifest import Manifest


def check_data_fits(cfg: Config, manifest: Manifest) -> Optional[list[str]]:
    """Refuse a shard set that cannot train this config; return its classes: the mask classes
    (segment), the label classes G and D are conditioned on (model.conditional), or the bands
    of the B images (translate: ["R", "G", "B"] for RGB)."""
    url = cfg.data.url
    if manifest.image_size != cfg.model.resolution:
        raise ConfigError(
            f"data.url={url} holds {manifest.image_size}x{manifest.image_size} images but "
            f"model.resolution={cfg.model.resolution}; set model.resolution={manifest.image_size} "
            f"or write the shards again with --size {cfg.model.resolution}"
        )
    judged = JUDGED_SOURCES.get(cfg.eval.features)
    if cfg.task.name != TaskName.segment and judged and manifest.source != judged:
        raise ConfigError(
            f"eval.features={cfg.eval.features} judges {judged} images, but the shard set at data.url={url} was "
            f"written from {manifest.source}; use eval.features=randconv (offline) or inception")
    if cfg.task.name == TaskName.translate:
        return check_pairs_fit(cfg, manifest)
    if cfg.task.name == TaskName.segment:
        if manifest.target_mode:
            raise ConfigError(
                f"the shard set at data.url={url} holds translation pairs (its inputs are not photos, e.g. label "
                f"maps); use task=translate on it, or for task=segment shard {manifest.source} without --pairs")
        if not manifest.has_masks or not manifest.classes:
            raise ConfigError(
                f"task=segment needs masks, but the shard set at data.url={url} has none "
                f"(it was written from {manifest.source}); shard a source with masks, or use task=generate"
            )
        if cfg.data.classes is not None and list(cfg.data.classes) != list(manifest.classes):
            raise ConfigError(
                f"data.classes={list(cfg.data.classes)} but the shard set at data.url={url} has classes "
                f"{list(manifest.classes)}; fix data.classes, or point data.url at the right shard set"
            )
        return list(manifest.classes)
    if "generate" not in manifest.tasks:
        raise ConfigError(
            f"the shard set at data.url={url} was written for task={' or task='.join(manifest.tasks)} (its images "
            "are the inputs of pairs), not for generation; use that task, or shard the source again without --pairs")
    if cfg.model.conditional:
        if not manifest.labels:
            raise ConfigError(
                f"model.conditional=true needs a label per image, but the shard set at data.url={url} has none "
                f"(it was written from {manifest.source}); shard class folders with --layout classes, or "
                "builtin:shapes or builtin:digits, or set model.conditional=false")
        return list(manifest.labels)
    return None


def check_pairs_fit(cfg: Config, manifest: Manifest) -> list[str]:
    """task=translate: the shard set must hold B images (and masks, for eval.segmenter)."""
    url = cfg.data.url
    if not manifest.target_mode:
        raise ConfigError(
            f"task=translate needs image pairs, but the shard set at data.url={url} holds no B images (it was "
            f"written from {manifest.source} for {', '.join(manifest.tasks)}); write one with `gandist shard "
            "--layout pairs` (A/ and B/ folders), `--layout pix2pix --pairs image`, or `builtin:shapes --pairs image`")
    if cfg.eval.segmenter and not (manifest.has_masks and manifest.classes):
        raise ConfigError(
            f"eval.segmenter={cfg.eval.segmenter} is scored against true masks, but the shard set at data.url={url} "
            "has none; set eval.segmenter=null (builtin:shapes --pairs image keeps its masks)")
    return list(manifest.target_mode)


def check_unlabeled_fits(cfg: Config, unlabeled: Manifest) -> None:
    """Refuse an unlabeled shard set (data.unlabeled_url) whose images the model cannot take.
    (A missing train split is named by its manifest when the shards are checked.)"""
    if unlabeled.image_size != cfg.model.resolution:
        raise ConfigError(
            f"data.unlabeled_url={cfg.data.unlabeled_url} holds {unlabeled.image_size}x{unlabeled.image_size} "
            f"images but model.resolution={cfg.model.resolution}; write it again with --size {cfg.model.resolution}"
        )
