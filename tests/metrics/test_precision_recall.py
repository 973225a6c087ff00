import pytest
import torch

from gandist.metrics.precision_recall import coverage, knn_radii, precision_recall


def test_knn_radius_is_the_distance_to_the_kth_other_point():
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]], dtype=torch.float64)
    # from 0: others at 1, 3, 6, 10 -> 3rd nearest 6; from 3: 2, 3, 3, 7 -> 3
    assert knn_radii(x, k=3).tolist() == [6.0, 5.0, 3.0, 5.0, 9.0]
    with pytest.raises(ValueError, match="more than k=3"):
        knn_radii(x[:3], k=3)


def test_coverage_counts_queries_inside_any_ball():
    support = torch.tensor([[0.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    radii = torch.tensor([1.0, 2.0], dtype=torch.float64)
    queries = torch.tensor([[0.5, 0.5], [11.5, 0.0], [5.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert coverage(queries, support, radii).item() == pytest.approx(3 / 4)  # all but the midpoint


def test_precision_and_recall_tell_a_collapsed_generator_from_a_good_one():
    torch.manual_seed(0)
    real = torch.randn(400, 8)
    good = torch.randn(400, 8)
    p, r = precision_recall(real, good)
    assert p > 0.8 and r > 0.8
    collapsed = torch.randn(400, 8) * 0.05  # every sample near one mode: realistic, no coverage
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and r < 0.2
    off = torch.randn(400, 8) + 6.0  # nothing like the data
    p, r = precision_recall(real, off)
    assert p < 0.05 and r < 0.05


def test_feature_sizes_must_match():
    with pytest.raises(ValueError, match="feature sizes differ"):
        precision_recall(torch.randn(10, 3), torch.randn(10, 4))
