"""The GPU path's switches: what each resolves to per device, and that channels-last and
torch.compile train the same numbers as the plain path (checked on CPU)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from helpers import local_cfg
from gandist.ckpt import load_checkpoint
from gandist.config import ConfigError, compose_config
from gandist.launchers.local import run_local
from gandist.models import UNetGenerator
from gandist.train import accel

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_defaults_are_on_for_gpus_and_off_for_cpus(monkeypatch):
    cfg = compose_config([])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert accel.amp_mode(cfg.trainer.amp, GPU) == "bf16"
    assert accel.channels_last(cfg, GPU) and accel.pin_memory(cfg, GPU)
    assert accel.amp_mode(cfg.trainer.amp, CPU) == "off"
    assert not accel.channels_last(cfg, CPU) and not accel.pin_memory(cfg, CPU)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert accel.amp_mode("auto", GPU) == "off"  # pre-Ampere: no bf16, and fp16 only when asked
    assert accel.amp_mode("fp16", GPU) == "fp16" and accel.amp_mode("bf16", CPU) == "bf16"
    # Explicit settings win; pinned memory never applies without a GPU.
    cfg = compose_config(["trainer.channels_last=true", "data.pin_memory=true"])
    assert accel.channels_last(cfg, CPU) and not accel.pin_memory(cfg, CPU)
    assert not accel.channels_last(compose_config(["trainer.channels_last=false"]), GPU)


def test_bad_amp_value_names_the_choices():
    with pytest.raises(ConfigError, match="trainer.amp='fp8' is not one of auto, off, bf16, fp16"):
        compose_config(["trainer.amp=fp8"])


def test_compile_leaves_the_evaluation_copy_alone():
    cfg = compose_config(["trainer.compile=true", "trainer.channels_last=true"])
    G, G_ema = (UNetGenerator(in_channels=3, out_channels=4, resolution=16, width=4) for _ in range(2))
    assert accel.prepare(cfg, CPU, G, uncompiled=(G_ema,)).compile
    assert G._compiled_call_impl is not None and G_ema._compiled_call_impl is None
    assert G_ema.down[0][0].weight.is_contiguous(memory_format=torch.channels_last)  # the layout still applies


def test_prepare_makes_networks_and_batches_channels_last():
    cfg = compose_config(["trainer.channels_last=true"])
    G = UNetGenerator(in_channels=3, out_channels=4, resolution=32, width=8, dropout=0.0)
    path = accel.prepare(cfg, CPU, G)
    assert path.channels_last and path.amp == "off" and not path.compile
    convs = [m.weight for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    batch = accel.to_device({"image": torch.randn(2, 3, 32, 32), "mask": torch.zeros(2, 32, 32, dtype=torch.long),
                             "key": ["a", "b"]}, CPU, nhwc=True)
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    assert batch["mask"].shape == (2, 32, 32) and batch["key"] == ["a", "b"]


def losses_of(shapes_url, tmp_path, name, *extra):
    """The loss scalars of steps 1 and 2 of a short run, as TensorBoard has them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # No dropout: its random masks depend on the memory layout and on compiled kernels' RNG.
    cfg = local_cfg(shapes_url, tmp_path, name, "trainer.max_steps=2", "trainer.ckpt_every=2", "model.dropout=0",
                    *extra)
    summary = run_local(cfg)
    acc = EventAccumulator(summary.log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return cfg, summary, {(tag, e.step): e.value for tag in acc.Tags()["scalars"] if tag.startswith("loss/")
                          for e in acc.Scalars(tag)}


@pytest.fixture(scope="module")
def plain_losses(shapes_url, tmp_path_factory):
    """The losses of a task's run without any switch, once per task for every switch compared with it."""
    runs: dict[str, dict] = {}

    def losses(task: str) -> dict:
        if task not in runs:
            runs[task] = losses_of(shapes_url, tmp_path_factory.mktemp("plain"), "plain", f"task={task}")[2]
        return runs[task]
    return losses


# torch.compile on the DCGAN (generate), whose fewer layers compile in about half the U-Net's
# time (29 C++ kernels against 48, cold, on 2 cores); channels-last on the U-Net, whose skips
# concatenate across the layout.
@pytest.mark.parametrize("switch,task", [("trainer.channels_last=true", "segment"), ("trainer.compile=true", "generate"),
                                         ("trainer.fused_adam=false", "segment")])
def test_switch_trains_the_same_numbers_and_checkpoints_load_without_it(shapes_url, plain_losses, tmp_path, switch,
                                                                       task):
    cfg, summary, switched = losses_of(shapes_url, tmp_path, "switched", f"task={task}", switch)
    plain = plain_losses(task)
    assert plain.keys() == switched.keys() and plain
    for (tag, step), value in plain.items():
        # Step 1 runs on identical weights; Adam's first update (about lr x the gradient's
        # sign) magnifies rounding differences of the other layout into step 2.
        tolerance = 1e-4 if step == 1 else 1e-2
        assert math.isfinite(value) and switched[tag, step] == pytest.approx(value, rel=tolerance), (tag, step)
    # The checkpoint has the plain module names and loads into a run without the switch.
    state = load_checkpoint(summary.checkpoint)["state"]
    assert not any("_orig_mod" in key for key in state["G"])
    cfg.trainer.channels_last, cfg.trainer.compile, cfg.trainer.fused_adam, cfg.trainer.max_steps = False, False, True, 3
    assert run_local(cfg).step == 3


def test_fused_adam_is_the_runs_choice_not_the_checkpoints(shapes_url, tmp_path):
    from gandist.train.state import TrainState

    def state(fused: bool) -> TrainState:
        cfg = local_cfg(shapes_url, tmp_path, "fused", f"trainer.fused_adam={str(fused).lower()}")
        return TrainState.fresh(cfg, 4, CPU)

    saved = state(False).state_dict()
    for fused in (True, False):
        resumed = state(fused)
        resumed.load_state_dict(saved)
        for opt in (resumed.opt_g, resumed.opt_d):
            assert [g["fused"] for g in opt.param_groups] == [fused]


def test_resumed_adam_moments_follow_the_parameters_layout():
    """Moments saved NCHW (a CPU run, or channels_last=false), resumed channels-last: the
    fused update must equal foreach Adam's on the same numbers, step after step."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 3))
    first = torch.optim.Adam(net.parameters(), lr=1e-2, fused=True)
    x = torch.randn(2, 3, 12, 12)
    net(x).square().mean().backward()
    first.step()
    saved_net, saved_opt = copy.deepcopy(net.state_dict()), copy.deepcopy(first.state_dict())

    def resumed(nhwc: bool, fused: bool):
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 3))
        model.load_state_dict(saved_net)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2, fused=fused, foreach=not fused)
        opt.load_state_dict(copy.deepcopy(saved_opt))  # loading shares the saved tensors otherwise
        for group in opt.param_groups:  # as TrainState does: the implementation is this run's
            group["fused"], group["foreach"] = fused, not fused
        if nhwc:
            model.to(memory_format=torch.channels_last)
            accel.match_optimizer_layout(opt)
        return model, opt

    model, opt = resumed(nhwc=True, fused=True)
    reference, reference_opt = resumed(nhwc=False, fused=False)
    for _ in range(3):
        for m, o in ((model, opt), (reference, reference_opt)):
            o.zero_grad()
            m(x.contiguous(memory_format=torch.channels_last) if m is model else x).square().mean().backward()
            o.step()
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours.contiguous(), theirs, rtol=1e-5, atol=1e-6)


def test_auto_amp_takes_bf16_only_where_the_gpu_has_it_natively(monkeypatch):
    """V100/T4 report bf16 as supported through emulation, slower than fp32: auto leaves it off."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert accel.amp_mode("auto", torch.device("cuda", 0)) == "off"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert accel.amp_mode("auto", torch.device("cuda", 0)) == "bf16"
    assert accel.amp_mode("auto", CPU) == "off" and accel.amp_mode("fp16", CPU) == "fp16"
