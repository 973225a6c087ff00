"""The fixed sets of values config fields take: ``str`` enums (OmegaConf's structured merge
rejects anything else, naming the key) and the augmentation op names."""

from __future__ import annotations

import enum


class Choice(str, enum.Enum):
    """A config value from a fixed set; compares, hashes and prints as its plain string."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class TaskName(Choice):
    generate = "generate"
    segment = "segment"
    translate = "translate"


class LossName(Choice):
    nonsat = "nonsat"
    hinge = "hinge"
    lsgan = "lsgan"
    rpgan = "rpgan"


class GDraw(Choice):
    shared = "shared"
    noise = "noise"
    batch = "batch"


class PenaltyKind(Choice):
    r1 = "r1"
    r1_r2 = "r1_r2"


class SegLoss(Choice):
    ce = "ce"
    ce_dice = "ce_dice"
    l1 = "l1"


class DInput(Choice):
    softmax = "softmax"
    scaling = "scaling"
    product = "product"


class Semi(Choice):
    none = "none"
    adversarial = "adversarial"
    self_training = "self_training"


class MapRange(Choice):
    signed = "signed"
    unit = "unit"


class DArch(Choice):
    patch = "patch"
    pixel = "pixel"


class Flips(Choice):
    none = "none"
    horizontal = "horizontal"
    both = "both"


class Arch(Choice):
    dcgan = "dcgan"
    pix2pix = "pix2pix"
    unet = "unet"
    r3gan = "r3gan"


class LrSchedule(Choice):
    constant = "constant"
    linear = "linear"
    cosine = "cosine"
    poly = "poly"


class EmaRamp(Choice):
    rampup = "rampup"
    cosine = "cosine"


class AmpMode(Choice):
    auto = "auto"
    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


class EvalGMode(Choice):
    ema = "ema"
    train_mode = "train_mode"


class Features(Choice):
    randconv = "randconv"
    inception = "inception"
    shapes = "shapes"
    digits = "digits"


# The judges among the extractors, and the builtin shard set each one reads.
JUDGED_SOURCES = {Features.shapes: "builtin:shapes", Features.digits: "builtin:digits"}


class LauncherName(Choice):
    ray = "ray"
    torchrun = "torchrun"
    local = "local"


class Backend(Choice):
    auto = "auto"
    gloo = "gloo"
    nccl = "nccl"


DIFFAUGMENT_OPS = ("color", "translation", "cutout")  # task.augment's DiffAugment ops (gandist.train.diffaugment)
# ... and ADA's, with its group names (gandist.train.ada_augment); "cutout" in an ADA list is ADA's
ADA_AUGMENT_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast",
                   "lumaflip", "hue", "saturation", "blit", "geom", "bg", "bgc")
AUGMENT_OPS = DIFFAUGMENT_OPS + ADA_AUGMENT_OPS
