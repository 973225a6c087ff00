"""Class-conditional wrappers around any generation G and D: G sees a learned class embedding
beside the noise; D is a projection discriminator (Miyato & Koyama, ICLR 2018) whose logit adds
the inner product of a learned class embedding with D's last features (DCGAN), or, as R3GAN's
reference does, is that inner product alone (R3GAN).

The inner networks stay what they are; D only has to expose ``features(x)``, ``head(h)`` and
``feature_dim`` (the projection D), or output an embedding-sized vector (R3GAN's).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ConditionalGenerator(nn.Module):
    """(z [N, z_dim], labels [N]) -> images: the inner G takes z and the class's embedding,
    concatenated (so it is built for 2 x z_dim inputs). The embedding starts N(0, embed_std^2):
    1 (the scale of the noise beside it), or R3GAN's 1/sqrt(classes) (its bias-free linear layer
    on one-hot labels, MSR-initialised with fan-in = classes)."""

    def __init__(self, inner: nn.Module, num_classes: int, z_dim: int, embed_std: float = 1.0) -> None:
        super().__init__()
        self.inner, self.num_classes, self.z_dim = inner, num_classes, z_dim
        self.embed = nn.Embedding(num_classes, z_dim)
        nn.init.normal_(self.embed.weight, 0.0, embed_std)

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


class EmbeddingDiscriminator(nn.Module):
    """R3GAN's conditional D, (images, labels [N]) -> logits [N]: the inner D ends in a linear
    layer to ``inner.out_dim`` values (not one logit), and the logit is their inner product with
    the class's embedding; no unconditional term. The embedding is R3GAN's bias-free linear layer
    on one-hot labels, MSR-initialised at gain 1/sqrt(out_dim): N(0, 1 / (out_dim x classes))."""

    def __init__(self, inner: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.inner, self.num_classes = inner, num_classes
        self.embed = nn.Embedding(num_classes, inner.out_dim)
        nn.init.normal_(self.embed.weight, 0.0, 1.0 / math.sqrt(inner.out_dim * num_classes))

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        h = self.inner(x)
        return (h * self.embed(labels).to(h.dtype)).sum(dim=1)
