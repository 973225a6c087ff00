"""Which G an evaluation scores: EMA G with BatchNorm statistics refitted to its own weights,
pix2pix's train-mode test of the live G, and the live G beside EMA G (eval.live)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gandist.config import compose_config
from gandist.data.manifest import Manifest
from gandist.inference.evaluator import Evaluator
from gandist.inference.g_modes import OneByOne, recompute_bn_stats
from gandist.models.factory import build_networks


def test_recompute_bn_stats_averages_batch_statistics_with_dropout_off():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Dropout(0.5), nn.Conv2d(2, 3, 1, bias=False), nn.BatchNorm2d(3))
    net[2].running_mean.fill_(7.0)  # stale statistics, e.g. the live G's
    batches = [torch.randn(4, 2, 5, 5) + i for i in range(3)]
    assert recompute_bn_stats(net, iter(batches)) == 3
    feats = [net[1](x) for x in batches]  # dropout off: the conv's output as evaluation sees it
    want_mean = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats]).mean(0)
    want_var = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in feats]).mean(0)
    bn = net[2]
    assert torch.allclose(bn.running_mean, want_mean, atol=1e-5) and torch.allclose(bn.running_var, want_var, atol=1e-4)
    assert not net.training and bn.momentum == 0.1  # left in eval mode, its momentum back
    before = copy.deepcopy(bn.state_dict())
    assert recompute_bn_stats(net, iter([])) == 0  # nothing seen: nothing changed
    assert all(torch.equal(before[k], v) for k, v in bn.state_dict().items())


def segment_setup(shapes_url, *overrides):
    cfg = compose_config(["task=segment_pix2pix", f"data.url={shapes_url}", "model.resolution=32", "model.g_width=4",
                          "model.d_width=4", "data.batch_size=8", "eval.batches=2", *overrides])
    manifest = Manifest.load(shapes_url)
    classes = list(manifest.classes)
    torch.manual_seed(0)
    G, _ = build_networks(cfg, len(classes))
    for m in G.modules():  # statistics that fit no weights: what a stale copy looks like
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 3.0)
    evaluator = Evaluator(cfg, manifest, 0, 1, torch.device("cpu"), classes)
    return cfg, G, evaluator


def test_ema_mode_refits_ema_g_statistics_on_training_batches(shapes_url):
    cfg, G, evaluator = segment_setup(shapes_url, "eval.g_mode=ema", "eval.bn_batches=2")
    G_ema = copy.deepcopy(G).eval()
    stale = [m.running_mean.clone() for m in G_ema.modules() if isinstance(m, nn.BatchNorm2d)]
    scores = evaluator(G_ema)
    refit = [m.running_mean for m in G_ema.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not any(torch.allclose(a, b) for a, b in zip(stale, refit))
    # The same again: the same training batches on every call (and every rank, and `gandist evaluate`).
    again = evaluator(G_ema)
    assert again["eval/miou"] == scores["eval/miou"]
    kept = copy.deepcopy(G).eval()
    Evaluator(compose_config(["task=segment_pix2pix", f"data.url={shapes_url}", "model.resolution=32",
                              "model.g_width=4", "model.d_width=4", "eval.g_mode=ema", "eval.bn_batches=0"]),
              evaluator.manifest, 0, 1, torch.device("cpu"), evaluator.classes)(kept)
    assert all(torch.equal(a, m.running_mean) for a, m in
               zip(stale, [m for m in kept.modules() if isinstance(m, nn.BatchNorm2d)]))  # 0: left alone


def test_train_mode_scores_the_live_g_image_by_image_and_touches_nothing(shapes_url):
    """pix2pix's test: G in train mode at batch size 1, dropout on; run on a copy with its own
    seeded RNG, so the live G's buffers and the training RNG stream stay as they were."""
    cfg, G, evaluator = segment_setup(shapes_url)
    assert cfg.eval.g_mode == "train_mode"  # the segment_pix2pix preset's, as pix2pix's
    G.train()
    buffers = {k: v.clone() for k, v in G.state_dict().items()}
    rng = torch.get_rng_state()
    first = evaluator(copy.deepcopy(G).eval(), G)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(buffers[k], v) for k, v in G.state_dict().items()) and G.training
    assert evaluator(copy.deepcopy(G).eval(), G)["eval/miou"] == first["eval/miou"]  # seeded dropout

    # By hand: each image alone through a train-mode copy gives its own batch statistics, and
    # the prediction of an image does not depend on what shares its loader batch.
    x = torch.randn(3, 3, 32, 32)
    net = OneByOne(copy.deepcopy(G).train())
    with torch.no_grad():
        torch.manual_seed(0)
        together = net(x)
        torch.manual_seed(0)
        alone = net(x[:1])
    assert torch.allclose(together[:1], alone, atol=1e-6)
    with pytest.raises(Exception, match="live G"):
        evaluator(copy.deepcopy(G).eval())


def test_live_g_is_scored_beside_ema_g_under_its_own_tags(shapes_url):
    cfg, G, evaluator = segment_setup(shapes_url, "eval.g_mode=ema", "eval.live=true", "eval.bn_batches=1")
    G.train()
    scores = evaluator(copy.deepcopy(G).eval(), G)
    assert {"eval/miou", "eval/live/miou", "eval/live/pixel_accuracy"} <= set(scores)
    assert G.training  # back in train mode for the next step


def test_pix2pix_presets_test_in_train_mode_and_generation_cannot():
    from gandist.config import ConfigError

    for preset in ("task=translate", "task=segment_pix2pix"):
        assert compose_config([preset]).eval.g_mode == "train_mode"
    assert compose_config(["task=segment"]).eval.g_mode == "ema"
    with pytest.raises(ConfigError, match="set eval.g_mode=ema"):
        compose_config(["task=generate", "eval.g_mode=train_mode"])
