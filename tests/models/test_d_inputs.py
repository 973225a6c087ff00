"""D's input encodings for segmentation, against tensors worked out by hand."""

import pytest
import torch

from gandist.models import d_inputs


def test_scaling_by_hand():
    # 2 pixels, 3 classes. Pixel 0: true class 0 predicted at 0.5 -> raised to tau = 0.9; the
    # other 0.1 is shared 0.3 : 0.2 as predicted. Pixel 1: true class 1 predicted at 0.95 > tau,
    # so it keeps 0.95 and the rest keeps its proportions (0.04, 0.01).
    mask = torch.tensor([[[0, 1]]])
    probs = torch.tensor([[0.5, 0.04], [0.3, 0.95], [0.2, 0.01]]).reshape(1, 3, 1, 2)
    want = torch.tensor([[0.9, 0.04], [0.06, 0.95], [0.04, 0.01]]).reshape(1, 3, 1, 2)
    got = d_inputs.scaled_one_hot(mask, probs, tau=0.9)
    assert torch.allclose(got, want, atol=1e-6), got
    assert torch.allclose(got.sum(1), torch.ones(1, 1, 2))
    assert torch.equal(d_inputs.scaled_one_hot(mask, probs, tau=1.0), d_inputs.one_hot(mask, 3))  # tau 1: plain one-hot


def test_scaling_of_a_certain_wrong_prediction_stays_finite():
    mask = torch.tensor([[[0]]])
    probs = torch.tensor([0.0, 1.0]).reshape(1, 2, 1, 1)
    got = d_inputs.scaled_one_hot(mask, probs, tau=0.9)
    assert torch.isfinite(got).all() and got[0, 0].item() == pytest.approx(0.9)


@pytest.mark.parametrize("kind, with_image, channels", [
    ("softmax", True, 3 + 4), ("softmax", False, 4), ("scaling", True, 3 + 4), ("product", True, 3 + 12),
    ("product", False, 12),
])
def test_view_shapes_match_channels(kind, with_image, channels):
    maps, image = torch.rand(2, 4, 8, 8), torch.rand(2, 3, 8, 8) * 2 - 1
    x = d_inputs.view(kind, maps, image, with_image)
    assert x.shape == (2, channels, 8, 8) and d_inputs.channels(kind, 4, with_image) == channels
    if with_image:
        assert torch.equal(x[:, :3], image)  # the image comes first, unchanged


def test_product_multiplies_each_class_map_with_each_image_channel():
    maps = torch.tensor([1.0, 0.0]).reshape(1, 2, 1, 1)
    image = torch.tensor([0.5, -1.0, 0.25]).reshape(1, 3, 1, 1)
    x = d_inputs.view("product", maps, image, with_image=False)
    assert x.flatten().tolist() == [0.5, -1.0, 0.25, 0.0, -0.0, 0.0]
    softmax = d_inputs.view("softmax", maps, image, with_image=False)
    assert softmax.flatten().tolist() == [1.0, -1.0]  # class maps scaled to the images' [-1, 1]


def test_unit_range_keeps_the_maps_as_hung_et_als_d_sees_them():
    """Hung et al.'s D takes softmax probabilities and one-hot masks as they are, in [0, 1]."""
    maps = torch.tensor([[[[0.0, 0.25]], [[1.0, 0.75]]]])  # [1, 2 classes, 1, 2]
    image = torch.zeros(1, 3, 1, 2)
    view = d_inputs.view
    assert torch.equal(view("softmax", maps, image, False, "unit"), maps)
    assert torch.equal(view("softmax", maps, image, False), maps * 2 - 1)  # the default: the images' range
    assert view("scaling", maps, image, True, "unit").shape[1] == 5


def test_the_semi_preset_is_hung_et_als_recipe():
    from gandist.config import compose_config, pixel_d_stride

    cfg = compose_config(["task=segment_semi"])
    t, m, tr = cfg.task, cfg.model, cfg.trainer
    assert (t.semi, t.d_input, t.d_image, t.d_map_range, t.g_first) == ("adversarial", "softmax", False, "unit", True)
    # lambda_adv_pred 0.01, lambda_semi 0.1, lambda_semi_adv 0.001, mask_T 0.2, semi_start 5000 of 20000
    assert (t.adv_weight, t.semi_weight, t.adv_unlabeled_weight, t.semi_threshold, t.semi_start) == (
        0.01, 0.1, 0.001, 0.2, 0.25)
    assert (tr.lr_d, tr.d_beta1, tr.d_beta2, tr.d_lr_schedule) == (1e-4, 0.9, 0.99, "poly")
    assert (m.d_arch, m.d_layers, m.d_width) == ("pixel", 3, 64) and cfg.data.label_fraction == 0.125
    assert m.resolution // pixel_d_stride(m.resolution, m.d_layers, m.d_stride) >= 8


def test_semi_adversarial_means_hung_et_als_d_unless_a_key_says_otherwise():
    """task.semi=adversarial under task=segment takes the reference's D input and optimiser by
    default (the literal override used to keep gandist's own image + signed maps, shared Adam);
    an explicit key still wins, and a plain segment run keeps its own D."""
    from gandist.config import compose_config

    semi = ["task=segment", "task.semi=adversarial", "model.d_arch=pixel", "data.label_fraction=0.125"]
    t, tr = (cfg := compose_config(semi)).task, cfg.trainer
    assert (t.d_image, t.d_map_range, t.g_first) == (False, "unit", True)
    assert (tr.lr_d, tr.d_beta1, tr.d_beta2, tr.d_lr_schedule) == (1e-4, 0.9, 0.99, "poly")
    own = compose_config(semi + ["task.d_image=true", "trainer.d_beta1=0.5", "task.g_first=false", "trainer.lr_d=2e-4"])
    assert (own.task.d_image, own.task.d_map_range, own.task.g_first, own.trainer.d_beta1, own.trainer.lr_d) == (
        True, "unit", False, 0.5, 2e-4)
    plain = compose_config(["task=segment"])
    assert (plain.task.d_image, plain.task.d_map_range, plain.task.g_first) == (True, "signed", False)
    assert (plain.trainer.lr_d, plain.trainer.d_beta1, plain.trainer.d_beta2, plain.trainer.d_lr_schedule) == (
        2e-4, None, None, None)
    # what ran is what the saved config says: the derived values survive the round trip
    from gandist.config import from_dict

    again = from_dict(cfg.to_dict())
    assert (again.task.d_image, again.task.d_map_range, again.trainer.d_lr_schedule) == (False, "unit", "poly")
