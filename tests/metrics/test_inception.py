"""The FID Inception: the same features as torch-fidelity's standard extractor on the same
weights, its architecture and the names its weights file needs, and the loader's errors. The
real weights are not available offline, so a randomly initialised network with non-trivial
batch-norm statistics stands in for them."""

from __future__ import annotations

import contextlib
import importlib
import sys
import types
from pathlib import Path
from typing import Iterator

import fsspec
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gandist.metrics.features import distance_tags, make_extractor
from gandist.metrics.inception import (FID_WEIGHTS_FILE, ConvBN, FIDInceptionV3, avg_pool_3x3,
                                       load_fid_inception, resize_bilinear_tf1)

# `make test` unpacks torch-fidelity's wheel here (see the Makefile: it is not installed).
FIDELITY = Path(__file__).resolve().parents[2] / ".tools" / "torch-fidelity-0.4.0" / "torch_fidelity"

# Counted from torchvision's Inception3 source: BasicConv2d modules in the stem (5), InceptionA
# (7, three times), InceptionB (4), InceptionC (10, four times), InceptionD (6), InceptionE (9, twice).
NUM_CONVS = 5 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 9
# torchvision's published num_params for Inception3 (aux classifier, 1000 classes) is 27,161,264.
# The FID net drops AuxLogits (conv0 768->128 1x1 + bn, conv1 128->768 5x5 + bn, fc 768->1000)
# and its fc has 1008 outputs instead of 1000.
AUX_PARAMS = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
FID_NUM_PARAMS = 27_161_264 - AUX_PARAMS + 8 * (2048 + 1)


@pytest.fixture(scope="module")
def net() -> FIDInceptionV3:
    """Random weights scaled so activations neither vanish nor explode through 94 convs, and
    batch-norm statistics far from the identity, so that weights that fail to load show up."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = FIDInceptionV3()
        for m in model.modules():
            if isinstance(m, ConvBN):
                nn.init.kaiming_normal_(m.conv.weight, nonlinearity="relu")
                c = m.bn.num_features
                m.bn.weight.data.uniform_(0.5, 1.5)
                m.bn.bias.data.normal_(0.0, 0.1)
                m.bn.running_mean.data.normal_(0.0, 0.1)
                m.bn.running_var.data.uniform_(0.5, 1.5)
                m.bn.num_batches_tracked.fill_(c)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1


@pytest.fixture(scope="module")
def features(net, images) -> torch.Tensor:
    """The stand-in network's features of ``images``, computed once (a forward is ~0.3 s on CPU)."""
    return net(images)


def test_features_are_2048_finite_values_per_image_for_any_input_size(net, features):
    small = features
    other = net(torch.rand(1, 3, 48, 40, generator=torch.Generator().manual_seed(2)) * 2 - 1)
    assert small.shape == (2, 2048) and other.shape == (1, 2048) == (1, FIDInceptionV3.dim)
    assert small.dtype == other.dtype == torch.float32
    assert torch.isfinite(small).all() and torch.isfinite(other).all()
    # Not a degenerate output: images differ, so do their features.
    assert (small[0] - small[1]).abs().max() > 1e-3 * small.abs().max() > 0


def test_eval_features_are_deterministic_and_independent_of_the_rest_of_the_batch(net, images, features):
    assert torch.equal(net(images), features)
    # Eval-mode batch norm uses the running statistics, so one image alone gives the same features.
    torch.testing.assert_close(net(images[:1]), features[:1], rtol=1e-4, atol=1e-5)


@contextlib.contextmanager
def torch_fidelity_inception() -> Iterator[types.ModuleType]:
    """torch-fidelity's own feature_extractor_inceptionv3 module, imported from its source
    without running its package __init__ (which imports torchvision for its datasets), and
    gone from sys.modules afterwards."""
    if not FIDELITY.is_dir():
        pytest.skip(f"torch-fidelity's source is not at {FIDELITY}: `make test` fetches it")

    def ours() -> list[str]:
        return [k for k in sys.modules if k == "torch_fidelity" or k.startswith("torch_fidelity.")]

    assert not ours(), "torch_fidelity is installed: import it normally instead"
    package = types.ModuleType("torch_fidelity")
    package.__path__ = [str(FIDELITY)]
    sys.modules["torch_fidelity"] = package
    try:
        yield importlib.import_module("torch_fidelity.feature_extractor_inceptionv3")
    finally:
        for key in ours():
            del sys.modules[key]


@pytest.mark.parametrize("size", [(32, 32), (48, 40)])
def test_features_equal_torch_fidelitys_standard_extractor_on_the_same_weights(net, tmp_path, size):
    """torch-fidelity's InceptionV3 (what torchmetrics' FID uses) loads our network's weights
    strictly, so the two share every name and shape; on the same 8-bit images both give the same
    2048 features, so gandist's FID is the standard one given the standard weights file."""
    path = tmp_path / "weights.pth"
    torch.save(net.state_dict(), path)
    with torch_fidelity_inception() as fidelity:
        reference = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                                         feature_extractor_weights_path=str(path))
        images = torch.randint(0, 256, (2, 3, *size), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))
        want = reference(images)[0]
    got = net(images.float() / 127.5 - 1)  # the [-1, 1] images that save as these bytes
    assert want.shape == got.shape == (2, 2048)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


def test_the_resize_is_tensorflow_1s_as_torch_fidelity_computes_it_and_not_torchs():
    x = torch.rand(2, 3, 32, 24, generator=torch.Generator().manual_seed(6)) * 255
    with torch_fidelity_inception():
        tf1 = importlib.import_module("torch_fidelity.interpolate_compat_tensorflow")
        want = tf1.interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    torch.testing.assert_close(resize_bilinear_tf1(x, 299), want, rtol=0, atol=1e-3)
    # Torch's own bilinear resize centres pixels, so it differs: the check above can fail.
    assert not torch.allclose(F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False), want, atol=1)


