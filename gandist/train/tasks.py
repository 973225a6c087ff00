"""How each task turns a batch into the generator's input and D's real and fake inputs."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gandist import losses

Batch = dict


class Task(Protocol):
    name: str

    def g_input(self, batch: Batch) -> Tensor: ...

    def fake(self, G: nn.Module, g_in: Tensor) -> Tensor: ...

    def real(self, batch: Batch) -> Tensor: ...

    def d_input(self, batch: Batch, y: Tensor) -> Tensor: ...

    def extra_g_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]: ...


class GenerateTask:
    """Noise to image: D sees images alone."""

    name = "generate"

    def __init__(self, z_dim: int) -> None:
        self.z_dim = z_dim

    def g_input(self, batch: Batch) -> Tensor:
        image = batch["image"]
        return torch.randn(image.shape[0], self.z_dim, device=image.device)

    def fake(self, G: nn.Module, g_in: Tensor) -> Tensor:
        return G(g_in)

    def real(self, batch: Batch) -> Tensor:
        return batch["image"]

    def d_input(self, batch: Batch, y: Tensor) -> Tensor:
        return y

    def extra_g_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        return {}


class SegmentTask:
    """Image to mask (pix2pix): G predicts class probabilities, D judges (image, mask) pairs."""

    name = "segment"

    def __init__(self, num_classes: int, l1_weight: float) -> None:
        self.num_classes = num_classes
        self.l1_weight = l1_weight

    def g_input(self, batch: Batch) -> Tensor:
        return batch["image"]

    def fake(self, G: nn.Module, g_in: Tensor) -> Tensor:
        return torch.softmax(G(g_in), dim=1)

    def real(self, batch: Batch) -> Tensor:
        return F.one_hot(batch["mask"], self.num_classes).permute(0, 3, 1, 2).to(batch["image"].dtype)

    def d_input(self, batch: Batch, y: Tensor) -> Tensor:
        # Masks are scaled to the images' [-1, 1] range before D sees the pair.
        return torch.cat([batch["image"], y * 2 - 1], dim=1)

    def extra_g_losses(self, batch: Batch, fake: Tensor) -> dict[str, Tensor]:
        if self.l1_weight == 0:
            return {}
        return {"l1": self.l1_weight * losses.l1(fake, self.real(batch))}
