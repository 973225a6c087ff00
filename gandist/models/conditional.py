"""Class-conditional wrappers around any generation G and D: G sees a learned class embedding
beside the noise, and D is a projection discriminator (Miyato & Koyama, ICLR 2018), whose
logit adds the inner product of a learned class embedding with D's last features.

The inner networks stay what they are (DCGAN, R3GAN); D only has to expose ``features(x)``,
``head(h)`` and ``feature_dim``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConditionalGenerator(nn.Module):
    """(z [N, z_dim], labels [N]) -> images: the inner G takes z and the class's embedding,
    concatenated (so it is built for 2 x z_dim inputs)."""

    def __init__(self, inner: nn.Module, num_classes: int, z_dim: int) -> None:
        super().__init__()
        self.inner, self.num_classes, self.z_dim = inner, num_classes, z_dim
        self.embed = nn.Embedding(num_classes, z_dim)  # N(0, 1), the scale of the noise beside it

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.inner(torch.cat([z.reshape(z.shape[0], self.z_dim), self.embed(labels).to(z.dtype)], dim=1))


class ProjectionDiscriminator(nn.Module):
    """(images, labels [N]) -> logits [N]: the inner D's logit of its features h plus
    <embed(label), h>. The embedding starts at zero, so training starts from the inner D."""

    def __init__(self, inner: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.inner, self.num_classes = inner, num_classes
        self.embed = nn.Embedding(num_classes, inner.feature_dim)
        nn.init.zeros_(self.embed.weight)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = self.inner.features(x)
        return self.inner.head(h) + (self.embed(labels).to(h.dtype) * h).sum(dim=1)