def test_every_block_sees_the_feature_map_sizes_of_torchvisions_inception3(net):
    # The shapes annotated in torchvision's Inception3._forward for a 299x299 input.
    want = {"Conv2d_1a_3x3": (32, 149, 149), "Conv2d_2a_3x3": (32, 147, 147), "Conv2d_2b_3x3": (64, 147, 147),
            "Conv2d_3b_1x1": (80, 73, 73), "Conv2d_4a_3x3": (192, 71, 71), "Mixed_5b": (256, 35, 35),
            "Mixed_5c": (288, 35, 35), "Mixed_5d": (288, 35, 35), "Mixed_6a": (768, 17, 17),
            "Mixed_6b": (768, 17, 17), "Mixed_6c": (768, 17, 17), "Mixed_6d": (768, 17, 17),
            "Mixed_6e": (768, 17, 17), "Mixed_7a": (1280, 8, 8), "Mixed_7b": (2048, 8, 8), "Mixed_7c": (2048, 8, 8)}
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [getattr(net, name).register_forward_hook(
        lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape[1:]))) for name in want]
    try:
        net(torch.zeros(1, 3, 20, 24))
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == want


def test_the_fid_pools_leave_padding_out_and_the_last_block_max_pools(net):
    ones = torch.ones(1, 4, 5, 5)
    assert torch.equal(avg_pool_3x3(ones), ones)  # zero padding counted would make corners 4/9
    x = torch.randn(1, 8, 6, 6, generator=torch.Generator().manual_seed(3))
    assert torch.equal(net.Mixed_7c.pool(x), F.max_pool2d(x, 3, stride=1, padding=1))
    assert torch.equal(net.Mixed_7b.pool(x), avg_pool_3x3(x))
    assert all(m.eps == 0.001 for m in net.modules() if isinstance(m, nn.BatchNorm2d))


def test_names_and_shapes_are_those_of_the_pytorch_fid_weights_file(net):
    state = net.state_dict()
    for key in ("Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.running_mean", "Conv2d_4a_3x3.bn.running_var",
                "Mixed_5b.branch1x1.conv.weight", "Mixed_5b.branch5x5_1.bn.bias", "Mixed_6a.branch3x3.conv.weight",
                "Mixed_6e.branch7x7dbl_5.conv.weight", "Mixed_7a.branch7x7x3_4.bn.weight",
                "Mixed_7c.branch3x3dbl_3b.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.bias"):
        assert key in state, key
    assert not [k for k in state if k.startswith("AuxLogits")]
    assert state["fc.weight"].shape == (1008, 2048) and state["fc.bias"].shape == (1008,)
    assert state["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    # Each conv has a bias-free conv weight and five batch-norm entries; fc adds two.
    assert sum(isinstance(m, ConvBN) for m in net.modules()) == NUM_CONVS == 94
    assert len(state) == 6 * NUM_CONVS + 2


def test_parameter_count_is_torchvisions_inception_without_aux_and_with_1008_classes(net):
    assert FID_NUM_PARAMS == 23_850_960
    assert sum(p.numel() for p in net.parameters()) == FID_NUM_PARAMS


def test_weights_round_trip_through_a_file_strictly_frozen_and_in_eval_mode(net, images, features, tmp_path):
    path = tmp_path / FID_WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    loaded = load_fid_inception(str(path), "cpu")
    assert isinstance(loaded, FIDInceptionV3) and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in loaded.parameters())
    assert torch.equal(loaded(images), features)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_weights_load_from_an_fsspec_url_and_without_num_batches_tracked(net, images, features):
    # Files saved by older torch have no num_batches_tracked; it plays no part in eval.
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    url = f"memory://gandist-test-inception/{FID_WEIGHTS_FILE}"
    with fsspec.open(url, "wb") as f:
        torch.save(state, f)
    try:
        extractor = make_extractor("inception", url, torch.device("cpu"))
        assert isinstance(extractor, FIDInceptionV3)
        assert distance_tags(extractor) == ("eval/fid", "eval/kid")
        assert torch.equal(extractor(images), features)
    finally:
        fsspec.filesystem("memory").rm(url)


def test_a_missing_file_says_what_to_copy_and_which_key_to_set(tmp_path):
    with pytest.raises(FileNotFoundError, match="eval.inception_weights") as err:
        load_fid_inception(str(tmp_path / "nowhere.pth"))
    assert "pt_inception-2015-12-05-6726825d.pth" in str(err.value) and "nowhere.pth" in str(err.value)
    assert "does not download" in str(err.value)


def test_a_state_dict_with_a_missing_key_or_a_wrong_shape_is_refused_by_name(net, tmp_path):
    state = dict(net.state_dict())
    del state["Mixed_6b.branch7x7_2.conv.weight"]
    state["fc.bias"] = torch.zeros(1000)
    state["AuxLogits.fc.bias"] = torch.zeros(1008)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    with pytest.raises(ValueError, match="not the FID Inception state_dict") as err:
        load_fid_inception(str(path))
    message = str(err.value)
    assert "missing keys: Mixed_6b.branch7x7_2.conv.weight" in message
    assert "unexpected keys: AuxLogits.fc.bias" in message
    assert "fc.bias (1000,) (want (1008,))" in message
    assert "eval.inception_weights" in message


@pytest.mark.parametrize("content", [[1, 2, 3], {"fc.weight": 1.0}, b"not a torch file"])
def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path, content):
    path = tmp_path / "junk.pth"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ValueError, match="not the FID Inception state_dict"):
        load_fid_inception(str(path))
