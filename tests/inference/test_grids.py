"""Sample grids of a conditional G: one row per class, named, one noise per column."""

from __future__ import annotations

import torch
from torch import nn

from gandist.inference.grids import class_grid


class PaintsItsInputs(nn.Module):
    """A stand-in conditional G whose image is its class (red channel) and noise (green)."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        image = torch.zeros(z.shape[0], 3, 8, 8)
        image[:, 0] = (labels.float() / 2 * 2 - 1)[:, None, None]
        image[:, 1] = z[:, :1, None].tanh()
        return image


def test_the_conditional_grid_has_one_row_per_class_and_the_same_noise_down_each_column():
    classes = ["circle", "square", "triangle"]
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    out = class_grid(PaintsItsInputs(), z, classes, batch=4)  # batches that cut across rows
    pad, side = 2, 8
    assert out.shape[:2] == (3, len(classes) * (side + pad) + pad)
    names = out.shape[2] - (5 * (side + pad) + pad)
    assert names > 0  # a strip with the class names on the left
    assert (out[:, :, :names] < 1).any(dim=0).sum(dim=1)[pad:pad + side].sum() > 0  # text beside row 0
    for row in range(len(classes)):
        y = pad + row * (side + pad)
        for col in range(5):
            x = names + pad + col * (side + pad)
            cell = out[:, y:y + side, x:x + side]
            assert torch.allclose(cell[0], torch.full((side, side), row / 2))  # red = the row's class
            assert torch.allclose(cell[1], torch.full((side, side), (float(z[col, 0].tanh()) + 1) / 2))


def test_translate_rows_show_a_true_b_and_generated_b_and_greyscale_b_as_grey():
    from gandist.inference.grids import translate_triplets

    a = -torch.ones(2, 3, 8, 8)
    a[:, 0] = 1  # red A
    b, fake = torch.ones(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)  # white true B, mid-grey generated B
    out = translate_triplets(a, b, fake)
    assert out.shape == (3, 2 * 10 + 2, 3 * 10 + 2)
    assert out[:, 2:10, 2:10].tolist() == torch.stack([torch.ones(8, 8), torch.zeros(8, 8), torch.zeros(8, 8)]).tolist()
    assert torch.all(out[:, 2:10, 12:20] == 1) and torch.allclose(out[:, 2:10, 22:30], torch.full((3, 8, 8), 0.5))
