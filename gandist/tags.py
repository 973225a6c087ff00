"""The one table from scalar tags (TensorBoard, metrics) to the labels people read on the
console: the progress line, the evaluation line, the end-of-run summary and the HPARAMS
columns all take their names from here."""

from __future__ import annotations

from gandist.config import Config, Features, TaskName

# tag -> (console label, number format)
LABELS: dict[str, tuple[str, str]] = {
    "loss/D": ("D", ".3f"),
    "loss/G": ("G", ".3f"),
    "loss/G_seg": ("seg", ".3f"),  # segment: the supervised loss (unweighted, as every loss/G_<term>)
    "D/real": ("D(real)", ".3f"),
    "D/fake": ("D(fake)", ".3f"),
    "eval/miou": ("held-out mIoU", ".4g"),
    "eval/pixel_accuracy": ("pixel accuracy", ".4g"),
    "eval/miou_all_background": ("all-background mIoU", ".4g"),  # the score of predicting background everywhere
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
    "eval/modes": ("modes", ".0f"),
    "eval/modes_real": ("of real", ".0f"),
    "eval/mode_kl": ("mode KL", ".3f"),
    "goodput/fraction": ("goodput", ".3f"),  # productive / all time since the run first started (gandist.ledger)
}

# What each console line shows, in order (tags a run lacks are left out).
PROGRESS = ("loss/D", "loss/G", "loss/G_seg", "D/real", "D/fake", "goodput/fraction")
SCORES = ("eval/miou", "eval/pixel_accuracy", "eval/fid", "eval/kid", "eval/precision", "eval/recall",
          "eval/fd_randconv", "eval/kd_randconv", "eval/precision_randconv", "eval/recall_randconv",
          "eval/fd_shapes", "eval/kd_shapes", "eval/precision_shapes", "eval/recall_shapes",
          "eval/modes", "eval/modes_real", "eval/mode_kl")
SUMMARY = SCORES + ("eval/miou_all_background", "goodput/fraction")


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
    if cfg.eval.features == Features.inception:
        return tags + ["eval/fid", "eval/kid"]
    tags += [f"eval/fd_{cfg.eval.features}", f"eval/kd_{cfg.eval.features}"]
    return tags + (["eval/modes", "eval/mode_kl"] if cfg.eval.features == Features.shapes else [])
