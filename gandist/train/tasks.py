"""How each task turns a batch into G's input, D's real and fake inputs, and G's supervised losses."""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandist import losses
from gandist.losses import GANLoss
from gandist.models import d_inputs
from gandist.train import semi
from gandist.train.stats import Value as StatValue

Batch = dict
Terms = dict[str, tuple[float, Tensor]]


class Task(Protocol):
    name: str
    adv_weight: float  # > 0: D is trained, and G's loss has adversarial terms; 0 = no D at all

    def g_input(self, batch: Batch) -> Any: ...

    def g_batch(self, batch: Batch) -> Optional[Batch]:
        """The batch G's phase draws its own fakes for; None: it trains on the fakes D saw."""
        ...

    def fake(self, G: nn.Module, g_in: Any) -> Tensor:
        """G's raw output (images; class logits for segment)."""
        ...

    def d_args(self, batch: Batch) -> tuple[Tensor, ...]:
        """What D takes after its input: the labels for a conditional D, else nothing."""
        ...

    def d_fake(self, batch: Batch, fake: Tensor) -> Tensor:
        """D's input for G's output."""
        ...

    def d_learns_from(self, batch: Batch, fake: Tensor) -> Tensor:
        """The part of G's output D's phase learns from as fake."""
        ...

    def d_real(self, batch: Batch, fake: Tensor) -> Tensor:
        """D's input for the real samples; ``fake`` (detached) for encodings that use it."""
        ...

    def g_losses(self, batch: Batch, fake: Tensor, d_logits: Optional[Tensor], gan: GANLoss,
                 real_logits: Optional[Tensor] = None) -> tuple[Terms, dict[str, StatValue]]:
        """G's loss terms by name, each (weight, unweighted value), logged as loss/G_<name>;
        and further statistics to log. ``d_logits``: D's output for ``d_fake(batch, fake)``,
        None when ``adv_weight`` is 0; ``real_logits``: D's output for the real samples, for
        relativistic losses only."""
        ...


class GenerateTask:
    """Noise to image: D sees images alone (through ``augment``, the same random transforms for
    real and generated ones); G learns from D only."""

    name = "generate"
    adv_weight = 1.0

    def __init__(self, z_dim: int, augment: Optional[Callable[[Tensor], Tensor]] = None,
                 conditional: bool = False, g_draw: str = "shared") -> None:
        self.z_dim, self.conditional, self.g_draw = z_dim, conditional, g_draw
        self.augment = augment if augment is not None else (lambda x: x)

    def g_batch(self, batch: Batch) -> Optional[Batch]:
        """task.g_draw: shared (None), noise (D's batch, fresh noise), batch (the step's second real
        batch, ``g_real``, and fresh noise: StyleGAN2-ADA's and R3GAN's G_img, G_z)."""
        if self.g_draw == "shared":
            return None
        return batch if self.g_draw == "noise" else {**batch["g_real"], "step": batch["step"]}

    def g_input(self, batch: Batch) -> Any:
        """Noise, and for a conditional G the real batch's labels: the fakes' classes follow
        the data's, and each fake is judged (and, for rpgan, paired) under a real one's class."""
        image = batch["image"]
        z = torch.randn(image.shape[0], self.z_dim, device=image.device)
        return (z, batch["label"]) if self.conditional else z

    def fake(self, G: nn.Module, g_in: Any) -> Tensor:
        return G(*g_in) if self.conditional else G(g_in)

    def d_args(self, batch: Batch) -> tuple[Tensor, ...]:
        return (batch["label"],) if self.conditional else ()

    def d_fake(self, batch: Batch, fake: Tensor) -> Tensor:
        return self.augment(fake)

    def d_learns_from(self, batch: Batch, fake: Tensor) -> Tensor:
        return fake

    def d_real(self, batch: Batch, fake: Tensor) -> Tensor:
        return self.augment(batch["image"])

    def g_losses(self, batch: Batch, fake: Tensor, d_logits: Optional[Tensor], gan: GANLoss,
                 real_logits: Optional[Tensor] = None) -> tuple[Terms, dict[str, StatValue]]:
        return {"adv": (self.adv_weight, gan.g(d_logits, real_logits))}, {}


