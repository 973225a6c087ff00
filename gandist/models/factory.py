"""Builds the generator and discriminator a config names: the one place that maps
``model.arch`` to networks (training, sampling, export and evaluation all come here)."""

from __future__ import annotations

import math

import torch
from torch import nn

from gandist.config import Arch, Config, DArch, TaskName, pixel_d_stride
from gandist.models.conditional import ConditionalGenerator, EmbeddingDiscriminator, ProjectionDiscriminator
from gandist.models.dcgan import DCGANDiscriminator, DCGANGenerator
from gandist.models import d_inputs
from gandist.models.pix2pix import PatchDiscriminator, PixelDiscriminator, UNetGenerator
from gandist.models.r3gan import R3GANDiscriminator, R3GANGenerator
from gandist.models.unet import UNet
from gandist.seeding import derive_seed


def build_networks(cfg: Config, num_classes: int) -> tuple[nn.Module, nn.Module]:
    """Generator and discriminator for the configured architecture (same init on every rank).
    ``num_classes``: a segmenter's classes, the labels a conditional G and D take, or the
    channels of a translator's B images (the length of its "classes", the bands of B's mode)."""
    m = cfg.model
    torch.manual_seed(derive_seed(cfg.trainer.seed, "init"))
    if m.arch in (Arch.dcgan, Arch.r3gan):
        g_in = 2 * m.z_dim if m.conditional else m.z_dim  # the class embedding joins the noise
        if m.arch == Arch.dcgan:
            G: nn.Module = DCGANGenerator(z_dim=g_in, resolution=m.resolution, width=m.g_width)
            D: nn.Module = DCGANDiscriminator(resolution=m.resolution, width=m.d_width)
            if m.conditional:  # Miyato & Koyama's projection D
                G, D = ConditionalGenerator(G, num_classes, m.z_dim), ProjectionDiscriminator(D, num_classes)
        else:
            shape = dict(widths=m.stage_widths, blocks=m.blocks, expansion=m.expansion,
                         group_channels=m.group_channels)
            G = R3GANGenerator(z_dim=g_in, resolution=m.resolution, width=m.g_width, **shape)
            D = R3GANDiscriminator(resolution=m.resolution, width=m.d_width, embedding=m.conditional, **shape)
            if m.conditional:  # R3GAN's: embeddings at its init, D's logit their inner product alone
                G = ConditionalGenerator(G, num_classes, m.z_dim, embed_std=1 / math.sqrt(num_classes))
                D = EmbeddingDiscriminator(D, num_classes)
    else:  # a segmenter or translator, and the pix2pix discriminators
        translate = cfg.task.name == TaskName.translate  # G draws images, D sees (A, B) pairs
        if m.arch == Arch.unet:
            G = UNet(in_channels=3, out_channels=num_classes, resolution=m.resolution, width=m.g_width,
                     tanh=translate)
        else:
            G = UNetGenerator(in_channels=3, out_channels=num_classes, resolution=m.resolution,
                              width=m.g_width, dropout=m.dropout, refine=m.g_refine, tanh=translate)
        if translate:
            d_in = 3 + num_classes
        else:
            d_in = d_inputs.channels(str(cfg.task.d_input), num_classes, cfg.task.d_image)
        if m.d_arch == DArch.pixel:  # its own classifier is one more layer
            D = PixelDiscriminator(in_channels=d_in, width=m.d_width, n_layers=m.d_layers + 1,
                                   stride=pixel_d_stride(m.resolution, m.d_layers, m.d_stride))
        else:
            D = PatchDiscriminator(in_channels=d_in, width=m.d_width, n_layers=m.d_layers)
    return G, D
