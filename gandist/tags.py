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


def live_tag(tag: str) -> str:
    """eval/<metric> of the live G, scored beside EMA G's under eval.live: eval/live/<metric>."""
    return "eval/live/" + tag.removeprefix("eval/")


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
