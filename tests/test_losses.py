import math

import pytest
import torch
import torch.nn.functional as F

from gandist import losses
from gandist.losses import gan_loss

REAL = [0.5, -1.0, 2.0]
FAKE = [0.2, -0.3, -1.5]


def softplus(x: float) -> float:
    return math.log(1 + math.exp(x))


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


# Expected values written out by hand from the definitions, one term per logit.
EXPECTED = {
    "nonsat": (
        mean([softplus(-r) for r in REAL]),  # -log sigmoid(r)
        mean([softplus(f) for f in FAKE]),  # -log(1 - sigmoid(f))
        mean([softplus(-f) for f in FAKE]),  # -log sigmoid(f)
    ),
    # relu(1 - r) = 0.5, 2.0, 0 (past the margin); relu(1 + f) = 1.2, 0.7, 0 (past the margin)
    "hinge": ((0.5 + 2.0 + 0.0) / 3, (1.2 + 0.7 + 0.0) / 3, -(0.2 - 0.3 - 1.5) / 3),
    "lsgan": (
        0.5 * (0.25 + 4.0 + 1.0) / 3,  # (r - 1)^2 = 0.25, 4, 1
        0.5 * (0.04 + 0.09 + 2.25) / 3,  # f^2
        0.5 * (0.64 + 1.69 + 6.25) / 3,  # (f - 1)^2
    ),
}


@pytest.mark.parametrize("kind", ["nonsat", "hinge", "lsgan"])
def test_values_match_hand_computation(kind: str) -> None:
    loss = gan_loss(kind)
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    got = (loss.d_real(r), loss.d_fake(f), loss.g(f))  # g: separable losses need no real logits
    for term, value, want in zip(("d_real", "d_fake", "g"), got, EXPECTED[kind]):
        assert value.dim() == 0, term
        assert value.item() == pytest.approx(want, rel=1e-12), term


def test_nonsat_is_bce_with_logits() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 1, 3, 3)  # patch logits average like any other shape
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    assert torch.allclose(losses.nonsat_d_real(x), F.binary_cross_entropy_with_logits(x, ones))
    assert torch.allclose(losses.nonsat_d_fake(x), F.binary_cross_entropy_with_logits(x, zeros))
    assert torch.allclose(losses.nonsat_g(x), F.binary_cross_entropy_with_logits(x, ones))


@pytest.mark.parametrize("kind", ["nonsat", "hinge", "lsgan"])
def test_gradient_signs(kind: str) -> None:
    """Descent raises real logits for D, lowers fake logits for D and raises them for G."""
    loss = gan_loss(kind)
    # Inside every loss's active region: real below the margin 1, fake in (0, 1).
    r = torch.tensor([0.5, -1.0], requires_grad=True)
    f = torch.tensor([0.2, 0.7], requires_grad=True)
    (g_real,) = torch.autograd.grad(loss.d_real(r), r)
    (g_fake,) = torch.autograd.grad(loss.d_fake(f), f)
    (g_gen,) = torch.autograd.grad(loss.g(f), f)
    assert (g_real < 0).all() and (g_fake > 0).all() and (g_gen < 0).all()


def test_gan_loss_exposes_module_functions() -> None:
    assert gan_loss("hinge").d_real is losses.hinge_d_real
    assert gan_loss("lsgan").g_fake is losses.lsgan_g
    assert gan_loss("rpgan").pair_d is losses.rpgan_d and gan_loss("rpgan").relativistic
    assert not gan_loss("nonsat").relativistic


def test_separable_d_is_the_sum_of_its_logged_parts() -> None:
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    total, parts = gan_loss("hinge").d(r, f)
    assert total.item() == pytest.approx(EXPECTED["hinge"][0] + EXPECTED["hinge"][1], rel=1e-12)
    assert parts["loss/D_real"].item() == pytest.approx(EXPECTED["hinge"][0], rel=1e-12)
    assert parts["loss/D_fake"].item() == pytest.approx(EXPECTED["hinge"][1], rel=1e-12)


def test_rpgan_values_match_hand_computation() -> None:
    """R3GAN's relativistic pairing: D softplus(-(r - f)), G softplus(-(f - r)), pair by pair."""
    loss = gan_loss("rpgan")
    r, f = torch.tensor(REAL, dtype=torch.float64), torch.tensor(FAKE, dtype=torch.float64)
    # r - f = 0.3, -0.7, 3.5
    want_d = mean([softplus(-0.3), softplus(0.7), softplus(-3.5)])
    want_g = mean([softplus(0.3), softplus(-0.7), softplus(3.5)])
    total, parts = loss.d(r, f)
    assert total.item() == pytest.approx(want_d, rel=1e-12) and parts == {}
    assert loss.g(f, r).item() == pytest.approx(want_g, rel=1e-12)
    # Only the gap matters: shifting both logits changes nothing.
    assert loss.d(r + 5, f + 5)[0].item() == pytest.approx(want_d, rel=1e-12)


