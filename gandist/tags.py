"""The one table from scalar tags (TensorBoard, metrics) to the labels people read on the
console: the progress line, the evaluation line, the end-of-run summary and the HPARAMS
columns all take their names from here."""

from __future__ import annotations

from gandist.config import JUDGED_SOURCES, Config, Features, LossName, TaskName

# tag -> (console label, number format)
LABELS: dict[str, tuple[str, str]] = {
    "loss/D": ("D", ".3f"),
    "loss/G": ("G", ".3f"),
    "loss/G_seg": ("seg", ".3f"),  # segment: the supervised loss (unweighted, as every loss/G_<term>)
    "loss/G_l1": ("L1", ".3f"),  # translate: G's L1 to the true B, in [-1, 1] pixel units
    "D/real": ("D(real)", ".3f"),
    "D/fake": ("D(fake)", ".3f"),
    "eval/miou": ("held-out mIoU", ".4g"),
    "eval/pixel_accuracy": ("pixel accuracy", ".4g"),
    "eval/foreground_iou": ("foreground IoU", ".4g"),  # objects found whatever their class (class 0 against the rest)
    "eval/miou_all_background": ("all-background mIoU", ".4g"),  # the score of predicting background everywhere
    "eval/l1": ("held-out L1", ".4g"),  # translate: mean |generated B - true B|, pixels in [0, 1]
    "eval/psnr": ("PSNR", ".4g"),  # dB, data range 1
    "eval/ssim": ("SSIM", ".4g"),
    "eval/seg_miou": ("seg mIoU", ".4g"),  # eval.segmenter's mIoU on the generated B (FCN-score)
    "eval/seg_miou_real": ("seg mIoU on true B", ".4g"),  # ... and on the true B: the ceiling
    "eval/fid": ("FID", ".4g"),
    "eval/kid": ("KID", ".4g"),
    "eval/fd_randconv": ("FD(randconv)", ".4g"),
    "eval/kd_randconv": ("KD(randconv)", ".4g"),
    "eval/precision": ("precision", ".3f"),  # Kynkäänniemi et al., k = 3, on the same features
    "eval/recall": ("recall", ".3f"),
    "eval/precision_randconv": ("precision(randconv)", ".3f"),
    "eval/recall_randconv": ("recall(randconv)", ".3f"),
    "eval/fd_shapes": ("FD(shapes)", ".4g"),  # eval.features=shapes: the judge trained on builtin:shapes
    "eval/kd_shapes": ("KD(shapes)", ".4g"),
    "eval/precision_shapes": ("precision(shapes)", ".3f"),
    "eval/recall_shapes": ("recall(shapes)", ".3f"),
    "eval/fd_digits": ("FD(digits)", ".4g"),  # eval.features=digits: the classifier trained on builtin:digits
    "eval/kd_digits": ("KD(digits)", ".4g"),
    "eval/precision_digits": ("precision(digits)", ".3f"),
    "eval/recall_digits": ("recall(digits)", ".3f"),
    "eval/modes": ("modes", ".0f"),
    "eval/modes_real": ("of real", ".0f"),
    "eval/mode_kl": ("mode KL", ".3f"),
    "goodput/fraction": ("goodput", ".3f"),  # productive / all time since the run first started (gandist.ledger)
}

# What each console line shows, in order (tags a run lacks are left out).
PROGRESS = ("loss/D", "loss/G", "loss/G_seg", "loss/G_l1", "D/real", "D/fake", "goodput/fraction")
SCORES = ("eval/miou", "eval/pixel_accuracy", "eval/foreground_iou", "eval/l1", "eval/psnr", "eval/ssim", "eval/seg_miou",
          "eval/seg_miou_real", "eval/fid", "eval/kid", "eval/precision", "eval/recall",
          "eval/fd_randconv", "eval/kd_randconv", "eval/precision_randconv", "eval/recall_randconv",
          "eval/fd_shapes", "eval/kd_shapes", "eval/precision_shapes", "eval/recall_shapes",
          "eval/fd_digits", "eval/kd_digits", "eval/precision_digits", "eval/recall_digits", "eval/modes", "eval/modes_real", "eval/mode_kl")
SUMMARY = SCORES + ("eval/miou_all_background", "goodput/fraction")


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


def live_tag(tag: str) -> str:
    """eval/<metric> of the live G, scored beside EMA G's under eval.live: eval/live/<metric>."""
    return "eval/live/" + tag.removeprefix("eval/")


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


def descriptions(cfg: Config) -> dict[str, str]:
    """What TensorBoard shows beside the tags whose meaning depends on the run's config."""
    if cfg.task.loss == LossName.rpgan:  # the loss sees only D(real) - D(fake) (R3GAN's Loss/signs/real)
        rt = "E[sign(D(real) - D(fake))] over the real/fake pairs (task.loss=rpgan)"
    else:
        rt = f"E[sign(D(real))] (task.loss={cfg.task.loss})"
    return {"D/real_sign": f"ADA's overfitting heuristic r_t, mean over the log window: {rt}",
            "augment/rt": f"task.ada_target: r_t of ADA's last adjustment window, all ranks: {rt}"}


def label(tag: str) -> str:
    return LABELS.get(tag, (tag, ""))[0]


def describe(values: dict[str, float], tags: tuple[str, ...]) -> list[str]:
    """``label value`` for each of ``tags`` present in ``values``."""
    return [f"{LABELS[t][0]} {values[t]:{LABELS[t][1]}}" for t in tags if t in values]


def headline_tags(cfg: Config) -> list[str]:
    """The scalars shown as metric columns in TensorBoard's HPARAMS view."""
    tags = ["loss/D", "loss/G", "D/real", "D/fake", "perf/images_per_s"]
    if cfg.task.name == TaskName.segment:
        return tags + ["loss/G_seg", "eval/miou", "eval/pixel_accuracy"]
    if cfg.task.name == TaskName.translate:
        tags += ["loss/G_l1", "eval/l1", "eval/psnr", "eval/ssim"] + (["eval/seg_miou"] if cfg.eval.segmenter else [])
    if cfg.eval.features == Features.inception:
        return tags + ["eval/fid", "eval/kid"]
    tags += [f"eval/fd_{cfg.eval.features}", f"eval/kd_{cfg.eval.features}"]
    if cfg.task.name == TaskName.translate:
        return tags
    return tags + (["eval/modes", "eval/mode_kl"] if cfg.eval.features in JUDGED_SOURCES else [])
