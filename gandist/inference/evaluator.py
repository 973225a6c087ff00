"""Evaluation of EMA G, split across all ranks and reduced; every rank calls it together.

generate: the Fréchet and kernel distances between the features of ``eval.samples``
generated images (fixed noise, so successive evaluations compare) and as many real images
of the held-out split. The real side is extracted once per process and kept. A conditional G
generates each real image's class, so the class mix is the data's, and the Fréchet distance
is also given per class.
segment: per-class IoU, mIoU and pixel accuracy of the predicted masks on the held-out split.
translate: on held-out pairs, L1, PSNR and SSIM of each generated B against its true B, the
distances between the generated and the true B images' features, and with eval.segmenter the
mIoU of a gandist segmenter on the generated B against the true masks (the pix2pix paper's
FCN-score), beside its mIoU on the true B (the ceiling).
"""

from __future__ import annotations

import logging
import time
from typing import Optional

import torch
from torch import Tensor, nn

from gandist.config import Config, ConfigError, EvalGMode, TaskName
from gandist.inference.g_modes import eval_mode, pix2pix_test_mode, recompute_bn_stats
from gandist.inference.grids import as_rgb
from gandist.inference.saved_run import load_run
from gandist.data.manifest import Manifest
from gandist.data.loader import epoch_loader
from gandist.data.stream import covering_batch_size
from gandist.metrics.distance import Distances
from gandist.metrics.features import distance_tags, full_precision, make_extractor
from gandist.metrics.precision_recall import precision_recall
from gandist.metrics.translation import PAIR_SCORES, pair_scores
from gandist.metrics.judges import mode_scores
from gandist.metrics.segmentation import confusion_matrix, segmentation_scores
from gandist.seeding import derive_seed
from gandist.collectives import all_reduce_sum, broadcast_object, gather_objects
from gandist.tags import live_tag

log = logging.getLogger("gandist.train")


def share(counts: int, rank: int, world_size: int) -> int:
    """Rank ``rank``'s part of ``counts`` items split as evenly as possible."""
    return counts // world_size + (1 if rank < counts % world_size else 0)


def gather_rows(t: Tensor) -> Tensor:
    """Every rank's [n_r, D] rows, concatenated in rank order, on every rank (CPU)."""
    return torch.cat(gather_objects(t.cpu()))


