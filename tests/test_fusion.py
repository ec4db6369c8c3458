import numpy as np
import pytest
import scipy.ndimage as ndi

from napari_focus_stack import pyramid
from napari_focus_stack._backend import get_backend
from napari_focus_stack.focus import DepthTracker, block_mean, focus_measure, upsample_blocks
from napari_focus_stack.fusion import MAX_LEVELS, METHODS, make_fusion
from napari_focus_stack.fusion_decision import WeightedLevels
from napari_focus_stack.synthetic import make_stack


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


# -- decisions: soft selection, noise averaging, occlusion order ---------------------------------

STILL = {"breathing": 0.0, "max_rotation_deg": 0.0, "max_shift": 0.0, "gain_range": 0.0}


def _fuse(backend, frames, method="pyramid", prefer="auto", noise_average=True):
    """Fuse integer frames that share one geometry; float image 0..1 on the host."""
    peak = float(np.iinfo(frames[0].dtype).max)
    extra = {"noise_average": noise_average} if method == "pyramid" else {}
    fusion = METHODS[method](backend, frames[0].shape[:2], 8, 4, prefer=prefer, **extra)
    for i, f in enumerate(frames):
        fusion.merge(i, fusion.prepare(backend.asarray(f.astype(np.float32) / np.float32(peak))))
    return backend.to_numpy(fusion.result().image)


def _max_selection(frames, radius=8, smoothing=4):
    """The former pyramid decision, for comparison: per level the largest band energy wins (wide windows)."""
    bk = get_backend("cpu")
    peak = float(np.iinfo(frames[0].dtype).max)
    levels = pyramid.n_levels(frames[0].shape, 16, MAX_LEVELS)
    best = best_act = base = None
    for f in frames:
        lap = pyramid.laplacian_pyramid(bk, f.astype(np.float32) / np.float32(peak), levels)
        acts = [upsample_blocks(np, focus_measure(bk, lap[0], radius, smoothing)[0], 2, lap[0].shape[:2])]
        acts += [focus_measure(bk, lap[k], radius / 2**k, smoothing / 2**k, downsample=1)[0]
                 for k in range(1, levels - 1)]
        if best is None:
            best, best_act, base = [b.copy() for b in lap[:-1]], acts, lap[-1].copy()
            continue
        for k in range(levels - 1):
            win = acts[k] > best_act[k]
            best[k][win] = lap[k][win]
            best_act[k] = np.maximum(best_act[k], acts[k])
        base += lap[-1]
    return pyramid.collapse(bk, best + [base / len(frames)])


def _psnr_in(image, truth, mask):
    err = (image.astype(np.float64) - truth.astype(np.float64) / float(np.iinfo(truth.dtype).max)) ** 2
    err = err.mean(axis=-1) if err.ndim == 3 else err
    return -10 * np.log10(err[mask].mean())


def _inner(mask, border=8):
    out = mask.copy()
    out[:border] = out[-border:] = False
    out[:, :border] = out[:, -border:] = False
    return out


def test_noise_averaging_lowers_flat_area_error(backend):
    # shot noise on 8 frames: in untextured areas the mean of the frames beats any selection
    stack = make_stack("camera", shape=(128, 160), n_frames=8, seed=2, photons=400.0, noise=0.002, **STILL)
    flat = _inner(~stack.texture_mask)
    averaged = _psnr_in(_fuse(backend, stack.frames), stack.truth, flat)
    selected = _psnr_in(_fuse(backend, stack.frames, noise_average=False), stack.truth, flat)
    old = _psnr_in(_max_selection(stack.frames), stack.truth, flat)
    best_frame = max(_psnr_in(f.astype(np.float32) / 255, stack.truth, flat) for f in stack.frames)
    assert averaged > selected + 2.5  # measured: +5.0 dB
    assert averaged > old + 3.0  # measured: +7 dB
    assert averaged > best_frame + 3.0  # measured: +7 dB; 8 frames can give 9 dB


def test_noise_averaging_keeps_what_one_frame_resolves(backend):
    # wide focus steps: each detail is sharp in one frame only, like noise to a coherence test
    stack = make_stack("chelsea", shape=(128, 160), n_frames=6, seed=4, max_blur=18.0, noise=0.0, **STILL)
    inner = _inner(np.ones(stack.truth.shape[:2], bool))
    averaged = _psnr_in(_fuse(backend, stack.frames), stack.truth, inner)
    selected = _psnr_in(_fuse(backend, stack.frames, noise_average=False), stack.truth, inner)
    assert averaged > selected - 0.3


