import numpy as np
import pytest
import scipy.ndimage as ndi

from napari_focus_stack.align import (
    corner_error,
    describe_transform,
    estimate_transform,
    valid_region,
    warp_image,
)


def _similarity(scale, deg, tx, ty, shape):
    h, w = shape
    c = np.array([[1, 0, (w - 1) / 2], [0, 1, (h - 1) / 2], [0, 0, 1.0]])
    th = np.deg2rad(deg)
    co, si = scale * np.cos(th), scale * np.sin(th)
    r = np.array([[co, -si, tx], [si, co, ty], [0, 0, 1]])
    return c @ r @ np.linalg.inv(c)


@pytest.fixture(scope="module")
def texture():
    rng = np.random.default_rng(7)
    a = ndi.gaussian_filter(rng.random((240, 320)), 1.5)
    return ((a - a.min()) / (a.max() - a.min())).astype(np.float32)


@pytest.mark.parametrize("model", ["similarity", "affine"])
def test_recovers_similarity_with_exposure_change(backend, texture, model):
    true = _similarity(1.015, 0.4, 3.2, -2.7, texture.shape)
    moving = warp_image(backend, backend.asarray(texture), np.linalg.inv(true), texture.shape, order=3)
    moving = moving * 1.25 + 0.08  # exposure drift must not bias it
    reg = estimate_transform(backend.asarray(texture), moving, model, backend=backend)
    assert reg.converged
    assert reg.quality > 0.99
    assert corner_error(reg.matrix, true, texture.shape) < 0.05


def test_translation_model_and_describe(backend, texture):
    true = np.array([[1, 0, -4.25], [0, 1, 1.5], [0, 0, 1.0]])
    moving = warp_image(backend, backend.asarray(texture), np.linalg.inv(true), texture.shape, order=3)
    reg = estimate_transform(backend.asarray(texture), moving, "translation", backend=backend)
    assert corner_error(reg.matrix, true, texture.shape) < 0.03
    d = describe_transform(reg.matrix, texture.shape)
    assert d["scale"] == pytest.approx(1.0) and d["rotation_deg"] == pytest.approx(0.0)
    assert d["shift_x"] == pytest.approx(-4.25, abs=0.03) and d["shift_y"] == pytest.approx(1.5, abs=0.03)


def test_none_model_is_identity_but_scored(backend, texture):
    reg = estimate_transform(backend.asarray(texture), backend.asarray(texture), "none", backend=backend)
    np.testing.assert_array_equal(reg.matrix, np.eye(3))
    assert reg.quality > 0.999


def test_unrelated_images_score_low(backend, texture):
    noise = np.random.default_rng(1).random(texture.shape).astype(np.float32)
    reg = estimate_transform(backend.asarray(texture), backend.asarray(noise), backend=backend)
    assert reg.quality < 0.3


def test_unknown_model_rejected(backend, texture):
    with pytest.raises(ValueError, match="similarity"):
        estimate_transform(texture, texture, "perspective", backend=backend)


def test_valid_region_marks_uncovered_pixels(backend):
    m = np.array([[1, 0, 5.0], [0, 1, 0], [0, 0, 1]])  # samples 5 px to the right; 0.5 px of edge counts
    ok = backend.to_numpy(valid_region(backend.xp, m, (10, 20), (10, 20)))
    assert ok[:, :15].all() and not ok[:, 15:].any()


def test_to_gray(backend):
    xp = backend.xp
    rgb = xp.ones((4, 5, 3), dtype=xp.float32) * xp.asarray(np.array([1.0, 0.0, 0.0], np.float32))
    assert float(backend.to_gray(rgb)[0, 0]) == pytest.approx(0.299)


def test_stopping_at_a_coarser_level_stays_subpixel(backend, texture):
    true = _similarity(0.99, -0.3, 1.7, 2.2, texture.shape)
    moving = warp_image(backend, backend.asarray(texture), np.linalg.inv(true), texture.shape, order=3)
    reg = estimate_transform(backend.asarray(texture), moving, backend=backend, finest_level=1)
    assert corner_error(reg.matrix, true, texture.shape) < 0.1


@pytest.mark.parametrize("where", ["template", "moving", "both"])
def test_missing_pixels_are_left_out_of_the_fit(backend, texture, where):
    true = _similarity(1.01, 0.3, 2.6, -1.9, texture.shape)
    warped = warp_image(backend, backend.asarray(texture), np.linalg.inv(true), texture.shape, order=3)
    moving = backend.to_numpy(warped)
    template = texture.copy()
    holes = np.zeros(texture.shape, bool)
    holes[50:90, 100:140] = True  # a blob
    holes[::9, ::11] = True  # and scattered pixels everywhere
    for name, image in (("template", template), ("moving", moving)):
        if where in (name, "both"):
            image[holes] = np.nan
    reg = estimate_transform(backend.asarray(template), backend.asarray(moving), backend=backend)
    assert np.isfinite(reg.matrix).all() and reg.quality > 0.99
    assert corner_error(reg.matrix, true, texture.shape) < 0.05


def test_blank_frames_are_those_of_one_value():
    from napari_focus_stack.align import blank_value, largest_group

    assert blank_value(np.zeros((40, 50, 3), np.uint8)) == 0.0
    red = np.zeros((40, 50, 3), np.uint8)
    red[..., 0] = 210
    assert blank_value(red) == 70.0  # one colour: no structure either
    nan = np.full((40, 50), np.nan, np.float32)
    assert np.isnan(blank_value(nan))
    nan[3, 4] = 0.25  # one finite value among missing data
    assert blank_value(nan) == 0.25
    dead = np.zeros((400, 500), np.uint16)
    dead[123, 321] = 9  # one pixel the sample does not see: read whole, not blank
    assert blank_value(dead) is None
    assert blank_value(np.random.default_rng(0).random((40, 50))) is None
    # a run of bad frames splits the stack; the largest group is found beyond it
    bad = {3, 4, 5}
    assert largest_group(range(12), lambda a, b: not ({a, b} & bad)) == [6, 7, 8, 9, 10, 11]
    assert largest_group([], lambda a, b: True) == []
