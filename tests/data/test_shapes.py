import numpy as np
import pytest

from gandist.data.shapes import CLASSES, dominant_shape, render_shapes


def test_deterministic_per_seed_and_index():
    a_img, a_mask = render_shapes(3, seed=7, size=32)
    b_img, b_mask = render_shapes(3, seed=7, size=32)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    c_img, _ = render_shapes(4, seed=7, size=32)
    d_img, _ = render_shapes(3, seed=8, size=32)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_img, d_img)


@pytest.mark.parametrize("size", [32, 48, 64])
def test_any_resolution_and_all_classes_appear(size):
    masks = [render_shapes(i, seed=0, size=size)[1] for i in range(40)]
    image, _ = render_shapes(0, seed=0, size=size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    assert masks[0].shape == (size, size)
    present = set(np.unique(np.stack(masks)).tolist())
    assert present == set(range(len(CLASSES)))
    foreground = np.mean([(m > 0).mean() for m in masks])
    assert 0.1 < foreground < 0.6


def test_mask_marks_the_shapes_in_the_image():
    # Shapes are flat colours with faint noise, the background is waves with stronger noise:
    # neighbouring pixels inside one mask class differ less than neighbouring background
    # pixels. A mask that is shifted or wrong mixes the two and loses that.
    inside, outside = [], []
    for index in range(10):
        image, mask = render_shapes(index, seed=1, size=64)
        diff = np.abs(np.diff(image.astype(float), axis=1)).mean(axis=2)
        same = mask[:, 1:] == mask[:, :-1]
        inside.append(diff[same & (mask[:, 1:] > 0)].mean())
        outside.append(diff[same & (mask[:, 1:] == 0)].mean())
    assert np.mean(inside) < 0.8 * np.mean(outside)


def test_the_label_is_the_shape_class_with_the_most_visible_pixels():
    mask = np.zeros((8, 8), np.uint8)
    mask[:2] = 1  # 16 circle pixels
    mask[4:, :5] = 3  # 20 triangle pixels
    assert dominant_shape(mask) == 2  # triangle (labels leave the background out)
    mask[2:4] = 2  # 16 square pixels: a tie with the circle goes to the lower id when it leads
    mask[4:, :5] = 0
    assert dominant_shape(mask) == 0
    labels = [dominant_shape(render_shapes(i, seed=0, size=32)[1]) for i in range(60)]
    assert set(labels) == {0, 1, 2}  # every class is some image's label
