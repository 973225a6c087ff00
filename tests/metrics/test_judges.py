import math

import pytest
import torch

from gandist.metrics.judges import judge_path, load_or_train, mode_scores, save_judge, saved_accuracy


def test_mode_coverage_and_kl_match_a_hand_count():
    real = torch.tensor([1, 1, 2, 3])
    fake = torch.tensor([1, 1, 1, 0])  # one mode of the three, and an image with nothing recognisable
    scores = mode_scores(real, fake, 29)
    assert scores["eval/modes"] == 1 and scores["eval/modes_real"] == 3  # "nothing" is no real mode
    q = (torch.bincount(fake, minlength=29).double() + 1e-3)
    q = q / q.sum()
    want = 0.5 * math.log(0.5 / q[1]) + 0.25 * math.log(0.25 / q[2]) + 0.25 * math.log(0.25 / q[3])
    assert scores["eval/mode_kl"] == pytest.approx(float(want))
    assert mode_scores(real, real, 29)["eval/mode_kl"] == pytest.approx(0.0, abs=1e-2)  # only the smoothing


def test_a_real_image_the_judge_cannot_read_adds_no_mode_to_reach():
    real = torch.tensor([0, 1, 2])  # the judge could not read one real image
    scores = mode_scores(real, torch.tensor([0, 0, 1]), 11)
    assert scores["eval/modes_real"] == 2 and scores["eval/modes"] == 1


def test_a_saved_judge_keeps_its_accuracy_beside_its_weights(tmp_path):
    path = judge_path("tiny", 3, str(tmp_path))
    assert path.startswith(str(tmp_path)) and "tiny-v3-torch" in path
    save_judge(torch.nn.Linear(2, 1), {"accuracy": 0.5}, path)
    assert saved_accuracy(path) == {"accuracy": 0.5}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_judge_first_asked_for_inside_an_evaluation_still_trains_and_is_cached(tmp_path):
    """Evaluations run under no_grad; the judge's training needs gradients all the same."""
    def train():
        judge = torch.nn.Linear(2, 1)
        loss = judge(torch.ones(4, 2)).square().mean()
        loss.backward()  # raised "does not require grad" under the caller's no_grad
        return judge.requires_grad_(False).eval(), {"accuracy": 1.0}

    path = judge_path("tiny", 1, str(tmp_path))
    with torch.no_grad():
        judge = load_or_train(torch.nn.Linear(2, 1), path, train, "tiny", torch.device("cpu"))
    assert not judge.training and saved_accuracy(path) == {"accuracy": 1.0}
