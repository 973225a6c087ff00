"""A checkpoint resumes only into a config whose networks have its shapes and whose data streams
count in the same labeled samples; the message names what differs."""

import pytest

from gandist.ckpt import CheckpointError
from gandist.config import compose_config
from gandist.train.checkpoints import check_checkpoint_fits

CLASSES = ["background", "circle", "square", "triangle"]


def payload(cfg) -> dict:
    return {"config": cfg.to_dict(), "classes": CLASSES}


def test_a_checkpoint_from_before_the_d_input_keys_resumes_with_their_defaults():
    cfg = compose_config(["task=segment"])
    old = cfg.to_dict()
    for key in ("d_input", "d_image", "seg_loss", "seg_weight", "adv_weight", "scaling_tau", "semi"):
        del old["task"][key]
    old["task"]["l1_weight"] = 100.0
    del old["model"]["d_arch"]
    del old["data"]["label_fraction"]
    check_checkpoint_fits(cfg, {"config": old, "classes": CLASSES}, CLASSES)  # no error


def test_a_different_d_input_is_named():
    saved = compose_config(["task=segment", "task.d_input=product"])
    with pytest.raises(CheckpointError, match=r"task\.d_input: checkpoint 'product', config 'softmax'"):
        check_checkpoint_fits(compose_config(["task=segment"]), payload(saved), CLASSES)


def test_another_label_fraction_is_named():
    saved = compose_config(["task=segment", "data.label_fraction=0.125", "task.semi=adversarial", "model.d_arch=pixel"])
    with pytest.raises(CheckpointError, match=r"data\.label_fraction: checkpoint 0\.125, config 0\.25"):
        check_checkpoint_fits(compose_config(["task=segment", "data.label_fraction=0.25", "task.semi=adversarial",
                                              "model.d_arch=pixel"]),
                              payload(saved), CLASSES)