class SegmentTask:
    """Image to mask: G predicts class logits, trained by a supervised loss against the true
    mask plus ``adv_weight`` x the adversarial term; D compares class maps (encoded as
    ``d_input`` says, with the image in front when ``d_image``).

    With ``semi`` (a batch then carries an ``unlabeled`` batch of images, whose masks, when
    known, only feed statistics): G runs on the labeled and the unlabeled images in two
    forwards, as Hung et al. do (one forward over both lets BatchNorm normalise the labeled
    images by statistics half made of images no loss shapes, and G learns a function that
    holds for the labeled half of such a batch only: held-out mIoU 0.32 against 0.82 at step
    150 on builtin digits with no unlabeled loss at all), D sees
    both predictions as fake (the labeled ones only with ``d_unlabeled`` false), and G also gets ``adv_unlabeled_weight`` x the adversarial term
    on unlabeled predictions and, from step ``semi_start``, ``semi_weight`` x cross-entropy
    against its own predictions where the confidence (D's map for ``adversarial``, its own top
    probability for ``self_training``) exceeds ``semi_threshold``.
    """

    name = "segment"

    def __init__(self, num_classes: int, seg_loss: str = "ce", seg_weight: float = 1.0, adv_weight: float = 0.01,
                 d_input: str = d_inputs.SOFTMAX, d_image: bool = True, scaling_tau: float = 0.9,
                 semi: str = "none", semi_weight: float = 0.1, semi_threshold: float = 0.2, semi_start: int = 0,
                 adv_unlabeled_weight: float = 0.001, d_map_range: str = d_inputs.SIGNED,
                 d_unlabeled: bool = True) -> None:
        if seg_loss not in SEG_LOSSES:
            raise ValueError(f"unknown seg_loss {seg_loss!r}; valid choices: {', '.join(SEG_LOSSES)}")
        if d_input not in d_inputs.KINDS:
            raise ValueError(f"unknown d_input {d_input!r}; valid choices: {', '.join(d_inputs.KINDS)}")
        if semi not in SEMI_KINDS:
            raise ValueError(f"unknown semi {semi!r}; valid choices: {', '.join(SEMI_KINDS)}")
        if semi == "adversarial" and adv_weight <= 0:
            raise ValueError("semi='adversarial' needs D: adv_weight must be above 0")
        self.num_classes = num_classes
        self.seg_loss, self.seg_weight, self.adv_weight = seg_loss, seg_weight, adv_weight
        self.d_input, self.d_image, self.scaling_tau = d_input, d_image, scaling_tau
        self.d_map_range = d_map_range
        self.semi, self.semi_weight, self.semi_threshold = semi, semi_weight, semi_threshold
        self.semi_start, self.adv_unlabeled_weight = semi_start, adv_unlabeled_weight
        self.d_unlabeled = d_unlabeled

    def images(self, batch: Batch) -> Tensor:
        """The images G segments: the labeled ones, then the unlabeled ones if any."""
        if "unlabeled" not in batch:
            return batch["image"]
        return torch.cat([batch["image"], batch["unlabeled"]["image"]])

    def g_input(self, batch: Batch) -> Any:
        """The images, or (labeled, unlabeled) for G's two forwards."""
        if "unlabeled" not in batch:
            return batch["image"]
        return batch["image"], batch["unlabeled"]["image"]

    def g_batch(self, batch: Batch) -> Optional[Batch]:
        return None

    def fake(self, G: nn.Module, g_in: Any) -> Tensor:
        """G's logits for the labeled images, then the unlabeled ones, each forward normalised by
        its own batch's statistics. The unlabeled forward runs on the module inside DDP: DDP's
        forward would broadcast BatchNorm's buffers in place into the first forward's graph,
        and the one backward through both still reaches every parameter's gradient once."""
        if not isinstance(g_in, tuple):
            return G(g_in)
        labeled, unlabeled = g_in
        out = G(labeled)
        return torch.cat([out, (G.module if isinstance(G, DDP) else G)(unlabeled)])

    def probs(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float(), dim=1)

    def labeled(self, batch: Batch, fake: Tensor) -> Tensor:
        return fake[:batch["image"].shape[0]]

    def real_maps(self, batch: Batch, fake: Tensor) -> Tensor:
        if self.d_input == d_inputs.SCALING:
            return d_inputs.scaled_one_hot(batch["mask"], self.probs(self.labeled(batch, fake).detach()),
                                           self.scaling_tau)
        return d_inputs.one_hot(batch["mask"], self.num_classes)

    def d_args(self, batch: Batch) -> tuple[Tensor, ...]:
        return ()

    def d_fake(self, batch: Batch, fake: Tensor) -> Tensor:
        """D's view of the predictions ``fake``: the labeled ones, then the unlabeled ones if given."""
        return self._view(self.images(batch)[:fake.shape[0]], self.probs(fake))

    def d_learns_from(self, batch: Batch, fake: Tensor) -> Tensor:
        """Every prediction (Hung et al. train D on both, --D-remain), or with ``d_unlabeled``
        false the labeled ones only."""
        return fake if self.d_unlabeled else self.labeled(batch, fake)

    def d_real(self, batch: Batch, fake: Tensor) -> Tensor:
        return self._view(batch["image"], self.real_maps(batch, fake))

    def _view(self, image: Tensor, maps: Tensor) -> Tensor:
        return d_inputs.view(self.d_input, maps.to(image.dtype), image, self.d_image, self.d_map_range)

    def g_losses(self, batch: Batch, fake: Tensor, d_logits: Optional[Tensor], gan: GANLoss,
                 real_logits: Optional[Tensor] = None) -> tuple[Terms, dict[str, StatValue]]:
        # Separable losses only (task.loss=rpgan is for generate): real_logits is not used.
        n = batch["image"].shape[0]
        terms: Terms = {}
        if self.seg_weight != 0:
            terms["seg"] = (self.seg_weight, SEG_LOSSES[self.seg_loss](self, batch, fake[:n]))
        if d_logits is not None:
            terms["adv"] = (self.adv_weight, gan.g(d_logits[:n]))
        if "unlabeled" not in batch:
            return terms, {}
        if d_logits is not None:
            terms["adv_unlabeled"] = (self.adv_unlabeled_weight, gan.g(d_logits[n:]))
        logits = fake[n:]
        with torch.no_grad():
            probs = self.probs(logits)
            if self.semi == "adversarial":
                confidence = semi.d_confidence(d_logits[n:].detach(), tuple(logits.shape[-2:]))
            else:
                confidence = semi.own_confidence(probs)
            labels, selected = semi.pseudo_labels(probs, confidence, self.semi_threshold)
        weight = self.semi_weight if batch["step"] >= self.semi_start else 0.0
        terms["semi"] = (weight, semi.masked_cross_entropy(logits, labels, selected))
        return terms, semi.semi_stats(labels, selected, confidence, batch["unlabeled"].get("known_mask"))