def _step_band(stack, width=9):
    di = stack.depth_index
    step = np.zeros(di.shape, bool)
    dy, dx = np.abs(np.diff(di, axis=0)) > 1, np.abs(np.diff(di, axis=1)) > 1
    step[1:] |= dy
    step[:-1] |= dy
    step[:, 1:] |= dx
    step[:, :-1] |= dx
    return _inner(ndi.binary_dilation(step, np.ones((width, width), bool)))


@pytest.mark.parametrize("seed", [1, 2])
def test_halo_band_improves_on_the_former_decision(backend, seed):
    # hairs far in front of a textured background: the 9 px band around the depth steps
    stack = make_stack("rocks", shape=(128, 160), n_frames=6, seed=seed, occluders="hairs", **STILL)
    band = _step_band(stack)
    new = _psnr_in(_fuse(backend, stack.frames), stack.truth, band)
    old = _psnr_in(_max_selection(stack.frames), stack.truth, band)
    assert new > old + 1.0  # measured: +2.2 dB for both seeds


@pytest.mark.parametrize("method", list(METHODS))
def test_prefer_picks_the_near_or_far_frame_at_an_occlusion_edge(backend, method):
    # frame 0 is focused on the hairs; around them the background frames show the hairs' veil
    stack = make_stack("rocks", shape=(128, 160), n_frames=6, seed=1, occluders="hairs", **STILL)
    di = stack.depth_index
    hair = di < 0.5
    veil = ndi.binary_dilation(hair, iterations=5) & ~ndi.binary_dilation(hair, iterations=1) & (di > 3)
    frames = np.stack([f.astype(np.float32) / 255 for f in stack.frames])
    near = frames[0]
    far = np.take_along_axis(frames, np.clip(np.rint(di), 0, 5).astype(int)[None, ..., None], 0)[0]
    out = {p: _fuse(backend, stack.frames, method, prefer=p) for p in ("near", "auto", "far")}

    def dist(a, b):
        return float(np.abs(a - b).mean(axis=-1)[veil].mean())

    assert dist(out["near"], near) < 0.95 * dist(out["auto"], near) < 0.95 * 0.95 * dist(out["far"], near)
    assert dist(out["far"], far) < 0.9 * dist(out["auto"], far) < 0.9 * 0.9 * dist(out["near"], far)


def test_weighted_levels_handles_any_weight_range(backend):
    xp = backend.xp
    rng = np.random.default_rng(0)
    bands = [rng.random((4, 5, 3)).astype(np.float32) for _ in range(3)]
    logs = [np.full((4, 5), v, np.float32) for v in (-900.0, -880.0, -885.0)]  # exp() underflows float32
    levels = WeightedLevels(backend)
    for b, lw in zip(bands, logs, strict=True):
        levels.add([xp.asarray(b.copy())], [xp.asarray(lw)])
    w = np.exp(np.array([-20.0, 0.0, -5.0]))
    expected = sum(wi * b for wi, b in zip(w, bands, strict=True)) / w.sum()
    np.testing.assert_allclose(backend.to_numpy(levels.bands()[0]), expected, rtol=1e-5)


def test_unknown_prefer(backend):
    with pytest.raises(ValueError, match="prefer"):
        make_fusion("pyramid", backend, (32, 32), 2, 1, prefer="front")


@pytest.mark.parametrize("smoothing", [1.0, 4.0])  # 1: the finest energy is not smoothed at all
def test_log_weights_in_place_leave_the_callers_arrays_alone(smoothing):
    from napari_focus_stack import pyramid
    from napari_focus_stack._backend import get_backend
    from napari_focus_stack.fusion_decision import level_log_weights

    bk = get_backend("cpu")
    rng = np.random.default_rng(5)
    lap = pyramid.laplacian_pyramid(bk, rng.random((64, 80, 3)).astype(np.float32), 4)
    energy0 = bk.block_energy(lap[0], 2)
    kept = energy0.copy()
    masks = [None] * 3
    want, energies = level_log_weights(bk, lap[:-1], masks, smoothing, energy0_half=energy0)
    got, none = level_log_weights(bk, lap[:-1], masks, smoothing, energy0_half=energy0, keep_energies=False)
    assert none is None and len(energies) == 3
    np.testing.assert_array_equal(energy0, kept)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-3)


def test_quantile_is_numpys_percentile():
    from napari_focus_stack.focus import quantile

    rng = np.random.default_rng(2)
    for n in (1, 2, 3, 10, 1001):
        v = rng.random(n).astype(np.float32)
        for q in (0, 10, 33.3, 50, 99.5, 100):
            assert quantile(np, v.copy(), q) == pytest.approx(float(np.percentile(v, q)), rel=1e-6)
    assert np.isnan(quantile(np, np.array([1.0, np.nan]), 50))
