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

    def g_losses(self, batch, fake, d_logits, gan, real_logits=None):
        terms, stats = super().g_losses(batch, fake, d_logits, gan, real_logits)
        return {**terms, "nan": (1.0, torch.tensor(float("nan")))}, stats


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


def segment_step(adv_weight: float, d_input: str = "softmax"):
    """Two steps of a 2-class segmenter (a 1x1 conv) and a 1x1-conv D; returns the phases,
    the last step's stats, and whether G and D changed."""
    from gandist.models.d_inputs import channels
    from gandist.train.tasks import SegmentTask

    torch.manual_seed(0)
    G, D = nn.Conv2d(3, 2, 1), nn.Conv2d(channels(d_input, 2, True), 1, 1)
    G.requires_grad_(False), D.requires_grad_(False)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=1e-2) for m in (G, D))
    scalers = [torch.amp.GradScaler("cpu", enabled=False) for _ in range(2)]
    task = SegmentTask(num_classes=2, seg_loss="ce", adv_weight=adv_weight, d_input=d_input)
    phases = build_phases(task, gan_loss("nonsat"), G, D, opt_g, opt_d, *scalers)
    before = [[p.detach().clone() for p in m.parameters()] for m in (G, D)]
    batch = {"image": torch.randn(4, 3, 4, 4), "mask": torch.randint(0, 2, (4, 4, 4))}
    for _ in range(2):
        result = run_step(phases, task, G, batch)
    changed = [not all(torch.equal(p, q) for p, q in zip(m.parameters(), old)) for m, old in zip((G, D), before)]
    return phases, result.stats, changed


def test_adversarial_weight_zero_is_the_supervised_baseline_with_no_d_phase():
    phases, stats, (g_changed, d_changed) = segment_step(adv_weight=0.0)
    assert [ph.name for ph in phases] == ["G"]
    assert g_changed and not d_changed
    assert "loss/G_adv" not in stats and not any(k.startswith(("loss/D", "D/")) for k in stats)
    assert torch.equal(stats["loss/G"], stats["loss/G_seg"])  # the total is the supervised term alone


def test_the_adversarial_term_enters_g_loss_at_its_weight():
    phases, stats, (g_changed, d_changed) = segment_step(adv_weight=0.5, d_input="scaling")
    assert [ph.name for ph in phases] == ["D", "G"] and g_changed and d_changed
    want = stats["loss/G_seg"] + 0.5 * stats["loss/G_adv"]
    assert torch.allclose(stats["loss/G"], want)


def penalized_d_grads(gamma: float, every: int = 1, step: int = 0, r2: bool = True, loss: str = "nonsat"):
    """D's gradient after one D phase of a small G/D pair with the given penalty (step ``step``)."""
    from gandist.train.phases import Penalty

    G, D, opt_g, opt_d, (scaler_g, scaler_d) = networks()
    task = GenerateTask(8)
    D = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.Tanh(), nn.Linear(8, 1)).requires_grad_(False)
    opt_g, opt_d = (torch.optim.SGD(m.parameters(), lr=0.0) for m in (G, D))  # gradients only
    penalty = Penalty(gamma=lambda s: gamma, every=every, r2=r2) if gamma else None
    phases = build_phases(task, gan_loss(loss), G, D, opt_g, opt_d, scaler_g, scaler_d, penalty=penalty)
    torch.manual_seed(1)
    batch = {"image": torch.randn(4, 3, 4, 4), "step": step}
    result = run_step(phases, task, G, batch)
    return [p.grad.clone() for p in D.parameters()], result.stats, G, D, batch


