"""The GPU path's switches, resolved for the device a worker trains on.

Each is a config key with a default that is right on a GPU and harmless on a CPU:
mixed precision (trainer.amp=auto: bf16 where the GPU supports it), channels-last memory
format (trainer.channels_last, on GPU by default: convolutions in NHWC use tensor cores
without layout transposes), the cuDNN autotuner (trainer.cudnn_benchmark: the input shapes
never change), pinned host memory with non-blocking copies (data.pin_memory), and
torch.compile (trainer.compile, off by default: compiling costs minutes at the start).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Optional

import torch
from torch import nn

from gandist.config import Config

log = logging.getLogger(__name__)


def amp_mode(amp: str, device: torch.device) -> str:
    """off | bf16 | fp16 for trainer.amp on ``device`` (auto: bf16 on GPUs that have it)."""
    if amp != "auto":
        return amp
    # Native bf16 only (Ampere and later): V100 and T4 would emulate it, slower than fp32.
    if device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False):
        return "bf16"
    return "off"


def _on_gpu(setting: Optional[bool], device: torch.device) -> bool:
    return setting if setting is not None else device.type == "cuda"


def channels_last(cfg: Config, device: torch.device) -> bool:
    return _on_gpu(cfg.trainer.channels_last, device)


def pin_memory(cfg: Config, device: torch.device) -> bool:
    # Pinned pages only speed up copies to a GPU; on a CPU they are wasted locked memory.
    return _on_gpu(cfg.data.pin_memory, device) and device.type == "cuda"


@dataclass(frozen=True)
class GPUPath:
    """The switches in effect on this worker's device."""

    amp: str
    channels_last: bool
    cudnn_benchmark: bool
    pin_memory: bool
    compile: bool

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


def prepare(cfg: Config, device: torch.device, *modules: nn.Module,
            uncompiled: tuple[nn.Module, ...] = ()) -> GPUPath:
    """Apply the switches to this process and to the networks (before DDP wraps them).

    ``uncompiled`` networks get the memory layout but are never compiled: G_ema runs only
    for evaluations and image grids, where a compile (another graph of G, in eval mode and
    without grad: as long again as G's own) would cost more than it saves."""
    path = GPUPath(amp=amp_mode(cfg.trainer.amp, device), channels_last=channels_last(cfg, device),
                   cudnn_benchmark=cfg.trainer.cudnn_benchmark and device.type == "cuda",
                   pin_memory=pin_memory(cfg, device), compile=cfg.trainer.compile)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = path.cudnn_benchmark
    for module in (*modules, *uncompiled):
        if path.channels_last:
            module.to(memory_format=torch.channels_last)
        if path.compile and module not in uncompiled:
            module.compile()  # in place: the module keeps its type, DDP wrapping and state_dict keys
    return path


def match_optimizer_layout(*optimizers: torch.optim.Optimizer) -> None:
    """Give each optimizer state tensor its parameter's memory layout. Loading a checkpoint
    keeps the saved layout (NCHW from a CPU run or channels_last=false) while prepare() may
    have made the parameters channels-last: CUDA's fused Adam then refuses the mix, and on
    the CPU it silently computes a wrong update."""
    for opt in optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                state = opt.state.get(p, {})
                for key, value in state.items():
                    if torch.is_tensor(value) and value.shape == p.shape and value.stride() != p.stride():
                        state[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def to_device(batch: dict, device: torch.device, nhwc: bool = False) -> dict:
    """Tensors to ``device`` (non-blocking: from pinned memory the copy overlaps compute);
    image batches in channels-last layout when the networks use it."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, dict):  # a batch within the batch (semi-supervised: the unlabeled one)
            value = to_device(value, device, nhwc)
        elif torch.is_tensor(value):
            value = value.to(device, non_blocking=True)
            if nhwc and value.dim() == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out
