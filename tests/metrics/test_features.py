"""The offline feature extractor: fixed, and its distances see what images differ in."""

from __future__ import annotations

import pytest
import torch

from gandist.data.loader import epoch_loader
from gandist.metrics.distance import Distances
from gandist.metrics.features import RandConvFeatures, distance_tags, make_extractor


def test_randconv_is_the_same_network_every_time_and_honestly_named():
    a, b = RandConvFeatures(), RandConvFeatures()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    torch.manual_seed(123)  # the global RNG plays no part in its weights
    assert torch.equal(a(x), RandConvFeatures()(x)) and torch.equal(a(x), b(x))
    assert a(x).shape == (3, RandConvFeatures.dim) and a(torch.zeros(2, 3, 64, 64)).shape == (2, 960)
    assert distance_tags(a) == ("eval/fd_randconv", "eval/kd_randconv")


def test_inception_needs_weights_named_by_the_user():
    with pytest.raises(ValueError, match="eval.inception_weights"):
        make_extractor("inception", None, torch.device("cpu"))


def test_distance_of_real_images_to_themselves_is_zero_and_grows_with_added_noise(shapes_url):
    batch = next(iter(epoch_loader(shapes_url, split="train", batch_size=64, num_workers=0, shuffle=False)))
    images = batch["image"]
    net = RandConvFeatures()
    real = net(images)
    distances = Distances(real, kid_subsets=10)
    assert distances(real)[0] == pytest.approx(0.0, abs=1e-6)
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(images.shape, generator=gen)
    fds, kds = [], []
    for sigma in (0.05, 0.2, 0.6):
        noisy = net((images + sigma * noise).clamp(-1, 1))
        fd, kd = distances(noisy)
        fds.append(fd)
        kds.append(kd)
    assert 0 < fds[0] < fds[1] < fds[2]
    assert kds[0] < kds[1] < kds[2]


def test_features_are_extracted_without_tf32_and_the_flags_come_back():
    """TF32 (the default for convolutions on Ampere and later) would make GPU scores differ from
    CPU ones: the evaluator's extraction runs with it off, and leaves the flags as they were."""
    from gandist.inference.evaluator import Evaluator
    from gandist.metrics.features import full_precision

    seen = []
    extractor = make_extractor("randconv", None, torch.device("cpu"))
    extractor.register_forward_pre_hook(
        lambda *_: seen.append((torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)))
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, True
    try:
        with full_precision():
            extractor(torch.zeros(1, 3, 32, 32))
        evaluator = Evaluator.__new__(Evaluator)  # the evaluator's own extraction path
        evaluator.extractor, evaluator.device = extractor, torch.device("cpu")
        evaluator._features(torch.zeros(1, 3, 32, 32))
        assert seen == [(False, False), (False, False)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32 = False  # torch's default
