"""TensorBoard on rank 0; a no-op object on every other rank.

The loop calls the same methods on every rank; only the chief's monitor writes anything.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)


class NullMonitor:
    """What non-chief ranks get: accepts everything, writes nothing."""

    def scalars(self, values: dict[str, float], step: int) -> None:
        pass

    def image(self, tag: str, image: Tensor, step: int) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardMonitor(NullMonitor):
    def __init__(self, log_dir: str, purge_step: Optional[int] = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        self.samples_dir = os.path.join(os.path.dirname(log_dir.rstrip("/")), "samples")
        os.makedirs(self.samples_dir, exist_ok=True)
        # purge_step drops events a previous attempt wrote past the resumed step, so the step
        # axis continues without duplicated or rewound points.
        self.writer = SummaryWriter(log_dir, purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def image(self, tag: str, image: Tensor, step: int) -> None:
        """A [3, H, W] image in [0, 1]: to TensorBoard, and as a PNG under samples/."""
        from PIL import Image

        self.writer.add_image(tag, image, step)
        self.writer.flush()
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        name = f"{tag.replace('/', '_')}_{step:08d}.png"
        Image.fromarray(np.ascontiguousarray(pixels)).save(os.path.join(self.samples_dir, name))

    def close(self) -> None:
        self.writer.close()


def make_monitor(log_dir: Optional[str], purge_step: Optional[int] = None) -> NullMonitor:
    """TensorBoard where a log directory was given (rank 0 only), otherwise the no-op."""
    if log_dir is None:
        return NullMonitor()
    return TensorBoardMonitor(log_dir, purge_step=purge_step)
