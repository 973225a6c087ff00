"""Which generator an evaluation scores, and in which mode.

ema: EMA G in eval mode (dropout off, BatchNorm running statistics) with statistics refitted
to its own weights on training batches (``recompute_bn_stats``).
train_mode: pix2pix's test.py without ``--eval``: its one G (it keeps no EMA) in train mode,
so each test image (its test batch size is 1) is normalised by its own statistics and dropout
stays on; run on a copy, so the live G's buffers and the training RNG stream are untouched.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Iterable, Iterator

import torch
from torch import Tensor, nn


class OneByOne(nn.Module):
    """``net`` applied to each sample on its own (pix2pix tests at batch size 1: in train mode
    a sample's batch statistics are then its own, whatever else the loader put beside it)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *args: Tensor) -> Tensor:
        return torch.cat([self.net(*(a[i:i + 1] for a in args)) for i in range(args[0].shape[0])])


@contextlib.contextmanager
def pix2pix_test_mode(G: nn.Module, seed: int, device: torch.device) -> Iterator[nn.Module]:
    """A copy of the live ``G`` in train mode, one sample at a time, its dropout drawn from
    ``seed`` (the same masks at every evaluation) without touching the global RNG state."""
    net = copy.deepcopy(G).train()
    cuda = device.type == "cuda"
    with torch.random.fork_rng(devices=[device] if cuda else []):  # restores only what is seeded here
        torch.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield OneByOne(net)


@contextlib.contextmanager
def eval_mode(G: nn.Module) -> Iterator[nn.Module]:
    """``G`` in eval mode (its own running statistics, dropout off), then back as it was."""
    was_training = G.training
    G.eval()
    try:
        yield G
    finally:
        G.train(was_training)


@torch.no_grad()
def recompute_bn_stats(G: nn.Module, inputs: Iterable[Tensor]) -> int:
    """Give ``G``'s BatchNorm layers the running statistics of its own weights: reset, then the
    plain average of the batch statistics over ``inputs`` (each one G's whole input), with
    dropout off as at evaluation. EMA G's average weights are not the live G's, whose buffers
    the update copies; BN statistics that fit the weights are the usual fix (e.g. SWA's
    update_bn). Returns the number of batches; with none, the statistics are left as they were.
    G is left in eval mode."""
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return 0
    saved = [{k: v.clone() for k, v in m.state_dict().items()} for m in bns]
    momenta = [m.momentum for m in bns]
    G.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: every batch counts alike
        m.train()
    count = 0
    try:
        for x in inputs:
            G(x)
            count += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
            m.eval()
    if count == 0:
        for m, state in zip(bns, saved):
            m.load_state_dict(state)
    return count