class TranslateTask:
    """Image A to image B (pix2pix): G draws B from A; D judges (A, B) pairs, the true B against
    G's; G's loss is ``adv_weight`` x the adversarial term + ``l1_weight`` x L1 to the true B."""

    name = "translate"

    def __init__(self, l1_weight: float = 100.0, adv_weight: float = 1.0) -> None:
        self.l1_weight, self.adv_weight = l1_weight, adv_weight

    def g_input(self, batch: Batch) -> Tensor:
        return batch["image"]

    def g_batch(self, batch: Batch) -> Optional[Batch]:
        return None

    def fake(self, G: nn.Module, g_in: Tensor) -> Tensor:
        return G(g_in)

    def d_args(self, batch: Batch) -> tuple[Tensor, ...]:
        return ()

    def d_fake(self, batch: Batch, fake: Tensor) -> Tensor:
        return torch.cat([batch["image"], fake.to(batch["image"].dtype)], dim=1)

    def d_learns_from(self, batch: Batch, fake: Tensor) -> Tensor:
        return fake

    def d_real(self, batch: Batch, fake: Tensor) -> Tensor:
        return torch.cat([batch["image"], batch["target"]], dim=1)

    def g_losses(self, batch: Batch, fake: Tensor, d_logits: Optional[Tensor], gan: GANLoss,
                 real_logits: Optional[Tensor] = None) -> tuple[Terms, dict[str, StatValue]]:
        terms: Terms = {}
        if self.l1_weight != 0:
            terms["l1"] = (self.l1_weight, losses.l1(fake.float(), batch["target"].float()))
        if d_logits is not None:
            terms["adv"] = (self.adv_weight, gan.g(d_logits, real_logits))
        return terms, {}


def _ce(task: SegmentTask, batch: Batch, logits: Tensor) -> Tensor:
    return losses.cross_entropy(logits, batch["mask"])


def _ce_dice(task: SegmentTask, batch: Batch, logits: Tensor) -> Tensor:
    onehot = d_inputs.one_hot(batch["mask"], task.num_classes)
    return losses.cross_entropy(logits, batch["mask"]) + losses.dice(task.probs(logits), onehot)


def _l1(task: SegmentTask, batch: Batch, logits: Tensor) -> Tensor:
    # pix2pix: L1 between the predicted class probabilities and the one-hot mask.
    return losses.l1(task.probs(logits), d_inputs.one_hot(batch["mask"], task.num_classes))


# task.seg_loss -> G's supervised term
SEG_LOSSES = {"ce": _ce, "ce_dice": _ce_dice, "l1": _l1}
# task.semi: how unlabeled images teach G (none: they are not read)
SEMI_KINDS = ("none", "adversarial", "self_training")
# task.semi_threshold=null: Hung et al.'s 0.2 on D's confidence; on G's own top probability
# (which is at least 1/classes everywhere) only confident pixels, as self-training does.
SEMI_THRESHOLDS = {"adversarial": 0.2, "self_training": 0.9}
