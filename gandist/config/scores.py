"""Evaluation scores as the config sees them: which way each is better, which task and
eval.features produce it, and the one that ranks a run's checkpoints (trainer.best_metric).
Here, under config/, because the checks need them; ``gandist.tags`` (console labels) sits above."""

from __future__ import annotations

from gandist.config.choices import JUDGED_SOURCES, Features, TaskName
from gandist.config.schema import Config

# Which way each evaluation score is better, by tag or tag family (eval/fd_shapes, eval/iou/<class>).
HIGHER_IS_BETTER = ("eval/miou", "eval/pixel_accuracy", "eval/foreground_iou", "eval/precision", "eval/recall", "eval/modes", "eval/iou",
                    "eval/psnr", "eval/ssim", "eval/seg_miou", "eval/seg_pixel_accuracy")
LOWER_IS_BETTER = ("eval/fid", "eval/kid", "eval/fd", "eval/kd", "eval/mode_kl", "eval/l1")
NOT_SCORES = ("eval/modes_real", "eval/miou_all_background", "eval/time_s", "eval/seg_miou_real",
              "eval/seg_pixel_accuracy_real")  # figures, not a model's quality


def score_order(tag: str) -> str:
    """"max" when a higher ``tag`` is better, "min" when lower is; ValueError for a tag that ranks nothing."""
    def family(prefixes: tuple[str, ...]) -> bool:
        return any(tag == p or tag.startswith(p + "_") or tag.startswith(p + "/") for p in prefixes)

    if tag not in NOT_SCORES:
        if family(HIGHER_IS_BETTER):
            return "max"
        if family(LOWER_IS_BETTER):
            return "min"
    raise ValueError(f"{tag!r} is not an evaluation score gandist can rank checkpoints by; use one of "
                     f"{', '.join(HIGHER_IS_BETTER)} (higher is better) or {', '.join(LOWER_IS_BETTER)} (lower is "
                     "better), with their _<features> and /<class> forms, e.g. eval/fd_shapes")


SEGMENT_SCORES = ("eval/miou", "eval/pixel_accuracy", "eval/iou")
TRANSLATE_SCORES = ("eval/l1", "eval/psnr", "eval/ssim", "eval/seg_miou", "eval/seg_pixel_accuracy")


def check_score_fits(cfg: Config, tag: str) -> None:
    """ValueError unless this run's evaluation produces ``tag``: segment scores for segment, the
    pair scores for translate (eval/seg_* with eval.segmenter), and for generate and translate
    the distances on eval.features (eval/fid, eval/kid, ... are inception's)."""
    segment_tag = any(tag == p or tag.startswith(p + "/") for p in SEGMENT_SCORES)
    if cfg.task.name == TaskName.segment:
        if not segment_tag:
            raise ValueError(f"task=segment is scored by {', '.join(SEGMENT_SCORES)} (and eval/iou/<class>), not {tag}")
        return
    if segment_tag:
        raise ValueError(f"{tag} scores task=segment; task={cfg.task.name} has {headline_score(cfg)} and its kin")
    if tag in TRANSLATE_SCORES:
        if cfg.task.name != TaskName.translate:
            raise ValueError(f"{tag} scores task=translate; task={cfg.task.name} has {headline_score(cfg)} and its kin")
        if tag.startswith("eval/seg_") and not cfg.eval.segmenter:
            raise ValueError(f"{tag} needs eval.segmenter=<a segment run trained on the B images>; or use "
                             f"{headline_score(cfg)}")
        return
    generation_only = ("eval/modes", "eval/mode_kl", "eval/precision", "eval/recall")
    if cfg.task.name == TaskName.translate and any(tag == p or tag.startswith(p + "_") for p in generation_only):
        raise ValueError(f"{tag} is a generation score; task=translate has {', '.join(TRANSLATE_SCORES)} and "
                         f"{headline_score(cfg)}")
    features = tag.rsplit("_", 1)[1] if tag.rsplit("/", 1)[-1].count("_") else None
    if tag in ("eval/modes", "eval/mode_kl"):  # a judge's: either one
        if cfg.eval.features in JUDGED_SOURCES:
            return
        features = "shapes or digits"
    wanted = features or Features.inception.value
    if wanted != cfg.eval.features.value:
        raise ValueError(f"{tag} needs eval.features={wanted} and this run has eval.features={cfg.eval.features.value}; "
                         f"use {headline_score(cfg)} or set eval.features={wanted}")


def headline_score(cfg: Config) -> str:
    """The score that ranks a run's checkpoints unless trainer.best_metric names another."""
    if cfg.task.name == TaskName.segment:
        return "eval/miou"
    return "eval/fid" if cfg.eval.features == Features.inception else f"eval/fd_{cfg.eval.features}"


def best_metric(cfg: Config) -> tuple[str, str]:
    """(tag, "max" | "min") of the score that ranks checkpoints."""
    tag = cfg.trainer.best_metric or headline_score(cfg)
    return tag, score_order(tag)