class Evaluator:
    """Built once per training process (or by ``gandist evaluate``); call it with EMA G."""

    def __init__(self, cfg: Config, manifest: Manifest, rank: int, world_size: int, device: torch.device,
                 classes: Optional[list[str]] = None) -> None:
        self.cfg, self.manifest = cfg, manifest
        self.rank, self.world_size, self.device = rank, world_size, device
        self.classes = classes or []
        self.split = self._pick_split()
        self.extractor: Optional[nn.Module] = None
        self.real: Optional[tuple[Distances, Tensor]] = None
        self.real_labels: Optional[Tensor] = None  # conditional: the classes of the real side
        self.real_modes: Optional[Tensor] = None  # eval.features=shapes: the judge's modes of the real side
        self.segmenter: Optional[nn.Module] = None  # translate, eval.segmenter: its EMA G
        self.real_seg: Optional[Tensor] = None  # ... and its confusion matrix on the true B images

    def _pick_split(self) -> Optional[str]:
        split = self.cfg.data.eval_split
        if split in self.manifest.splits and self.manifest.samples(split) >= self.world_size:
            return split
        if self.cfg.task.name == TaskName.generate and self.manifest.samples("train") >= 2 * self.world_size:
            if self.rank == 0:
                log.warning("The shard set has no %r split with at least %d samples: generation is compared "
                            "with training images", split, self.world_size)
            return "train"
        if self.rank == 0:
            log.warning("No evaluation: the shard set has no %r split with at least %d samples",
                        split, self.world_size)
        return None

    def __call__(self, G_ema: nn.Module, G: Optional[nn.Module] = None) -> dict[str, float]:
        """Scores of the G that eval.g_mode names: EMA G, or the live ``G`` in pix2pix's train
        mode; with eval.live, the live ``G``'s in eval mode too (eval/live/<metric>)."""
        if self.split is None:
            return {}
        began = time.perf_counter()
        e = self.cfg.eval
        with torch.no_grad():
            if e.g_mode == EvalGMode.train_mode:
                if G is None:
                    raise ConfigError("eval.g_mode=train_mode scores the live G, which this caller did not give")
                with pix2pix_test_mode(G, derive_seed(self.cfg.trainer.seed, "eval-dropout"), self.device) as net:
                    scores = self._score(net)
            else:
                self._refit_bn(G_ema)
                scores = self._score(G_ema)
            if e.live and G is not None:
                with eval_mode(G):
                    scores.update({live_tag(k): v for k, v in self._score(G).items()})
        scores["eval/time_s"] = time.perf_counter() - began
        return scores

    def _score(self, G: nn.Module) -> dict[str, float]:
        task = self.cfg.task.name
        return (self._generate(G) if task == TaskName.generate else
                self._translate(G) if task == TaskName.translate else self._segment(G))

    def _refit_bn(self, G_ema: nn.Module) -> None:
        """EMA G's BatchNorm statistics recomputed for its weights on the first eval.bn_batches
        training batches, the same on every rank (no collective; `gandist evaluate` gets the
        same). generate: not done (G's input is noise: the live G's statistics stay)."""
        if not self.cfg.eval.bn_batches or self.cfg.task.name == TaskName.generate:
            return
        samples = self.manifest.samples("train")
        loader = epoch_loader(self.cfg.data.url, split="train", batch_size=max(1, min(self.cfg.data.batch_size,
                              samples)), num_workers=0, epoch=0, seed=self.cfg.trainer.seed, with_masks=False,
                              manifest=self.manifest)
        images = (batch["image"].to(self.device) for _, batch in zip(range(self.cfg.eval.bn_batches), loader))
        recompute_bn_stats(G_ema, images)

    def _held_out_batch(self, samples: int) -> int:
        """data.batch_size, or with eval.batches=0 (every held-out image) the batch size up to it
        whose whole batches read them all (a stream yields whole batches only)."""
        cap = max(1, min(self.cfg.data.batch_size, samples // self.world_size))
        return cap if self.cfg.eval.batches else covering_batch_size(samples, self.world_size, cap)

    # -- segment -----------------------------------------------------------------------------
    def _segment(self, G_ema: nn.Module) -> dict[str, float]:
        num_classes = len(self.classes)
        samples = self.manifest.samples(self.split)
        batch_size = self._held_out_batch(samples)
        loader = epoch_loader(self.cfg.data.url, split=self.split, batch_size=batch_size, rank=self.rank,
                              world_size=self.world_size, num_workers=0, epoch=0, seed=self.cfg.trainer.seed,
                              shuffle=False)
        conf = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=self.device)
        for i, batch in enumerate(loader):
            if self.cfg.eval.batches and i >= self.cfg.eval.batches:
                break
            pred = G_ema(batch["image"].to(self.device)).argmax(dim=1)
            conf += confusion_matrix(pred, batch["mask"].to(self.device), num_classes)
        conf = all_reduce_sum(conf).cpu()
        scores = segmentation_scores(conf)
        out = {"eval/miou": scores["miou"], "eval/pixel_accuracy": scores["pixel_accuracy"],
               "eval/foreground_iou": scores["foreground_iou"]}
        for name, iou in zip(self.classes, scores["iou"]):
            out[f"eval/iou/{name}"] = iou
        # The floor to beat: the same targets, every pixel predicted as background (class 0).
        all_background = torch.zeros_like(conf)
        all_background[:, 0] = conf.sum(dim=1)
        out["eval/miou_all_background"] = segmentation_scores(all_background)["miou"]
        return out

    # -- translate ---------------------------------------------------------------------------
    def _translate(self, G_ema: nn.Module) -> dict[str, float]:
        """Every rank its share of the held-out pairs (eval.batches of them, 0 = all); the true
        B's features and segmentation once per process, as they do not change."""
        samples = self.manifest.samples(self.split)
        batch_size = self._held_out_batch(samples)
        segmenter = self._segmenter()
        loader = epoch_loader(self.cfg.data.url, split=self.split, batch_size=batch_size, rank=self.rank,
                              world_size=self.world_size, num_workers=0, epoch=0, seed=self.cfg.trainer.seed,
                              shuffle=False, with_masks=segmenter is not None)
        first = self.real is None
        if first:
            self.extractor = make_extractor(self.cfg.eval.features, self.cfg.eval.inception_weights, self.device)
        num_classes = len(self.manifest.classes or [])
        sums = torch.zeros(len(PAIR_SCORES) + 1, dtype=torch.float64, device=self.device)  # and the count
        conf = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=self.device)
        real_conf = torch.zeros_like(conf)
        fake_feats, real_feats = [], []
        for i, batch in enumerate(loader):
            if self.cfg.eval.batches and i >= self.cfg.eval.batches:
                break
            image, target = batch["image"].to(self.device), batch["target"].to(self.device)
            fake = G_ema(image).float().clamp(-1, 1)  # as a saved image would be
            scores = pair_scores((fake + 1) / 2, (target + 1) / 2)
            sums += torch.cat([scores.sum(0).double(), torch.tensor([scores.shape[0]], dtype=torch.float64,
                                                                  device=self.device)])
            fake_feats.append(self._features(as_rgb(fake)))
            if first:
                real_feats.append(self._features(as_rgb(target)))
            if segmenter is not None:
                mask = batch["mask"].to(self.device)
                conf += confusion_matrix(segmenter(as_rgb(fake)).argmax(dim=1), mask, num_classes)
                if first:
                    real_conf += confusion_matrix(segmenter(as_rgb(target)).argmax(dim=1), mask, num_classes)
        sums = all_reduce_sum(sums).cpu()
        count = max(1.0, float(sums[-1]))
        out = {f"eval/{name}": float(sums[k]) / count for k, name in enumerate(PAIR_SCORES)}
        if segmenter is not None:
            if first:
                self.real_seg = all_reduce_sum(real_conf).cpu()
            seg, real_seg = segmentation_scores(all_reduce_sum(conf).cpu()), segmentation_scores(self.real_seg)
            out.update({"eval/seg_miou": seg["miou"], "eval/seg_pixel_accuracy": seg["pixel_accuracy"],
                        "eval/seg_miou_real": real_seg["miou"],
                        "eval/seg_pixel_accuracy_real": real_seg["pixel_accuracy"]})
        dim = self.extractor.dim
        fake = gather_rows(torch.cat(fake_feats) if fake_feats else torch.zeros(0, dim)).to(self.device)
        if first:
            real = gather_rows(torch.cat(real_feats) if real_feats else torch.zeros(0, dim)).to(self.device)
            self.real = (Distances(real), real)
        distances: dict[str, float] = {}
        if self.rank == 0:
            fd_tag, kd_tag = distance_tags(self.extractor)
            try:
                distances = dict(zip((fd_tag, kd_tag), self.real[0](fake)))
            except ValueError as e:  # a diverged EMA G: report it, do not end the run here
                log.warning("Evaluation: %s", e)
                distances = {fd_tag: float("nan"), kd_tag: float("nan")}
        return {**out, **broadcast_object(distances)}

    def _segmenter(self) -> Optional[nn.Module]:
        """eval.segmenter's EMA G (a gandist segment checkpoint), once per process; refused
        unless it segments this shard set's classes at its resolution."""
        if not self.cfg.eval.segmenter or self.segmenter is not None:
            return self.segmenter
        run = load_run(self.cfg.eval.segmenter, device=self.device)
        wanted = self.manifest.classes
        if run.cfg.task.name != TaskName.segment or run.classes != wanted:
            raise ConfigError(f"eval.segmenter={self.cfg.eval.segmenter} is a task={run.cfg.task.name} run with "
                              f"classes {run.classes}; it must be a task=segment run on the classes {wanted} of "
                              f"data.url={self.cfg.data.url} (e.g. trained on its source's photos)")
        if run.cfg.model.resolution != self.manifest.image_size:
            raise ConfigError(f"eval.segmenter={self.cfg.eval.segmenter} takes {run.cfg.model.resolution}-pixel "
                              f"images, data.url={self.cfg.data.url} holds {self.manifest.image_size}-pixel ones; "
                              "train the segmenter at the same size")
        if self.rank == 0:
            log.info("Evaluation: generated B images segmented by %s (step %d)", run.checkpoint, run.step)
        self.segmenter = run.G_ema
        return self.segmenter

    # -- generate ----------------------------------------------------------------------------
    def _features(self, images: Tensor, modes: Optional[list[Tensor]] = None) -> Tensor:
        """The extractor's features of ``images``; a judge's modes of them appended to ``modes``."""
        assert self.extractor is not None
        with full_precision():  # no TF32: GPU and CPU scores compare
            if modes is None or not hasattr(self.extractor, "describe"):
                return self.extractor(images.to(self.device)).float().cpu()
            features, judged = self.extractor.describe(images.to(self.device))
            modes.append(judged.cpu())
            return features.float().cpu()

    def _judged(self, modes: list[Tensor]) -> Optional[Tensor]:
        """Every rank's modes in rank order, or None without a judge."""
        if not hasattr(self.extractor, "describe"):
            return None
        return gather_rows(torch.cat(modes) if modes else torch.zeros(0, dtype=torch.long))

    def _real_features(self) -> tuple[Distances, Tensor]:
        """The real side, once per process: this rank's share of the split, gathered."""
        if self.real is None:
            self.extractor = make_extractor(self.cfg.eval.features, self.cfg.eval.inception_weights, self.device)
            count = min(self.cfg.eval.samples, self.manifest.samples(self.split))
            mine = share(count, self.rank, self.world_size)
            batch_size = covering_batch_size(self.manifest.samples(self.split), self.world_size,
                                             min(self.cfg.data.batch_size, mine))
            loader = epoch_loader(self.cfg.data.url, split=self.split, batch_size=batch_size, rank=self.rank,
                                  world_size=self.world_size, num_workers=0, epoch=0,
                                  seed=self.cfg.trainer.seed, shuffle=False, with_masks=False)
            conditional = self.cfg.model.conditional
            feats, labels, modes, have = [], [], [], 0
            for batch in loader:
                if have >= mine:
                    break
                images = batch["image"][: mine - have]
                feats.append(self._features(images, modes))
                if conditional:
                    labels.append(batch["label"][: mine - have])
                have += images.shape[0]
            local = torch.cat(feats) if feats else torch.zeros(0, self.extractor.dim)
            real = gather_rows(local).to(self.device)  # the distances are computed on this device
            if conditional:
                self.real_labels = gather_rows(torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long))
            self.real_modes = self._judged(modes)
            self.real = (Distances(real), real)
            if self.rank == 0:
                log.info("Evaluation: %d real %s images from split %r, %s features",
                         real.shape[0], "held-out" if self.split != "train" else "training", self.split,
                         self.extractor.name)
        return self.real

    def _generate(self, G_ema: nn.Module) -> dict[str, float]:
        distances, real = self._real_features()
        count = real.shape[0]  # as many fakes as reals: the distances are biased by the sample size
        # One fixed noise set, sliced by rank: the same images whatever the number of workers.
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.trainer.seed, "eval-noise"))
        z_all = torch.randn(count, self.cfg.model.z_dim, generator=gen)
        first = sum(share(count, r, self.world_size) for r in range(self.rank))
        mine = slice(first, first + share(count, self.rank, self.world_size))
        z_mine, batch = z_all[mine], self.cfg.data.batch_size
        # Clamped as a saved image would be (R3GAN's G has no tanh), as FID implementations score uint8 images.
        modes: list[Tensor] = []
        if self.real_labels is None:
            feats = [self._features(G_ema(z.to(self.device)).clamp(-1, 1), modes) for z in z_mine.split(batch)]
        else:
            feats = [self._features(G_ema(z.to(self.device), y.to(self.device)).clamp(-1, 1), modes)
                     for z, y in zip(z_mine.split(batch), self.real_labels[mine].split(batch))]
        fake = gather_rows(torch.cat(feats) if feats else torch.zeros(0, self.extractor.dim)).to(self.device)
        fake_modes = self._judged(modes)
        scores: dict[str, float] = {}
        if self.rank == 0:
            fd_tag, kd_tag = distance_tags(self.extractor)
            suffix = "" if self.extractor.name == "fid" else f"_{self.extractor.name}"
            precision_tag, recall_tag = f"eval/precision{suffix}", f"eval/recall{suffix}"
            try:
                precision, recall = precision_recall(real, fake)
                fd, kd = distances(fake)
                scores = {fd_tag: fd, kd_tag: kd, precision_tag: precision, recall_tag: recall,
                          **self._per_class(fd_tag, real, fake)}
                if fake_modes is not None:
                    scores.update(mode_scores(self.real_modes, fake_modes, self.extractor.num_modes))
            except ValueError as e:  # a diverged EMA G: report it, do not end the run here
                log.warning("Evaluation: %s", e)
                scores = {tag: float("nan") for tag in (fd_tag, kd_tag, precision_tag, recall_tag)}
        return broadcast_object(scores)  # rank 0 computed them

    def _per_class(self, fd_tag: str, real: Tensor, fake: Tensor) -> dict[str, float]:
        """eval/<fd>/<class>: each class's generated images against its real ones (few per
        class, so biased upwards by the sample size; they compare between evaluations)."""
        if self.real_labels is None:
            return {}
        out = {}
        for c, name in enumerate(self.classes):
            rows = (self.real_labels == c).nonzero().flatten().to(real.device)
            if rows.numel() >= 2:  # the fakes of class c are the rows of the reals of class c
                out[f"{fd_tag}/{name}"] = Distances(real[rows], kid_subsets=1)(fake[rows])[0]
        return out
