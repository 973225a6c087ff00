"""Improved precision and recall (Kynkäänniemi et al., NeurIPS 2019) of generated features
against real ones.

Each set's manifold is the union of balls around its vectors, each ball's radius the distance
to that vector's k-th nearest neighbour in its own set (k = 3, the paper's choice). Precision
is the fraction of generated vectors inside the real manifold (how many samples look real);
recall the fraction of real vectors inside the generated manifold (how much of the real data
the generator covers). Distances in float64, in row blocks, on the features' device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gandist.metrics.distance import check_features

K = 3
BLOCK = 1024  # rows of the distance matrix at a time: memory stays O(BLOCK x N)


def knn_radii(x: Tensor, k: int = K) -> Tensor:
    """Distance from each vector to its k-th nearest other vector of the same set."""
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} feature vectors for k-NN radii, got {x.shape[0]}")
    radii = []
    for start in range(0, x.shape[0], BLOCK):
        d = torch.cdist(x[start:start + BLOCK], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # the first is the vector itself, at 0
    return torch.cat(radii)


def coverage(queries: Tensor, support: Tensor, radii: Tensor) -> Tensor:
    """Fraction of ``queries`` within ``radii`` of some vector of ``support``."""
    inside = []
    for start in range(0, queries.shape[0], BLOCK):
        d = torch.cdist(queries[start:start + BLOCK], support)
        inside.append((d <= radii.unsqueeze(0)).any(dim=1))
    return torch.cat(inside).double().mean()


def precision_recall(real: Tensor, fake: Tensor, k: int = K) -> tuple[float, float]:
    """(precision, recall) of ``fake`` against ``real``, both [N, D] feature sets."""
    real = check_features(real).to(torch.float64)
    fake = check_features(fake).to(torch.float64)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature sizes differ: {real.shape[1]} vs {fake.shape[1]}")
    precision = coverage(fake, real, knn_radii(real, k))
    recall = coverage(real, fake, knn_radii(fake, k))
    return float(precision), float(recall)
