"""The configuration schema: dataclasses whose fields each carry a default and a one-line doc.

Choice fields are ``str`` enums, so OmegaConf's structured merge rejects a value that is not
one of them (naming the key) wherever a config is built: composed by the CLI, rebuilt on a
worker, or read back from a checkpoint. ``gandist.config.checks`` holds what types cannot say.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from gandist.config.choices import (
    AmpMode, Arch, Backend, Choice, DArch, DInput, EmaRamp, EvalGMode, Features, Flips, GDraw, LauncherName,
    LossName, LrSchedule, MapRange, PenaltyKind, SegLoss, Semi, TaskName,
)


def doc(default: Any, help: str) -> Any:
    """A dataclass field with a default and its one-line documentation."""
    return field(default=default, metadata={"help": help})


@dataclass
class TaskConfig:
    name: TaskName = doc(TaskName.generate, "what to train: generate (noise to image) | segment (image to class mask) | "
                         "translate (image A to image B, pix2pix)")
    loss: LossName = doc(LossName.nonsat, "adversarial loss: nonsat (non-saturating) | hinge | lsgan (least squares) | "
                         "rpgan (relativistic pairing, R3GAN; generate and translate)")
    gamma: float = doc(0.0, "weight of the zero-centred gradient penalties on D, (gamma / 2) x (R1 on reals + R2 on "
                       "fakes); 0 = off (R3GAN at 32 pixels: 0.05)")
    gamma_final: Optional[float] = doc(None, "task.gamma decays to this by trainer.max_steps (or trainer."
                                       "schedule_kimg) on a cosine (R3GAN: a tenth of task.gamma); null = constant")
    d_loss_scale: float = doc(1.0, "D's adversarial loss (real + fake terms) times this; the task.gamma penalties "
                              "are not scaled (pix2pix halves it: 0.5, the translate and segment_pix2pix presets)")
    penalty: PenaltyKind = doc(PenaltyKind.r1_r2, "gradient penalties under task.gamma: r1 (reals only, StyleGAN) | "
                               "r1_r2 (reals and fakes, R3GAN)")
    augment: list[str] = field(default_factory=list, metadata={"help": (
        "generate: differentiable augmentation of every image D sees, real and generated: DiffAugment's ops "
        "(color, translation, cutout, e.g. [color,translation,cutout]) or ADA's (xflip, rotate90, xint, scale, "
        "rotate, aniso, xfrac, brightness, contrast, lumaflip, hue, saturation, cutout; groups blit, geom, bg, "
        "bgc; e.g. [bgc,cutout] as R3GAN); [] = none")})
    augment_p: Optional[float] = doc(None, "generate, task.augment: probability each op is applied to each image "
                                     "(with task.ada_target: where p starts); null = 1, or 0 with task.ada_target")
    augment_p_kimg: Optional[float] = doc(None, "generate, task.augment: p rises from 0 to task.augment_p on a "
                                          "half cosine over this many thousand images, then stays (R3GAN CIFAR-10: "
                                          "0.55 over 20000); null = p is task.augment_p throughout")
    augment_color_p: float = doc(1.0, "generate, task.augment with ADA's colour ops: their probability as a "
                                 "multiple of p (StyleGAN2-ADA's bgc: 1; R3GAN's presets: 0.5)")
    ada_target: Optional[float] = doc(None, "generate, task.augment: adapt p so that r_t = E[sign(D(real))] (rpgan: "
                                      "E[sign(D(real) - D(fake))]) stays at this (StyleGAN2-ADA: 0.6); null = p "
                                      "stays task.augment_p")
    ada_kimg: float = doc(500.0, "generate, task.ada_target: thousands of images for p to move from 0 to 1 at most "
                          "(StyleGAN2-ADA's 500; gandist had 100 before issue 34)")
    g_draw: GDraw = doc(GDraw.shared, "generate: what G's phase trains on: shared (the fakes D was just updated "
                        "against: one G forward per step, as the PyTorch DCGAN example) | noise (its own noise and G "
                        "forward, D's real batch) | batch (its own noise and a second real batch, as StyleGAN2-ADA "
                        "and R3GAN: each step reads twice the images)")
    ada_interval: int = doc(4, "generate, task.ada_target: steps between adjustments of p")
    penalty_every: int = doc(1, "apply the penalties every this many steps, at this many times the weight (lazy "
                             "regularization, StyleGAN2: 16)")
    seg_loss: SegLoss = doc(SegLoss.ce, "segment: G's supervised loss: ce (cross-entropy) | ce_dice (cross-entropy + "
                            "soft Dice) | l1 (L1 between class probabilities and one-hot masks, pix2pix)")
    seg_weight: float = doc(1.0, "segment: weight of task.seg_loss in G's loss")
    adv_weight: float = doc(0.01, "segment, translate: weight of the adversarial term in G's loss (0 = supervised "
                            "only, D not trained)")
    l1_weight: float = doc(100.0, "translate: weight of the L1 distance between G's image and the true B in G's loss "
                           "(pix2pix: 100; 0 = adversarial only)")
    d_input: DInput = doc(DInput.softmax, "segment: how D sees class maps: softmax (one-hot real, predicted "
                          "probabilities) | scaling (Luc et al.: real one-hot softened towards the prediction) | "
                          "product (each class map times the image)")
    d_image: Optional[bool] = doc(None, "segment: D also sees the image, concatenated in front of the class maps; "
                                  "null = false with task.semi=adversarial (Hung et al.), else true")
    d_map_range: Optional[MapRange] = doc(None, "segment, task.d_input=softmax or scaling: the class maps' range in "
                                          "D's input: signed ([-1, 1], the images') | unit ([0, 1] as they are); "
                                          "null = unit with task.semi=adversarial (Hung et al.), else signed")
    g_first: Optional[bool] = doc(None, "segment: G's phase runs before D's, so both read D from before its update "
                                  "in that step (Hung et al.); null = true with task.semi=adversarial, else false "
                                  "(D first, pix2pix)")
    scaling_tau: float = doc(0.9, "segment, task.d_input=scaling: the least probability the true class keeps")
    semi: Semi = doc(Semi.none, "segment: learning from unlabeled images (data.unlabeled_url or data.label_fraction): "
                     "none | adversarial (Hung et al.: pixels D's confidence map trusts become pseudo-labels) | "
                     "self_training (the control: pixels G's own top probability trusts; no D needed)")
    semi_weight: float = doc(0.1, "segment, task.semi: weight of the pseudo-label cross-entropy in G's loss")
    semi_threshold: Optional[float] = doc(None, "segment, task.semi: confidence above which a pixel becomes a "
                                          "pseudo-label; null = 0.2 for adversarial (Hung et al.), 0.9 for "
                                          "self_training")
    semi_start: float = doc(0.25, "segment, task.semi: fraction of trainer.max_steps before the pseudo-label term "
                            "switches on (Hung et al.: 5,000 of 20,000 steps)")
    adv_unlabeled_weight: float = doc(0.001, "segment, task.semi: weight of the adversarial term on unlabeled "
                                      "predictions in G's loss (0 for self_training's D-less runs)")
    d_unlabeled: bool = doc(True, "segment, task.semi: D also learns from the unlabeled predictions as fake "
                            "(Hung et al.'s --D-remain, default true); false = from the labeled ones only")


@dataclass
class ModelConfig:
    arch: Arch = doc(Arch.dcgan, "network pair: dcgan (generate) | r3gan (generate: R3GAN's normalization-free "
                    "ResNeXt G and D) | unet (segment, translate: Ronneberger's U-Net of "
                    "3x3 conv blocks + the pix2pix D) | pix2pix (segment, translate: pix2pix's U-Net + PatchGAN D)")
    resolution: int = doc(64, "image side in pixels; must equal the shard set's image_size")
    z_dim: int = doc(128, "generate: length of the noise vector")
    g_width: int = doc(64, "generator base channel count")
    d_width: int = doc(64, "discriminator base channel count")
    dropout: float = doc(0.5, "pix2pix: dropout in the log2(resolution) - 5 U-Net decoder blocks just outside the "
                         "innermost, as pix2pix's code (3 at 256 px, 1 at 64, none at 32; its paper's text says the "
                         "first three decoder layers)")
    g_refine: int = doc(0, "pix2pix: channels of a full-resolution head that sees the U-Net's last features and the "
                        "image (a 3x3 conv, then 1x1 to the classes); 0 = pix2pix's U-Net, whose last layer "
                        "predicts from half-resolution features")
    d_layers: int = doc(3, "unet, pix2pix: D's stride-2 layers (3 gives the 70x70 PatchGAN)")
    stage_widths: Optional[list[int]] = doc(None, "r3gan: channels of each stage from 4x4 up to model.resolution (D "
                                            "mirrors them); null = model.g_width (G) and model.d_width (D) at "
                                            "every stage")
    blocks: int = doc(2, "r3gan: residual blocks per stage, in G and in D")
    expansion: int = doc(2, "r3gan: a block's inner width as a multiple of its stage's width")
    group_channels: int = doc(16, "r3gan: channels per group of a block's grouped 3x3 conv")
    conditional: bool = doc(False, "generate: class-conditional G (a class embedding beside the noise) and projection "
                            "D, on the shard set's image labels (--layout classes, builtin:shapes, builtin:digits)")
    d_arch: DArch = doc(DArch.patch, "unet, pix2pix: patch (PatchGAN, one logit per patch) | pixel (fully convolutional, "
                        "a confidence map at the input resolution, Hung et al.)")
    d_stride: Optional[int] = doc(None, "model.d_arch=pixel: output stride of D's map before it is upsampled (a power "
                                  "of two; Hung et al.: 32 at 321 px, a 10x10 map); null = 32 where the map is "
                                  "at least 8x8, else model.resolution / 8")


@dataclass
class DataConfig:
    url: str = doc("runs/data/shapes", "shard set written by `gandist shard` (local path or fsspec URL)")
    batch_size: int = doc(32, "samples per worker per step (global batch = this x trainer.num_workers)")
    loader_workers: int = doc(2, "DataLoader processes per training worker (0 reads in the training process)")
    shuffle_buffer: int = doc(256, "samples held by each loader worker's shuffle buffer")
    eval_split: str = doc("heldout", "shard-set split used for evaluation")
    classes: Optional[list[str]] = doc(None, "segment: the classes the shard set must have, in order (null = any)")
    max_bad_fraction: float = doc(0.01, "corrupt samples a loader worker skips (fraction of its part) before failing")
    flips: Flips = doc(Flips.none, "augmentation: random flips of each training image (and its mask): none | "
                       "horizontal | both (horizontal and vertical)")
    crop_scale: float = doc(1.0, "augmentation: random crops (image and mask alike) of at least this fraction "
                            "of the side, resized back to model.resolution (1 = no crops)")
    load_scale: float = doc(1.0, "augmentation: resize each training image (its B image, its mask by nearest) to "
                            "round(this x model.resolution), then crop model.resolution back at a random place, the "
                            "same for all (pix2pix's resize_and_crop, 286/256 = 1.1171875); 1 = off")
    label_fraction: float = doc(1.0, "segment: keep the masks of only this fraction of data.url's training samples "
                                "(a fixed choice, the same on every machine, world size and seed); with "
                                "task.semi the rest are read as unlabeled images")
    unlabeled_url: Optional[str] = doc(None, "segment, task.semi: a second shard set whose images are read without "
                                       "their masks (any layout gandist shard writes); null = the rest of data.url "
                                       "under data.label_fraction")
    pin_memory: Optional[bool] = doc(None, "batches in pinned host memory, copied to the GPU without blocking; "
                                     "null = on GPU")


@dataclass
class TrainerConfig:
    num_workers: int = doc(2, "DDP training workers (processes); one per GPU on GPU nodes")
    min_workers: Optional[int] = doc(None, "ray: elastic, start with as few as this many workers when no more "
                                     "fit, up to trainer.num_workers; null = exactly trainer.num_workers")
    use_gpu: Optional[bool] = doc(None, "train on GPUs; null = use them when the cluster has any")
    max_steps: int = doc(2000, "optimisation steps to train for (one step = D update + G update)")
    ckpt_every: Union[int, str] = doc(500, "steps between checkpoints, or auto: the Young-Daly interval "
                                      "sqrt(2 x checkpoint stall x MTBF), from the stall and step time measured as the "
                                      "run goes (a checkpoint is also written at the end)")
    mtbf_hours: float = doc(50000.0, "ckpt_every=auto: mean hours between failures of one worker; the run's MTBF is "
                            "this / the number of workers (default: Llama 3's 419 unexpected interruptions in 54 "
                            "days on 16,384 GPUs)")
    keep_checkpoints: int = doc(3, "how many recent checkpoints to keep (without trainer.keep_best)")
    keep_best: int = doc(0, "keep the K best checkpoints by trainer.best_metric, and always the newest one (Ray Train's "
                         "checkpoint score); a checkpoint is then also taken at each evaluation; 0 = off")
    best_metric: Optional[str] = doc(None, "the score that ranks checkpoints (keep_best, --best), e.g. eval/miou "
                                     "(higher is better) or eval/fid, eval/fd_shapes (lower is better); null = the "
                                     "task's headline score")
    log_every: int = doc(20, "steps between scalar logs (losses, throughput)")
    image_every: int = doc(250, "steps between image grids in TensorBoard")
    lr_g: float = doc(2e-4, "generator Adam learning rate")
    lr_d: Optional[float] = doc(None, "discriminator Adam learning rate; null = 1e-4 with task.semi=adversarial "
                                "(Hung et al.), else 2e-4")
    lr_schedule: LrSchedule = doc(LrSchedule.constant, "constant | linear (pix2pix: constant, then linear decay to "
                                  "trainer.lr_final at max_steps) | cosine (R3GAN: the same on a half cosine) | "
                                  "poly (Hung et al., DeepLab: x (1 - step / max_steps)^0.9 from the start)")
    d_lr_schedule: Optional[LrSchedule] = doc(None, "D's learning-rate schedule; null = poly with "
                                              "task.semi=adversarial (Hung et al.), else trainer.lr_schedule")
    lr_decay_start: float = doc(0.5, "linear, cosine schedules: fraction of trainer.max_steps (or "
                                "trainer.schedule_kimg) after which the decay begins")
    lr_final: float = doc(0.0, "linear, cosine schedules: fraction of the base rates reached at trainer.max_steps "
                          "(R3GAN: 0.25)")
    schedule_kimg: Optional[float] = doc(None, "thousands of images over which every decaying schedule (learning "
                                         "rates, beta2, task.gamma, the cosine EMA ramp) runs, then holds its final "
                                         "value (R3GAN's CIFAR-10: 20000); null = trainer.max_steps")
    beta1: float = doc(0.5, "Adam beta1 (pix2pix/DCGAN use 0.5)")
    beta2: float = doc(0.999, "Adam beta2")
    d_beta1: Optional[float] = doc(None, "D's Adam beta1; null = 0.9 with task.semi=adversarial (Hung et al.), "
                                   "else trainer.beta1")
    d_beta2: Optional[float] = doc(None, "D's Adam beta2; null = 0.99 with task.semi=adversarial (Hung et al.), "
                                   "else trainer.beta2")
    beta2_final: Optional[float] = doc(None, "Adam beta2 moves to this by trainer.max_steps (or trainer.schedule_kimg) "
                                       "on a cosine (R3GAN: 0.9 to 0.99); null = constant")
    ema_kimg: float = doc(10.0, "half-life of the generator EMA, in thousands of images (R3GAN's CIFAR-10: 5000)")
    ema_ramp: EmaRamp = doc(EmaRamp.rampup, "how the EMA half-life grows to trainer.ema_kimg: rampup (StyleGAN2-ADA: "
                            "at most trainer.ema_rampup x images seen) | cosine (R3GAN: from 0 on a half cosine over "
                            "trainer.schedule_kimg, or the run, then held)")
    ema_rampup: float = doc(0.05, "ema_ramp=rampup: EMA half-life is at most this fraction of images seen (0 = off)")
    seed: int = doc(0, "the one seed; every other seed is derived from it")
    max_failures: int = doc(0, "worker-group restarts Ray Train may make after a failure")
    amp: AmpMode = doc(AmpMode.auto, "mixed precision: auto (bf16 on GPUs that support it, else off) | off | bf16 (autocast) "
                   "| fp16 (autocast + one grad scaler per network)")
    channels_last: Optional[bool] = doc(None, "channels-last (NHWC) networks and batches; null = on GPU")
    cudnn_benchmark: bool = doc(True, "GPU: let cuDNN time and pick the fastest convolution algorithms")
    fused_adam: bool = doc(True, "Adam's update as one fused kernel per network (torch's fused=True, CPU and GPU); "
                           "false = torch's default implementation")
    compile: bool = doc(False, "torch.compile G and D (faster steps after minutes of compiling at the start)")
    max_bad_steps: int = doc(5, "non-finite loss or gradient: skip the step on every rank; stop (or, with "
                             "max_rollbacks, roll back) after this many in a row")
    max_rollbacks: int = doc(0, "a collapse (see collapse.*) rolls G, D and their optimizers back to the best or last "
                             "good checkpoint at most this many times per run; 0 = only warn")
    async_checkpoint: bool = doc(True, "ray: upload checkpoints in the background (the final one is waited for); "
                                 "false = training waits for each upload")


@dataclass
class EvalConfig:
    every: int = doc(250, "steps between evaluations of EMA G (also at the end), split across all workers")
    batches: int = doc(16, "segment, translate: held-out batches evaluated per worker (0 = the whole split)")
    g_mode: EvalGMode = doc(EvalGMode.ema, "which G is scored: ema (EMA G in eval mode: dropout off, BatchNorm "
                            "statistics refitted on eval.bn_batches) | train_mode (segment, translate; pix2pix's "
                            "test without --eval, its presets' default: the live G in train mode, one image at a "
                            "time, dropout on)")
    bn_batches: int = doc(8, "segment, translate, eval.g_mode=ema: training batches (the same on every rank) on which "
                          "EMA G's BatchNorm statistics are recomputed before each evaluation; 0 = the live G's, "
                          "copied at every step")
    live: bool = doc(False, "also score the live G in eval mode (its own statistics), tags eval/live/<metric>")
    samples: int = doc(1024, "generate: images generated per evaluation, compared with as many real held-out images")
    features: Features = doc(Features.randconv, "generate, translate: feature extractor for the distances: randconv (offline, fixed random "
                        "conv net: tags eval/fd_randconv, eval/kd_randconv) | inception (FID/KID, needs "
                        "eval.inception_weights) | shapes (builtin:shapes only: a judge trained on the shapes, "
                        "tags eval/fd_shapes ..., and mode coverage eval/modes, eval/mode_kl) | digits "
                        "(builtin:digits only: a digit classifier, tags eval/fd_digits ..., eval/modes: digits read)")
    inception_weights: Optional[str] = doc(None, "path or URL of pt_inception-2015-12-05-6726825d.pth (pytorch-fid) or "
                                           "weights-inception-2015-12-05-6726825d.pth (torch-fidelity): the standard "
                                           "FID Inception weights; never downloaded")
    segmenter: Optional[str] = doc(None, "translate: a gandist segment run directory or checkpoint trained on the "
                                   "B images of the same data (e.g. builtin:shapes): it segments every generated B, "
                                   "scored against the true mask (eval/seg_miou, the pix2pix paper's FCN-score; "
                                   "eval/seg_miou_real on the true B); null = not scored")


@dataclass
class StorageConfig:
    endpoint_url: Optional[str] = doc(None, "S3-compatible endpoint (e.g. MinIO); null = AWS or local files")
    profile: Optional[str] = doc(None, "AWS credentials profile (~/.aws/credentials); null = AWS_* variables")


@dataclass
class RunConfig:
    name: str = doc("gandist", "run name; running again with the same name resumes from its checkpoints")
    storage: str = doc("runs/store", "where runs live: <storage>/<name> holds checkpoints and TensorBoard logs")
    log_sync_s: float = doc(30.0, "remote run.storage: seconds between background uploads of TensorBoard logs "
                            "and sample grids (also uploaded at the end)")


@dataclass
class LauncherConfig:
    name: LauncherName = doc(LauncherName.ray, "ray (Ray Train workers) | torchrun (one process per rank) | local (one process)")
    ray_address: Optional[str] = doc(None, "Ray cluster to join; null = RAY_ADDRESS, else a new local cluster")
    backend: Backend = doc(Backend.auto, "collective backend: auto (nccl on GPU, gloo on CPU) | gloo | nccl")
    socket_ifname: Optional[str] = doc(None, "network interface every worker's collectives bind to (sets "
                                       "GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME), e.g. eth0; needed across "
                                       "nodes whose hostname resolves to 127.0.0.1; null = gloo/NCCL choose")


@dataclass
class FaultsConfig:
    kill_rank: Optional[int] = doc(None, "fault drill: this rank SIGKILLs its own process (once per run); null = off")
    at_step: int = doc(0, "fault drill: the step after which trainer rank faults.kill_rank dies")
    nan_rank: Optional[int] = doc(None, "divergence drill: this rank's losses become NaN; null = off")
    nan_at_step: int = doc(0, "divergence drill: the first step (1-based) with NaN losses on faults.nan_rank")
    nan_steps: int = doc(1, "divergence drill: how many steps in a row have NaN losses")
    collapse_at_step: Optional[int] = doc(None, "collapse drill: after this step D's weights become NaN on every rank "
                                          "(trainer.max_rollbacks > 0 rolls back); null = off")


@dataclass
class CollapseConfig:
    gap_limit: float = doc(20.0, "D's logit gap D(real) - D(fake) at or above this for collapse.window logs is a "
                           "collapse (D wins outright)")
    rt_limit: Optional[float] = doc(None, "r_t = E[sign D(real)] at or above this for collapse.window logs is a "
                                    "collapse (D sure of the real images: overfitting), e.g. 0.99 for small-data "
                                    "generation without ADA; null = not watched (a segment D is sure of real masks)")
    window: int = doc(5, "logs in a row a D signal must stay at its limit")
    metric_margin: float = doc(0.25, "the evaluation score (trainer.best_metric) worse than the run's best by this "
                               "fraction for collapse.patience evaluations in a row is a collapse")
    patience: int = doc(3, "evaluations in a row")
    lr_factor: float = doc(0.5, "each rollback multiplies both learning rates by this")
    gamma_factor: float = doc(2.0, "each rollback multiplies the gradient penalty weight (task.gamma) by this")


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    run: RunConfig = field(default_factory=RunConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)
    collapse: CollapseConfig = field(default_factory=CollapseConfig)

    def __post_init__(self) -> None:
        """Keys whose default depends on another key take it here, once, so that what runs is what
        the saved config, the checkpoint check and --dry-run show. task.semi=adversarial means Hung
        et al.'s D unless a key says otherwise: class maps alone in [0, 1], Adam betas (0.9, 0.99),
        rate 1e-4, on a poly decay, G's losses read before D's update."""
        t, tr = self.task, self.trainer
        hung = t.name == TaskName.segment and t.semi == Semi.adversarial
        if t.d_image is None:
            t.d_image = not hung
        if t.d_map_range is None:
            t.d_map_range = MapRange.unit if hung else MapRange.signed
        if t.g_first is None:
            t.g_first = hung
        if tr.lr_d is None:
            tr.lr_d = 1e-4 if hung else 2e-4
        if hung:
            tr.d_beta1 = 0.9 if tr.d_beta1 is None else tr.d_beta1
            tr.d_beta2 = 0.99 if tr.d_beta2 is None else tr.d_beta2
            tr.d_lr_schedule = LrSchedule.poly if tr.d_lr_schedule is None else tr.d_lr_schedule

    def to_dict(self) -> dict:
        """Plain values only (choices as strings): for YAML, checkpoints, HPARAMS and Ray workers."""
        return dataclasses.asdict(self, dict_factory=_plain)


def _plain(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, Choice) else v for k, v in items}
