"""How each task turns a batch into G's input, D's real and fake inputs, and G's supervised losses."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from gandist import losses
from gandist.models import d_inputs

Batch = dict


class Task(Protocol):
    name: str
    adv_weight: float  # the adversarial term's weight in G's loss; 0 = no D at all

    def g_input(self, batch: Batch) -> Tensor: ...

    def fake(self, G: nn.Module, g_in: Tensor) -> Tensor:
        """G's raw output (images; class logits for segment)."""
        ...

    def d_fake(self, batch: Batch, fake: Tensor) -> Tensor:
        """D's input for G's output."""
        ...

    def d_real(self, batch: Batch, fake: Tensor) -> Tensor:
        """D's input for the real sample; ``fake`` (detached) for encodings that use it."""
        ...

    def supervised_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        """G's weighted non-adversarial terms, by name (logged as loss/G_<name>)."""
        ...


class GenerateTask:
    """Noise to image: D sees images alone; G learns from D only."""

    name = "generate"
    adv_weight = 1.0

    def __init__(self, z_dim: int) -> None:
        self.z_dim = z_dim

    def g_input(self, batch: Batch) -> Tensor:
        image = batch["image"]
        return torch.randn(image.shape[0], self.z_dim, device=image.device)

    def fake(self, G: nn.Module, g_in: Tensor) -> Tensor:
        return G(g_in)

    def d_fake(self, batch: Batch, fake: Tensor) -> Tensor:
        return fake

    def d_real(self, batch: Batch, fake: Tensor) -> Tensor:
        return batch["image"]

    def supervised_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        return {}


class SegmentTask:
    """Image to mask: G predicts class logits, trained by a supervised loss against the true
    mask plus ``adv_weight`` x the adversarial term; D compares class maps (encoded as
    ``d_input`` says, with the image in front when ``d_image``)."""

    name = "segment"

    def __init__(self, num_classes: int, seg_loss: str = "ce", seg_weight: float = 1.0, adv_weight: float = 0.01,
                 d_input: str = d_inputs.SOFTMAX, d_image: bool = True, scaling_tau: float = 0.9) -> None:
        if seg_loss not in SEG_LOSSES:
            raise ValueError(f"unknown seg_loss {seg_loss!r}; valid choices: {', '.join(SEG_LOSSES)}")
        if d_input not in d_inputs.KINDS:
            raise ValueError(f"unknown d_input {d_input!r}; valid choices: {', '.join(d_inputs.KINDS)}")
        self.num_classes = num_classes
        self.seg_loss, self.seg_weight, self.adv_weight = seg_loss, seg_weight, adv_weight
        self.d_input, self.d_image, self.scaling_tau = d_input, d_image, scaling_tau

    def g_input(self, batch: Batch) -> Tensor:
        return batch["image"]

    def fake(self, G: nn.Module, g_in: Tensor) -> Tensor:
        return G(g_in)

    def probs(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits.float(), dim=1)

    def real_maps(self, batch: Batch, fake: Tensor) -> Tensor:
        if self.d_input == d_inputs.SCALING:
            return d_inputs.scaled_one_hot(batch["mask"], self.probs(fake.detach()), self.scaling_tau)
        return d_inputs.one_hot(batch["mask"], self.num_classes)

    def d_fake(self, batch: Batch, fake: Tensor) -> Tensor:
        return self._view(batch, self.probs(fake))

    def d_real(self, batch: Batch, fake: Tensor) -> Tensor:
        return self._view(batch, self.real_maps(batch, fake))

    def _view(self, batch: Batch, maps: Tensor) -> Tensor:
        image = batch["image"]
        return d_inputs.view(self.d_input, maps.to(image.dtype), image, self.d_image)

    def supervised_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        if self.seg_weight == 0:
            return {}
        return {"seg": self.seg_weight * SEG_LOSSES[self.seg_loss](self, batch, fake)}


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
