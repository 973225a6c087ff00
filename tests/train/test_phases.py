"""One GAN step: skips agreed on the device, one all-reduce and one host read per step."""

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from gandist.losses import gan_loss
from gandist.train import phases as phases_module
from gandist.train.phases import build_phases, run_step
from gandist.train.tasks import GenerateTask


def networks(fused: bool = True):
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(8, 48), nn.Unflatten(1, (3, 4, 4)))
    D = nn.Sequential(nn.Flatten(), nn.Linear(48, 1))
    G.requires_grad_(False), D.requires_grad_(False)  # as fit() leaves them
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=1e-3, fused=fused) for m in (G, D))
    scalers = [torch.amp.GradScaler("cpu", enabled=False) for _ in range(2)]
    return G, D, opt_g, opt_d, scalers


class HostReads(TorchDispatchMode):
    """Records, in order, every op that reads a tensor's value back to Python."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.startswith(("_local_scalar_dense", "item", "is_nonzero")):
            self.events.append("host read")
        return func(*args, **(kwargs or {}))


def test_a_step_makes_one_all_reduce_and_reads_nothing_back_before_it(monkeypatch):
    """Both phases decide their skip on the device; the host learns the step's outcome from
    one all-reduce at its end (it was two, each followed by a host sync)."""
    events: list[str] = []

    def counted(t):
        events.append("all-reduce")
        return t

    monkeypatch.setattr(phases_module, "all_reduce_sum", counted)
    G, D, opt_g, opt_d, (scaler_g, scaler_d) = networks()
    task = GenerateTask(8)
    phases = build_phases(task, gan_loss("nonsat"), G, D, opt_g, opt_d, scaler_g, scaler_d)
    with HostReads(events):
        result = run_step(phases, task, G, {"image": torch.randn(4, 3, 4, 4)})
    assert events.count("all-reduce") == 1, events
    assert "host read" not in events[:events.index("all-reduce")], events
    assert result.skipped == {} and set(result.stats) >= {"grad/D_norm", "grad/G_norm"}


class NaNPenalty(GenerateTask):
    """An extra G loss that is NaN but contributes no gradient: only the loss shows it."""

    def extra_g_losses(self, batch, fake):
        return {"nan": torch.tensor(float("nan"))}


def test_a_non_finite_loss_skips_its_phase_even_when_its_gradients_are_finite():
    G, D, opt_g, opt_d, (scaler_g, scaler_d) = networks()
    task = NaNPenalty(8)
    phases = build_phases(task, gan_loss("nonsat"), G, D, opt_g, opt_d, scaler_g, scaler_d)
    g_before, d_before = ([p.detach().clone() for p in m.parameters()] for m in (G, D))

    result = run_step(phases, task, G, {"image": torch.randn(4, 3, 4, 4)})
    assert result.skipped == {"G": [0]} and result.overflowed == []
    assert all(torch.equal(p, q) for p, q in zip(G.parameters(), g_before)), "G stepped on a NaN loss"
    assert all(opt_g.state[p].get("step", torch.zeros(())).item() == 0 for p in G.parameters())  # fused Adam did not count it
    assert not all(torch.equal(p, q) for p, q in zip(D.parameters(), d_before)), "D's good step was lost"
