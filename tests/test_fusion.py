import numpy as np
import pytest
import scipy.ndimage as ndi

from napari_focus_stack.focus import DepthTracker, block_mean, focus_measure, upsample_blocks
from napari_focus_stack.fusion import METHODS, make_fusion


def _two_focus_scene(backend):
    """Left half sharp in frame 0, right half sharp in frame 2; frame 1 all mid-blur."""
    rng = np.random.default_rng(0)
    sharp = rng.random((64, 96, 3)).astype(np.float32)
    blur = {s: ndi.gaussian_filter(sharp, (s, s, 0)) if s else sharp for s in (0, 1.5, 3)}
    left = np.zeros((64, 96), bool)
    left[:, :48] = True
    frames = []
    for left_blur, right_blur in ((0, 3), (1.5, 1.5), (3, 0)):
        f = np.where(left[..., None], blur[left_blur], blur[right_blur])
        frames.append(backend.asarray(f.astype(np.float32)))
    return sharp, left, frames


@pytest.mark.parametrize("method", list(METHODS))
def test_fusion_picks_the_sharp_frame_everywhere(backend, method):
    sharp, left, frames = _two_focus_scene(backend)
    fusion = make_fusion(method, backend, (64, 96), radius=2, smoothing=1)
    for i, f in enumerate(frames):
        fusion.merge(i, fusion.prepare(f.copy()))
    res = fusion.result()
    img = backend.to_numpy(res.image)
    depth = backend.to_numpy(res.depth)
    conf = backend.to_numpy(res.confidence)
    inner = np.s_[8:-8, 8:40], np.s_[8:-8, 56:-8]
    err_blur = np.abs(backend.to_numpy(frames[1]) - sharp)[8:-8, 8:-8].mean()
    err = np.abs(img - sharp)[8:-8, 8:-8].mean()
    assert err < 0.35 * err_blur
    assert np.median(depth[inner[0]]) == pytest.approx(0, abs=0.3)
    assert np.median(depth[inner[1]]) == pytest.approx(2, abs=0.3)
    assert conf.min() >= 0 and conf.max() <= 1 and np.median(conf[inner[0]]) > 0.3


def test_invalid_pixels_are_never_used(backend):
    sharp, left, frames = _two_focus_scene(backend)
    fusion = make_fusion("pyramid", backend, (64, 96), radius=2, smoothing=1)
    xp = backend.xp
    # frame 0 is the sharpest on the left but "uncovered" there: must not win
    valid0 = xp.asarray(~left)
    fusion.merge(0, fusion.prepare(frames[0].copy(), valid0))
    fusion.merge(1, fusion.prepare(frames[1].copy()))
    fusion.merge(2, fusion.prepare(frames[2].copy()))
    depth = backend.to_numpy(fusion.result().depth)
    assert (depth[8:-8, 8:40] > 0.5).all()


def test_unknown_method(backend):
    with pytest.raises(ValueError, match="pyramid"):
        make_fusion("wavelet", backend, (8, 8), 2, 1)


def test_depth_tracker_subframe_peak(backend):
    xp = backend.xp
    tracker = DepthTracker(backend, (2, 2))
    # Gaussian focus curve peaking at 1.3: log-parabolic interpolation is exact
    for i in range(4):
        tracker.update(i, xp.full((2, 2), np.exp(-((i - 1.3) ** 2)), dtype=xp.float32))
    depth, conf = tracker.result()
    np.testing.assert_allclose(backend.to_numpy(depth), 1.3, atol=1e-3)
    assert float(conf.min()) > 0.3


def test_depth_tracker_gap_disables_interpolation(backend):
    xp = backend.xp
    tracker = DepthTracker(backend, (1, 1))
    tracker.update(0, xp.full((1, 1), 1.0, xp.float32))
    tracker.update(2, xp.full((1, 1), 3.0, xp.float32))  # frame 1 excluded
    tracker.update(3, xp.full((1, 1), 2.0, xp.float32))
    depth, _ = tracker.result()
    assert 2.0 <= float(depth[0, 0]) <= 2.5


def test_block_helpers_and_measure(backend):
    xp = backend.xp
    a = xp.asarray(np.arange(30, dtype=np.float32).reshape(5, 6))
    m = backend.to_numpy(block_mean(xp, a, 2))
    assert m.shape == (3, 3) and m[0, 0] == pytest.approx((0 + 1 + 6 + 7) / 4)
    up = backend.to_numpy(upsample_blocks(xp, xp.asarray(m), 2, (5, 6)))
    assert up.shape == (5, 6) and up[1, 1] == m[0, 0]
    band = xp.zeros((20, 20), xp.float32)
    band[10, 10] = 1
    small = backend.to_numpy(focus_measure(backend, band, 2, 1)[0])
    large = backend.to_numpy(focus_measure(backend, band, 6, 1)[0])
    assert small.max() > large.max() > 0  # a wider window spreads the same energy


def test_confidence_is_low_where_nothing_is_in_focus(backend):
    xp = backend.xp
    rng = np.random.default_rng(4)
    sharp = rng.random((64, 96)).astype(np.float32)
    sharp[:, 48:] = 0.5 + 0.002 * rng.standard_normal((64, 48))  # featureless right half
    frames = [sharp, ndi.gaussian_filter(sharp, 1.5), ndi.gaussian_filter(sharp, 3)]
    fusion = make_fusion("pyramid", backend, (64, 96), radius=2, smoothing=1)
    for i, f in enumerate(frames):
        fusion.merge(i, fusion.prepare(xp.asarray(f.astype(np.float32))))
    conf = backend.to_numpy(fusion.result().confidence)
    assert np.median(conf[8:-8, 8:40]) > 3 * np.median(conf[8:-8, 56:-8])


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("shape", [(5, 5), (10, 400), (31, 31)])
def test_frames_too_small_for_a_deep_pyramid_still_fuse(backend, method, shape):
    rng = np.random.default_rng(2)
    sharp = rng.random(shape).astype(np.float32)
    frames = [ndi.gaussian_filter(sharp, 2), sharp, ndi.gaussian_filter(sharp, 1)]
    fusion = make_fusion(method, backend, shape, radius=2, smoothing=1)
    for i, f in enumerate(frames):
        fusion.merge(i, fusion.prepare(backend.asarray(f.copy())))  # prepare consumes its frame
    res = fusion.result()
    img = backend.to_numpy(res.image)
    assert img.shape == shape and np.isfinite(img).all()
    # the sharp frame wins: the result is closer to it than the blurred frames are
    assert np.abs(img - sharp).mean() < 0.5 * np.abs(frames[2] - sharp).mean()