def test_r1_r2_penalties_add_gamma_half_times_the_input_gradient_norms_to_d():
    """The D phase's gradient with gamma equals the plain one plus gamma/2 x d(R1 + R2)/dθ,
    the penalties worked out here by autograd on the same real and fake inputs."""
    from gandist.losses import gradient_penalty

    plain, _, _, _, _ = penalized_d_grads(0.0)
    with_pen, stats, G, D, batch = penalized_d_grads(4.0)
    assert {"loss/D_r1", "loss/D_r2"} <= set(stats)
    D.requires_grad_(True)
    real = batch["image"].clone().requires_grad_(True)
    torch.manual_seed(1)
    torch.randn(4, 3, 4, 4)  # the batch's images, then the step's noise
    with torch.no_grad():
        fake = GenerateTask(8).fake(G, torch.randn(4, 8))
    fake.requires_grad_(True)
    reg = gradient_penalty(D(real), real) + gradient_penalty(D(fake), fake)
    # The last bias shifts the logits and not their input gradients: the penalty leaves it alone.
    expected = torch.autograd.grad(2.0 * reg, list(D.parameters()), allow_unused=True)
    assert expected[-1] is None
    for got, base, want in zip(with_pen, plain, expected):
        assert torch.allclose(got - base, torch.zeros_like(got) if want is None else want, atol=1e-6)
    assert not torch.allclose(with_pen[0], plain[0], atol=1e-4)  # the penalty did change D's gradient


def test_lazy_penalties_apply_every_k_steps_at_k_times_the_weight_and_r1_alone_skips_r2():
    off_step, stats_off, *_ = penalized_d_grads(4.0, every=4, step=3)
    assert "loss/D_r1" not in stats_off
    plain, *_ = penalized_d_grads(0.0, step=3)
    assert all(torch.equal(a, b) for a, b in zip(off_step, plain))
    lazy, *_ = penalized_d_grads(1.0, every=4, step=4)
    eager, *_ = penalized_d_grads(4.0, every=1, step=4)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(lazy, eager))
    _, stats_r1, *_ = penalized_d_grads(4.0, r2=False)
    assert "loss/D_r1" in stats_r1 and "loss/D_r2" not in stats_r1


def test_rpgan_g_phase_pairs_fake_logits_with_real_ones():
    """G's relativistic loss needs D(real): the G phase runs D on the reals too, and both
    phases log their loss (no separate real and fake parts for a pairing loss)."""
    _, stats, *_ = penalized_d_grads(0.0, loss="rpgan")
    assert "loss/D" in stats and "loss/D_real" not in stats and "loss/G_adv" in stats


class Offset(nn.Module):
    """D's logit: the image's mean plus a constant that the relativistic loss cannot see."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = nn.Parameter(torch.tensor(offset))

    def forward(self, x):
        return x.mean(dim=(1, 2, 3)) + self.offset


def test_ada_heuristic_under_rpgan_is_the_sign_of_real_minus_fake_and_ignores_a_constant_logit_shift():
    # rpgan sees only D(real) - D(fake); E[sign(D(real))] then follows a constant no loss trains
    # (a 200-step run: mean D(real) +1.5 -> -0.09 -> +6.7). R3GAN reports sign(D(real) - D(fake)).
    G = nn.Sequential(nn.Linear(8, 48), nn.Unflatten(1, (3, 4, 4)), nn.Tanh())
    real = torch.full((4, 3, 4, 4), 2.0)  # brighter than any fake: D ranks every real first
    signs = {}
    for loss in ("rpgan", "nonsat"):
        for offset in (-10.0, 10.0):
            D = Offset(offset)
            G.requires_grad_(False), D.requires_grad_(False)
            opts = [torch.optim.SGD(m.parameters(), lr=0.0) for m in (G, D)]
            scalers = [torch.amp.GradScaler("cpu", enabled=False) for _ in range(2)]
            task = GenerateTask(8)
            phases = build_phases(task, gan_loss(loss), G, D, *opts, *scalers)
            signs[loss, offset] = run_step(phases, task, G, {"image": real}).stats["D/real_sign"].item()
    assert signs["rpgan", -10.0] == signs["rpgan", 10.0] == 1.0
    assert (signs["nonsat", -10.0], signs["nonsat", 10.0]) == (-1.0, 1.0)  # separable losses: sign(D(real))


def test_r1_and_r2_differentiate_d_by_the_raw_images_through_the_augmentation():
    # Both references take R1/R2 as the gradient of D(aug(x)) by the un-augmented x. With
    # aug(x) = x / 2 and a linear D of weights w, that is |w / 2|^2 = |w|^2 / 4 per image
    # (by the augmented images it would be |w|^2).
    from gandist.train.phases import Penalty

    G, D, opt_g, opt_d, (scaler_g, scaler_d) = networks()
    task = GenerateTask(8, augment=lambda x: x / 2)
    penalty = Penalty(gamma=lambda step: 1.0, every=1, r2=True)
    phases = build_phases(task, gan_loss("rpgan"), G, D, opt_g, opt_d, scaler_g, scaler_d, penalty=penalty)
    w2 = D[1].weight.detach().square().sum().item()
    stats = run_step(phases, task, G, {"image": torch.randn(4, 3, 4, 4), "step": 0}).stats
    assert abs(stats["loss/D_r1"].item() - w2 / 4) < 1e-6 * w2
    assert abs(stats["loss/D_r2"].item() - w2 / 4) < 1e-6 * w2


def maps_only_segment_gan(g_first: bool = False, **task_kwargs):
    """A 2-class 1x1-conv segmenter and a D on its class maps alone, in [0, 1] (Hung et al.'s
    input); returns G, D, the task and the step's phases."""
    from gandist.train.tasks import SegmentTask

    torch.manual_seed(0)
    G, D = nn.Conv2d(3, 2, 1), nn.Conv2d(2, 1, 1)
    G.requires_grad_(False), D.requires_grad_(False)
    opt_g, opt_d = (torch.optim.Adam(m.parameters(), lr=1e-1) for m in (G, D))
    scalers = [torch.amp.GradScaler("cpu", enabled=False) for _ in range(2)]
    task = SegmentTask(num_classes=2, adv_weight=0.5, d_image=False, d_map_range="unit", **task_kwargs)
    return G, D, task, build_phases(task, gan_loss("nonsat"), G, D, opt_g, opt_d, *scalers, g_first=g_first)