def test_rpgan_g_without_real_logits_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="real samples"):
        gan_loss("rpgan").g(torch.zeros(3))


def test_gradient_penalty_equals_the_squared_input_gradient_norm() -> None:
    """On a tiny D, the penalty equals |dD/dx|^2 per sample worked out from its weights, and its
    own gradient (the double backward) equals autograd's through the explicit formula."""
    torch.manual_seed(0)
    w = torch.randn(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, 2, 3, 3, dtype=torch.float64, requires_grad=True)

    def D(inp: torch.Tensor) -> torch.Tensor:  # a smooth nonlinear critic: sum of tanh(w * x)
        return torch.tanh(inp * w).flatten(1).sum(dim=1)

    penalty = losses.gradient_penalty(D(x), x)
    # d/dx sum tanh(w x) = w (1 - tanh(w x)^2), per sample; squared norm, then the batch mean.
    explicit = (w * (1 - torch.tanh(x * w) ** 2)).square().flatten(1).sum(dim=1).mean()
    assert penalty.item() == pytest.approx(explicit.item(), rel=1e-12)
    (grad_w,) = torch.autograd.grad(penalty, w)
    (want_w,) = torch.autograd.grad(explicit, w)
    assert torch.allclose(grad_w, want_w, rtol=1e-10, atol=1e-12)


def test_gradient_penalty_removes_the_loss_scale() -> None:
    torch.manual_seed(1)
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    logits = (x ** 3).flatten(1).sum(dim=1)
    plain = losses.gradient_penalty(logits, x)
    scaled = losses.gradient_penalty(logits, x, scale=torch.tensor(1024.0))
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-5)


def test_unknown_kind_names_value_and_choices() -> None:
    with pytest.raises(ValueError) as exc:
        gan_loss("wgan")
    msg = str(exc.value)
    assert "wgan" in msg and all(k in msg for k in ("nonsat", "hinge", "lsgan"))


def test_l1() -> None:
    pred = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert losses.l1(pred, target).item() == pytest.approx((1 + 0 + 2 + 1) / 4)
    with pytest.raises(ValueError, match="shape"):
        losses.l1(pred, target[0])


def test_cross_entropy_is_the_mean_negative_log_probability_of_the_true_class():
    logits = torch.tensor([[[[2.0]], [[0.0]]], [[[0.0]], [[1.0]]]])  # [N=2, C=2, 1, 1]
    mask = torch.tensor([[[0]], [[0]]])
    want = mean([-math.log(math.exp(2) / (math.exp(2) + 1)), -math.log(1 / (1 + math.e))])
    assert losses.cross_entropy(logits, mask).item() == pytest.approx(want, rel=1e-6)


def test_dice_by_hand_leaves_out_classes_absent_from_the_masks():
    # One image of 2 pixels, 3 classes; class 2 appears in no mask.
    probs = torch.tensor([[0.8, 0.4], [0.2, 0.5], [0.0, 0.1]]).reshape(1, 3, 1, 2)
    onehot = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).reshape(1, 3, 1, 2)
    # class 0: (2 * 0.8 + 1) / (1.2 + 1 + 1); class 1: (2 * 0.5 + 1) / (0.7 + 1 + 1)
    want = 1 - mean([2.6 / 3.2, 2.0 / 2.7])
    assert losses.dice(probs, onehot).item() == pytest.approx(want, rel=1e-6)
    assert losses.dice(onehot, onehot).item() == pytest.approx(0.0, abs=1e-7)  # perfect prediction
    with pytest.raises(ValueError, match="dice: probs shape"):
        losses.dice(probs[:, :2], onehot)


@pytest.mark.parametrize("kind", ["nonsat", "hinge", "lsgan", "rpgan"])
def test_d_scale_multiplies_d_loss_and_not_its_logged_parts_nor_g_loss(kind):
    """pix2pix's loss_D = (loss_D_fake + loss_D_real) * 0.5; G's loss is untouched."""
    real, fake = torch.randn(6, 1, 3, 3), torch.randn(6, 1, 3, 3)
    full, halved = gan_loss(kind), gan_loss(kind, d_scale=0.5)
    (d1, parts1), (d2, parts2) = full.d(real, fake), halved.d(real, fake)
    assert torch.allclose(d2, 0.5 * d1) and parts1.keys() == parts2.keys()
    assert all(torch.equal(parts1[k], parts2[k]) for k in parts1)
    assert torch.equal(full.g(fake, real), halved.g(fake, real))
