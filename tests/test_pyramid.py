import numpy as np
import pytest

from napari_focus_stack import pyramid


@pytest.mark.parametrize("shape", [(64, 80), (63, 81), (50, 37, 3)])
def test_laplacian_round_trip_is_exact(backend, shape):
    xp = backend.xp
    a = xp.asarray(np.random.default_rng(1).random(shape).astype(np.float32))
    levels = pyramid.n_levels(shape, min_size=4)
    lap = pyramid.laplacian_pyramid(backend, a, levels)
    assert len(lap) == levels and lap[-1].shape[0] <= 8
    kept = [backend.to_numpy(b).copy() for b in lap]
    back = pyramid.collapse(backend, lap)
    np.testing.assert_allclose(backend.to_numpy(back), backend.to_numpy(a), atol=1e-5)
    for b, k in zip(lap, kept, strict=True):  # the bands are left as they were
        np.testing.assert_array_equal(backend.to_numpy(b), k)
    again = pyramid.collapse(backend, lap, overwrite=True)  # the same, built in the bands' buffers
    np.testing.assert_array_equal(backend.to_numpy(again), backend.to_numpy(back))


def test_reduce_keeps_constant_and_grid(backend):
    xp = backend.xp
    a = xp.full((33, 40), 0.7, dtype=xp.float32)
    r = pyramid.reduce(backend, a)
    assert r.shape == (17, 20)
    np.testing.assert_allclose(backend.to_numpy(r), 0.7, atol=1e-6)
    # level-1 pixel j sits on level-0 pixel 2j: a ramp stays a ramp of half slope
    ramp = xp.asarray(np.tile(np.arange(40, dtype=np.float32), (33, 1)))
    r = backend.to_numpy(pyramid.reduce(backend, ramp))
    np.testing.assert_allclose(r[5, 2:-2], 2 * np.arange(20)[2:-2], atol=1e-4)


def test_expand_interpolates_linear_ramp(backend):
    xp = backend.xp
    small = xp.asarray(np.tile(np.arange(10, dtype=np.float32) * 2, (6, 1)))
    big = backend.to_numpy(pyramid.expand(backend, small, (12, 20)))
    np.testing.assert_allclose(big[3, 2:18], np.arange(20, dtype=np.float32)[2:18], atol=1e-5)


def test_n_levels():
    assert pyramid.n_levels((16, 16), min_size=16) == 1
    assert pyramid.n_levels((1536, 2048), min_size=16) == 7


@pytest.mark.parametrize("shape", [(40, 50), (33, 47, 3), (6, 300)])
def test_fill_holes_keeps_known_pixels_and_fills_smoothly(backend, shape):
    xp = backend.xp
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    ramp = 0.01 * xx + 0.02 * yy  # a smooth image: the fill should continue it
    image = np.repeat(ramp[..., None], shape[2], axis=2) if len(shape) == 3 else ramp
    holes = np.zeros(shape[:2], bool)
    holes[2:5, 10:14] = True
    holes[-1, -1] = True
    given = image.copy()
    given[holes] = np.nan
    filled = backend.to_numpy(pyramid.fill_holes(backend, xp.asarray(given), xp.asarray(holes)))
    assert np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[~holes], image[~holes])
    np.testing.assert_allclose(filled[holes], image[holes], atol=0.1)


def test_fill_holes_with_nothing_known(backend):
    xp = backend.xp
    filled = pyramid.fill_holes(backend, xp.full((8, 9), np.nan, xp.float32), xp.ones((8, 9), bool))
    assert backend.to_numpy(filled).tolist() == np.zeros((8, 9)).tolist()


@pytest.mark.parametrize("shape", [(37, 51), (64, 64), (5, 7), (101, 33)])
def test_coverage_pyramid_is_the_all_covered_support(shape):
    import scipy.ndimage as ndi

    from napari_focus_stack._backend import block_all, block_mean, get_backend

    rng = np.random.default_rng(sum(shape))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    masks = [rng.random(shape) > 0.03, (yy > 2) & (xx < shape[1] - 3) & (yy + 0.4 * xx < shape[0] + 10)]
    for valid in masks:
        got = pyramid.coverage_pyramid(np, valid, 4)
        want = [valid]
        for _ in range(3):  # every pixel under the 5 x 5 support of the previous level
            want.append(ndi.minimum_filter(want[-1], size=5, mode="nearest")[::2, ::2])
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        # the first step is exactly where the float pyramid of the mask is 1
        level1 = pyramid.gaussian_pyramid(get_backend("cpu"), valid.astype(np.float32), 2)[1]
        np.testing.assert_array_equal(got[1], level1 > 0.999)
        np.testing.assert_array_equal(block_all(np, valid, 2), block_mean(np, valid.astype(np.float32), 2) == 1)