def test_g_first_reads_d_from_before_its_update_as_hung_et_al():
    """Hung et al. step G and D together: G's adversarial term reads D as it was before the
    step's D update. g_first gives that; the default (pix2pix) order reads the updated D."""
    import copy

    for g_first in (True, False):
        G, D, task, phases = maps_only_segment_gan(g_first=g_first)
        batch = {"image": torch.randn(4, 3, 4, 4), "mask": torch.randint(0, 2, (4, 4, 4)), "step": 0}
        D_before = copy.deepcopy(D)
        with torch.no_grad():
            want = gan_loss("nonsat").g(D_before(task.d_fake(batch, G(batch["image"]))))
        stats = run_step(phases, task, G, batch).stats
        assert [ph.name for ph in phases] == (["G", "D"] if g_first else ["D", "G"])
        assert torch.allclose(stats["loss/G_adv"], want) == g_first, g_first


def test_d_learns_from_the_unlabeled_predictions_unless_d_unlabeled_is_false():
    """Hung et al.'s --D-remain (true): D's fake half is G's labeled and unlabeled predictions;
    task.d_unlabeled=false leaves the unlabeled ones out of D's loss (G's losses still read D on them)."""
    n, fakes_seen = 4, {}
    for d_unlabeled in (True, False):
        G, D, task, phases = maps_only_segment_gan(semi="adversarial", d_unlabeled=d_unlabeled)
        labeled = {"image": torch.randn(n, 3, 4, 4), "mask": torch.randint(0, 2, (n, 4, 4))}
        batch = {**labeled, "step": 0, "unlabeled": {"image": torch.randn(n, 3, 4, 4)}}
        shapes = []
        D.register_forward_hook(lambda m, args, out: shapes.append(args[0].shape[0]))
        stats = run_step(phases, task, G, batch).stats
        fakes_seen[d_unlabeled] = shapes[0]  # D's phase runs first: its fake forward, then its real one
        assert shapes[1] == n and shapes[2] == 2 * n  # the reals; G's phase reads D on every prediction
        assert "loss/G_adv_unlabeled" in stats
    assert fakes_seen == {True: 2 * n, False: n}
