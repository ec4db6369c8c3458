import re

import numpy as np
import pytest

from helpers import detail_transfer, psnr
from napari_focus_stack import FocusStacker, StackError
from napari_focus_stack.align import corner_error
from napari_focus_stack.errors import InputError, ParameterError
from napari_focus_stack.stacker import Cancelled


def _fast(**kw):
    kw.setdefault("scale_factor", 1)
    kw.setdefault("device", "cpu")
    return FocusStacker(**kw)


def test_defaults_and_ranges():
    s = FocusStacker()
    assert (s.radius, s.smoothing, s.scale_factor, s.method, s.align) == (8, 4, 1, "pyramid", "similarity")
    for name, bad in (("radius", 0), ("radius", 21), ("smoothing", 0.5), ("smoothing", 11), ("scale_factor", 5)):
        with pytest.raises(ValueError, match=rf"{name} must be between"):
            FocusStacker(**{name: bad})
    with pytest.raises(ValueError, match="method"):
        FocusStacker(method="laplace")
    with pytest.raises(ValueError, match="align"):
        FocusStacker(align="homography")
    with pytest.raises(ValueError, match="prefer"):
        FocusStacker(prefer="front")


def test_stack_quality_on_synthetic(small_stack):
    res = _fast().stack(small_stack.frames)
    assert res.image.dtype == np.uint8 and res.image.shape == small_stack.truth.shape
    mid = small_stack.frames[small_stack.reference]
    assert psnr(res.image, small_stack.truth) > psnr(mid, small_stack.truth) + 3
    errs = [corner_error(a, b, mid.shape[:2]) for a, b in zip(res.transforms, small_stack.transforms, strict=False)]
    assert max(errs) < 0.25
    ok = np.abs(res.depth - small_stack.depth_index) <= 1
    assert ok[small_stack.texture_mask].mean() > 0.8
    assert res.depth.shape == res.confidence.shape == mid.shape[:2]
    assert res.report.excluded == [] and len(res.report.frames) == len(small_stack.frames)


def test_fused_image_keeps_fine_detail():
    # frames that move are resampled bicubically: bilinear kept 0.89 and 0.81
    # of the truth's structure at 3.3-6 and 2-3.3 px periods on this stack
    from napari_focus_stack.synthetic import make_stack

    stack = make_stack("fine", shape=(192, 256), n_frames=6, seed=2)
    kept = detail_transfer(_fast().stack(stack.frames).image, stack.truth)
    assert kept["3.3-6 px"] > 0.93 and kept["2-3.3 px"] > 0.84


def test_process_stack_returns_image(small_stack):
    img = _fast(method="depthmap").process_stack(np.stack(small_stack.frames))
    assert img.shape == small_stack.truth.shape and img.dtype == np.uint8
    assert psnr(img, small_stack.truth) > 25


@pytest.mark.parametrize(
    "param, a, b, extra",
    # the pyramid's radius sets the depth map, and the occlusion neighbourhood when an order is preferred
    [("radius", 2, 12, {"prefer": "near"}), ("smoothing", 1, 8, {}), ("scale_factor", 1, 2, {}),
     ("prefer", "near", "far", {})],
)
def test_each_parameter_changes_the_result(small_stack, param, a, b, extra):
    frames = small_stack.frames
    ra = _fast(**{param: a}, **extra).stack(frames)
    rb = _fast(**{param: b}, **extra).stack(frames)
    diff = np.abs(ra.image.astype(int) - rb.image.astype(int))
    assert diff.mean() > 0.05, f"{param} does not change the fused image"
    assert not np.allclose(ra.depth, rb.depth, atol=1e-3) or param in ("scale_factor", "prefer")


def test_upscale_output(small_stack):
    res = _fast(scale_factor=2, upscale_output=True).stack(small_stack.frames[:3])
    h, w = small_stack.truth.shape[:2]
    assert res.image.shape[:2] == (2 * h, 2 * w) and res.depth.shape == (2 * h, 2 * w)


def test_gray_and_16bit():
    from napari_focus_stack.synthetic import make_stack

    st = make_stack("coins", shape=(96, 128), n_frames=4, gray=True, dtype=np.uint16, seed=1)
    res = _fast().stack(st.frames)
    assert res.image.dtype == np.uint16 and res.image.ndim == 2
    assert psnr(res.image, st.truth, 65535.0) > 25


def test_bad_frame_is_excluded_and_named(small_stack):
    frames = [f.copy() for f in small_stack.frames]
    frames[0] = np.random.default_rng(0).integers(0, 256, frames[0].shape, dtype=np.uint8)
    res = _fast().stack(frames)
    assert res.transforms[0] is None
    assert res.report.excluded == ["frame 0"]
    entry = res.report.frames[0]
    assert entry.excluded and "quality" in entry.reason
    assert (res.depth > 0.5).mean() > 0.95  # the noise frame never wins


def test_reference_and_reuse_transforms(small_stack):
    first = _fast(reference=0).stack(small_stack.frames)
    assert np.allclose(first.transforms[0], np.eye(3))
    with pytest.raises(ValueError, match="reference"):
        _fast(reference=99).stack(small_stack.frames)
    again = _fast(reference=0).stack(small_stack.frames, transforms=first.transforms)
    assert np.abs(again.image.astype(int) - first.image.astype(int)).mean() < 1.0
    with pytest.raises(StackError, match="transforms"):
        _fast().stack(small_stack.frames, transforms=first.transforms[:2])


def _translation(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0, tx], [0, 1.0, ty], [0, 0, 1.0]])


def test_reused_transforms_are_applied(small_stack):
    # frames that need no alignment, and reused transforms that say frames 1
    # and 2 sit 3 px left and 2 px down of the reference: the sharp frames
    # are sampled there, so the fused image is the truth moved by that much
    import scipy.ndimage as ndi

    sharp = small_stack.truth
    blurred = ndi.gaussian_filter(sharp, (3, 3, 0))
    frames = [blurred, sharp, sharp]
    moved = [np.eye(3), _translation(3, -2), _translation(3, -2)]
    res = _fast(reference=0).stack(frames, transforms=moved)
    for entry in res.report.frames[1:]:
        assert (entry.shift_x, entry.shift_y) == pytest.approx((3, -2))
    inner = res.image[10:-10, 10:-10]
    shifted = sharp[8:-12, 13:-7]  # fused[y, x] = sharp[y - 2, x + 3]
    assert psnr(inner, shifted) > 30 and psnr(inner, shifted) > psnr(inner, sharp[10:-10, 10:-10]) + 15
    # transforms relative to another reference are re-expressed relative to this one
    res2 = _fast(reference=0).stack(frames, transforms=[_translation(1, 1) @ m for m in moved])
    np.testing.assert_array_equal(res2.image, res.image)


@pytest.mark.parametrize(
    "scale, degrees, words",
    [(1.0, 12.0, r"implausible rotation -1[12]\.\d degrees"), (1.25, 0.0, r"implausible scale change 0\.80\d"),
     (0.8, 0.0, r"implausible scale change 1\.2[56]\d")],
)
def test_implausible_rotation_or_scale_excludes_the_frame(small_stack, scale, degrees, words):
    # a frame turned or zoomed far more than focus breathing can: it registers
    # well (the content is the same) but is not a frame of this stack
    from napari_focus_stack._backend import get_backend
    from napari_focus_stack.align import warp_image

    frames = list(small_stack.frames)
    h, w = frames[0].shape[:2]
    centre = _translation((w - 1) / 2, (h - 1) / 2)
    th = np.deg2rad(degrees)
    co, si = scale * np.cos(th), scale * np.sin(th)
    turn = np.array([[co, -si, 0], [si, co, 0], [0, 0, 1]])
    m = centre @ turn @ np.linalg.inv(centre)
    last = frames[-1].astype(np.float32)
    frames[-1] = np.clip(warp_image(get_backend("cpu"), last, m, (h, w), order=3), 0, 255).astype(np.uint8)
    res = _fast().stack(frames)
    entry = res.report.frames[-1]
    assert entry.excluded and re.match(words, entry.reason)
    assert entry.quality > 0.9  # excluded for its geometry, not for a poor match
    assert res.report.excluded == [entry.name]


def test_exposure_gains_match_the_true_gains():
    from napari_focus_stack.synthetic import make_stack

    st = make_stack("pcb", shape=(160, 200), n_frames=5, seed=3, gain_range=0.2)
    res = _fast().stack(st.frames)
    for entry, true in zip(res.report.frames, st.gains, strict=False):
        if entry.index == st.reference:
            assert entry.gain is None
            continue
        # the reported gain maps the frame back onto the reference's exposure
        np.testing.assert_allclose(np.asarray(entry.gain) * true, 1.0, atol=0.03)


@pytest.mark.parametrize(
    "reference, words",
    [(1.5, "reference must be a whole number, 0 or more, got 1.5"), (-1, "reference must be 0 or more, got -1"),
     ("2", "reference must be a number")],
)
def test_reference_is_refused_not_truncated(reference, words):
    with pytest.raises(ParameterError, match=words):
        FocusStacker(reference=reference)


def test_reference_beyond_the_stack_names_the_valid_range(small_stack):
    with pytest.raises(ParameterError, match=r"between 0 and 5 \(the stack has 6 frames\), got 6"):
        _fast(reference=6).stack(small_stack.frames)


@pytest.mark.parametrize("kind", ["arrays", "paths"])
def test_a_missing_frame_in_a_list_is_named(small_stack, tmp_path, kind):
    from napari_focus_stack.synthetic import save_stack

    frames = list(small_stack.frames) if kind == "arrays" else save_stack(small_stack, tmp_path)
    frames[2] = None
    with pytest.raises(InputError, match="frame 2 of the 6 inputs is None"):
        _fast().stack(frames)


def test_progress_and_cancel(small_stack):
    seen = []
    _fast().stack(small_stack.frames, progress=lambda d, t, s: seen.append((d, t, s)))
    n = len(small_stack.frames)
    assert [d for d, _, _ in seen] == list(range(1, 2 * n + 1)) and seen[-1][1] == 2 * n
    assert {s for *_, s in seen} == {"align", "fuse"}
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(Cancelled):
        _fast().stack(small_stack.frames, cancel=cancel)
    # stops within one frame (the two alignment threads each finish the frame they hold)
    assert 3 <= len(calls) <= 4


def test_threads_do_not_change_result(small_stack):
    a = _fast(workers=1).stack(small_stack.frames).image
    b = _fast(workers=3).stack(small_stack.frames).image
    np.testing.assert_array_equal(a, b)


def _sharpness(img) -> float:
    g = np.asarray(img, np.float32).mean(axis=2)
    d = g[1:, :] - g[:-1, :]
    return float((d * d).mean())


@pytest.mark.parametrize("method", ["pyramid", "depthmap"])
def test_real_frames_shipped_with_tests(pcb_small_paths, method):
    from PIL import Image

    res = _fast(method=method).stack(pcb_small_paths)
    assert res.image.shape == (384, 512, 3) and res.report.excluded == []
    scales = [f.scale for f in res.report.frames]
    assert all(np.diff(scales) < 0) and 0.015 < scales[0] - scales[-1] < 0.06  # real focus breathing
    assert all(_sharpness(res.image) > _sharpness(Image.open(p)) for p in pcb_small_paths)
    # near (low index) and far (high index) parts of the board both appear in the depth map
    assert res.depth.min() < 1.5 and res.depth.max() > 4.5


def test_pcb_real_frames(pcb_paths):
    res = _fast().stack(pcb_paths)
    assert res.image.shape == (1536, 2048, 3) and res.report.excluded == []
    scales = [f.scale for f in res.report.frames]
    # real focus breathing: monotonic, about 2-4 % across the stack
    assert all(np.diff(scales) < 0) and 0.015 < scales[0] - scales[-1] < 0.06
    assert min(f.quality for f in res.report.frames) > 0.6
    # the fused image is sharper than every input frame
    from PIL import Image

    assert all(_sharpness(res.image) > _sharpness(Image.open(p)) for p in pcb_paths)
    assert res.meta is not None and res.meta.path == pcb_paths[3]


def test_gpu_matches_cpu(small_stack):
    from napari_focus_stack._backend import gpu_status

    ok, why = gpu_status()
    if not ok:
        pytest.skip(f"no GPU: {why}")
    cpu = _fast(device="cpu").stack(small_stack.frames)
    gpu = _fast(device="gpu").stack(small_stack.frames)
    assert psnr(gpu.image, cpu.image) >= 50
    assert (np.abs(gpu.depth - cpu.depth) < 0.5).mean() >= 0.995


def test_save_result_keeps_exif_and_protects_inputs(tmp_path):
    from PIL import Image

    from napari_focus_stack import OutputError
    from napari_focus_stack.synthetic import make_stack, save_stack

    st = make_stack("pcb", shape=(96, 128), n_frames=3, seed=2)
    paths = save_stack(st, tmp_path, fmt="jpg")
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    for p in paths:
        Image.open(p).save(p, exif=exif.tobytes(), quality=95)
    stacker = _fast()
    res = stacker.stack(paths)
    out = stacker.save_image(res, tmp_path / "fused.jpg")
    assert Image.open(out).getexif().get(0x010F) == "TestCam"
    before = paths[0].read_bytes()
    with pytest.raises(OutputError):
        stacker.save_image(res, paths[0])
    assert paths[0].read_bytes() == before


def test_estimate_transforms_matches_stack(small_stack):
    stacker = _fast()
    mats, report = stacker.estimate_transforms(small_stack.frames)
    full = stacker.stack(small_stack.frames)
    for a, b in zip(mats, full.transforms, strict=False):
        np.testing.assert_allclose(a, b)
    assert report.excluded == [] and report.timings.align_s > 0


def test_memory_estimate_scales(small_stack):
    one = FocusStacker(scale_factor=1).estimate_memory((1536, 2048, 3))
    two = FocusStacker(scale_factor=2).estimate_memory((1536, 2048, 3))
    tiled = FocusStacker(scale_factor=2, tile_size=512).estimate_memory((1536, 2048, 3))
    big = FocusStacker(scale_factor=1).estimate_memory((3000, 4000, 3))
    # measured, whole process less some 60 MiB of interpreter and libraries: pcb 330 MiB, 12 MP 900-940 MiB
    assert 330 << 20 < one < 450 << 20
    assert 940 << 20 < big < 1100 << 20
    assert two > 2.5 * one and tiled < two


def test_big_frames_align_at_half_resolution_accurately(tmp_path):
    # > 1 MP: registration runs on half-size frames (JPEG: DCT-scaled decode,
    # arrays: 2x2 block means) and must still be sub-pixel at full size
    from napari_focus_stack.synthetic import make_stack, save_stack

    st = make_stack("rocks", shape=(1000, 1200), n_frames=4, seed=7)
    for inputs in (st.frames, save_stack(st, tmp_path, fmt="jpg", quality=95)):
        mats, _ = _fast().estimate_transforms(inputs)
        errs = [corner_error(a, b, st.truth.shape[:2]) for a, b in zip(mats, st.transforms, strict=False)]
        assert max(errs) < 0.15, errs


# --------------------------------------------------------------------------
# bad input: missing pixels, tiny frames, an odd reference frame
# --------------------------------------------------------------------------


def _float_frames(stack, dtype=np.float32) -> list:
    return [f.astype(dtype) / 255 for f in stack.frames]


def _stack_warned(stacker, frames, **kw):
    """``stacker.stack`` and the warnings it gave, all of them recorded."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = stacker.stack(frames, **kw)
    return res, [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize("align", ["none", "similarity"])
@pytest.mark.parametrize("method", ["pyramid", "depthmap"])
def test_nonfinite_pixels_are_missing_data(small_stack, align, method):
    from napari_focus_stack import FocusStackWarning

    clean = _float_frames(small_stack)
    frames = [f.copy() for f in clean]
    frames[1][40:43, 50:53] = np.nan  # 9 pixels
    frames[4][100, 120, 2] = np.inf  # one channel of one pixel
    frames[4][10, 10] = -np.inf
    stacker = _fast(align=align, method=method)
    res, warned = _stack_warned(stacker, frames)
    assert np.isfinite(res.image).all() and np.isfinite(res.depth).all() and np.isfinite(res.confidence).all()
    assert res.report.excluded == []  # a few missing pixels never cost a frame
    # one warning, naming the frames and the pixels, and no raw numpy warnings
    assert len(warned) == 1 and warned[0][0] is FocusStackWarning
    line = warned[0][1]
    assert "11 non-finite pixels" in line and "frame 1 (9 px)" in line and "frame 4 (2 px)" in line
    assert res.report.warnings == [warned[0][1]]
    assert [f.nonfinite_pixels for f in res.report.frames] == [0, 9, 0, 0, 2, 0]
    # the other frames fill the holes: as close to the truth as without them
    truth = small_stack.truth / 255
    without = stacker.stack(clean).image
    assert psnr(res.image, truth, 1.0) > psnr(without, truth, 1.0) - 0.2


def test_nan_in_the_reference_excludes_no_frame(small_stack):
    frames = _float_frames(small_stack, np.float64)
    ref = small_stack.reference
    frames[ref][60:70, 150:160] = np.nan
    res, warned = _stack_warned(_fast(), frames)
    assert res.report.excluded == [] and len(warned) == 1
    pairs = zip(res.transforms, small_stack.transforms, strict=True)
    errs = [corner_error(a, b, frames[0].shape[:2]) for a, b in pairs]
    assert max(errs) < 0.25
    assert np.isfinite(res.image).all()
    # the hole is filled from the other frames, not left as a patch
    hole = np.abs(res.image[60:70, 150:160] - small_stack.truth[60:70, 150:160] / 255)
    assert hole.mean() < 0.1


def test_frame_with_missing_pixels_is_still_aligned(small_stack):
    frames = _float_frames(small_stack)
    frames[1][::7, ::5] = np.nan  # a sparse grid of holes over the whole frame
    res, _ = _stack_warned(_fast(), frames)
    assert res.transforms[1] is not None
    assert corner_error(res.transforms[1], small_stack.transforms[1], frames[0].shape[:2]) < 0.25


@pytest.mark.parametrize("shape", [(10, 600), (600, 10), (5, 40), (24, 24)])
@pytest.mark.parametrize("align", ["none", "similarity"])
def test_small_frames_stack_with_fewer_pyramid_levels(shape, align):
    from napari_focus_stack.synthetic import make_stack

    st = make_stack("checker", shape=(max(shape[0], 16), max(shape[1], 16)), n_frames=3, seed=5, max_shift=0.5)
    frames = [np.ascontiguousarray(f[: shape[0], : shape[1]]) for f in st.frames]
    for method in ("pyramid", "depthmap"):
        res = _fast(align=align, method=method).stack(frames)
        assert res.image.shape == frames[0].shape and res.depth.shape == shape


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (4, 100), (100, 3)])
def test_frames_too_small_to_stack_are_refused_clearly(shape):
    frames = [np.full(shape, i * 40, np.uint8) for i in range(3)]
    h, w = shape
    for call in (_fast().stack, _fast().estimate_transforms):
        with pytest.raises(StackError, match=rf"frame 0: the frames are {w} x {h} pixels.*at least 5 pixels"):
            call(frames)


def _odd_reference_stack(small_stack) -> list:
    frames = [f.copy() for f in small_stack.frames[:5]]
    frames[2] = np.ascontiguousarray(frames[2][::-1, ::-1])  # the middle frame, turned 180 degrees
    return frames


def test_odd_reference_frame_is_replaced(small_stack):
    from napari_focus_stack import FocusStackWarning

    frames = _odd_reference_stack(small_stack)
    res, warned = _stack_warned(_fast(), frames)
    rep = res.report
    assert rep.reference in (1, 3) and rep.reference_changed.old == 2
    assert rep.reference_changed.new == rep.reference
    assert rep.excluded == ["frame 2"] and rep.frames[2].reason
    assert [c for c, _ in warned] == [FocusStackWarning] and "reference" in warned[0][1]
    assert rep.warnings == [warned[0][1]]
    assert res.meta is not None  # the new reference's metadata
    # the four good frames are aligned (relative to the new reference) and fused
    new = rep.reference
    truth_to_new = [m @ np.linalg.inv(small_stack.transforms[new]) for m in small_stack.transforms[:5]]
    for i in (0, 1, 3, 4):
        assert corner_error(res.transforms[i], truth_to_new[i], frames[0].shape[:2]) < 0.3
    assert psnr(res.image, frames[2]) < psnr(frames[new], frames[2])  # not the odd frame
    # its transforms can be reused: the stack it is reused for takes the same reference
    with pytest.warns(FocusStackWarning, match="excluded in the reused alignment"):
        again = _fast().stack(small_stack.frames[:5], transforms=res.transforms)
    assert again.report.reference == new and again.report.excluded == ["frame 2"]


def test_a_good_reference_is_kept(small_stack):
    frames = [f.copy() for f in small_stack.frames[:5]]
    frames[4] = np.ascontiguousarray(frames[4][::-1, ::-1])
    res = _fast().stack(frames)
    assert res.report.reference == 2 and res.report.reference_changed is None
    assert res.report.excluded == ["frame 4"] and res.report.warnings == []


def test_blank_frames_around_the_reference_give_way_to_the_frames_that_match(small_stack):
    """5 frames of a scene and 7 black ones: the middle frame (the reference) and its neighbours are black."""
    from napari_focus_stack import FocusStackWarning

    good = small_stack.frames[:5]
    frames = good + [np.zeros_like(good[0])] * 7
    res, warned = _stack_warned(_fast(), frames)
    rep = res.report
    assert rep.reference == 2 and rep.reference_changed.old == 6
    assert rep.reference_changed.reason == "is blank (every pixel is 0)"
    assert rep.excluded == [f"frame {i}" for i in range(5, 12)]
    assert {rep.frames[i].reason for i in range(5, 12)} == {"blank (every pixel is 0)"}
    assert [c for c, _ in warned] == [FocusStackWarning] and "frame 6 is blank" in warned[0][1]
    # the five good frames, fused as if the black ones were not there
    alone = _fast(reference=2).stack(good)
    assert psnr(res.image, alone.image) > 45
    np.testing.assert_allclose(res.depth_raw, alone.depth_raw, atol=1e-3)


def test_the_largest_group_of_matching_frames_gives_the_reference(small_stack):
    """A reference whose own group is a minority is replaced by the middle of the largest group."""
    from napari_focus_stack import FocusStackWarning

    frames = [f.copy() for f in small_stack.frames] * 2  # 12 frames, two passes over the focus range
    for i in range(8, 12):  # the last four turned upside down: they match one another, not the others
        frames[i] = np.ascontiguousarray(frames[i][::-1, ::-1])
    with pytest.warns(FocusStackWarning, match="frame 10 matched only 3 of the 11 other frames; frame 4 is"):
        rep = _fast(reference=10).stack(frames).report
    assert rep.excluded == [f"frame {i}" for i in range(8, 12)]
    assert rep.reference_changed.to_dict() == {"from": 10, "to": 4, "reason": "matched only 3 of the 11 other frames"}


def test_a_stack_of_blank_frames_is_refused():
    frames = [np.full((32, 40), 7, np.uint16) for _ in range(4)]
    with pytest.raises(StackError, match=r"every frame is blank \(each holds one value, e.g. frame 0\)"):
        _fast().stack(frames)
    nan = [np.full((32, 40), np.nan, np.float32) for _ in range(3)]
    with pytest.raises(StackError, match="every frame is blank"):
        _fast().stack(nan)


def test_prefetched_keeps_order_one_call_at_a_time_and_at_most_one_result_ahead():
    import threading
    import time

    from napari_focus_stack.streaming import prefetched as _prefetched

    alive, running, log = set(), [0], []
    lock = threading.Lock()
    source = iter(range(100, 110))  # consumed by fn: only safe one call at a time

    def fn(i):
        with lock:
            running[0] += 1
            assert running[0] == 1, "two calls at once"
        time.sleep(0.01)
        value = next(source)
        with lock:
            running[0] -= 1
            alive.add(i)
            log.append(len(alive))
        return i, value

    got = []
    for i, value in _prefetched(fn, list(range(10)), ahead=1):
        time.sleep(0.02)  # the consumer is slower: the next result waits, the one after must not start
        got.append((i, value))
        with lock:
            alive.discard(i)
    assert got == [(i, 100 + i) for i in range(10)]
    assert max(log) <= 2  # the one being consumed and the next

    # and a result the consumer dropped is gone: the generator keeps no reference to it
    import weakref

    class Frame:
        pass

    refs = []
    for frame in _prefetched(lambda i: Frame(), list(range(4)), ahead=1):
        refs.append(weakref.ref(frame))
        del frame
        assert all(r() is None for r in refs)
    assert list(_prefetched(lambda i: i * i, [1, 2, 3], ahead=0)) == [1, 4, 9]


def test_side_thread_changes_nothing(small_stack, monkeypatch):
    # the halves of prepare and merge that run beside each other touch disjoint state:
    # the result must be bit-identical to running them one after the other
    import napari_focus_stack.fusion as fusion

    frames = list(small_stack.frames)
    runs = {}
    for parallel in (False, True):
        real = fusion.make_fusion
        monkeypatch.setattr(
            "napari_focus_stack.fuse_stack.make_fusion",
            lambda *a, _p=parallel, _r=real, **k: _r(*a, **{**k, "parallel": _p}),
        )
        res = FocusStacker(radius=4, workers=2, prefer="near").stack(frames)
        runs[parallel] = res
    np.testing.assert_array_equal(runs[True].image, runs[False].image)
    np.testing.assert_array_equal(runs[True].depth_raw, runs[False].depth_raw)
    np.testing.assert_array_equal(runs[True].confidence, runs[False].confidence)


def test_only_small_frames_are_prepared_ahead():
    from napari_focus_stack.fuse_stack import PREFETCH_MAX_FRAME_BYTES
    from napari_focus_stack.fuse_stack import prefetch_fusion as _prefetch_fusion

    assert _prefetch_fusion(1536 * 2048 * 3 * 4)  # 3 MP RGB: 36 MiB of float32
    assert not _prefetch_fusion(3000 * 4000 * 3 * 4)  # 12 MP RGB: 137 MiB
    assert _prefetch_fusion(3000 * 4000 * 4)  # 12 MP gray: 46 MiB
    assert _prefetch_fusion(PREFETCH_MAX_FRAME_BYTES) and not _prefetch_fusion(PREFETCH_MAX_FRAME_BYTES + 4)
    # the memory estimate counts the frame prepared ahead for small frames only
    small, big = FocusStacker(workers=2), FocusStacker(workers=1)
    assert small.estimate_memory((1536, 2048, 3)) > big.estimate_memory((1536, 2048, 3))
    assert small.estimate_memory((3000, 4000, 3)) == big.estimate_memory((3000, 4000, 3))


def test_save_mesh_writes_the_height_map_as_a_surface(small_stack, tmp_path):
    from meshes import read_mesh
    from napari_focus_stack.synthetic import make_hyperstack

    stacker = _fast()
    res = stacker.stack(small_stack.frames)
    (path,) = stacker.save_mesh(res, tmp_path / "relief.obj")
    mesh = read_mesh(path)
    h, w = small_stack.truth.shape[:2]
    assert len(mesh["vertices"]) == h * w and mesh["colors"] is not None  # RGB photos: coloured
    np.testing.assert_allclose(np.sort(mesh["vertices"][:, 2]), np.sort(res.depth.ravel()), atol=1e-4)
    with pytest.raises(StackError, match="depth=True"):
        stacker.save_mesh(stacker.stack(small_stack.frames, depth=False), tmp_path / "none.ply")
    hyper = make_hyperstack("patches", shape=(32, 40), n_z=4, n_t=2, n_c=1, seed=1)
    nd_res = stacker.stack_nd(hyper.data[:, 0], "TZYX", z_step=0.5)
    paths = stacker.save_mesh(nd_res, tmp_path / "series.ply", z_scale=2.0)
    assert [p.name for p in paths] == ["series_t0.ply", "series_t1.ply"]
    for t, p in enumerate(paths):
        z = read_mesh(p)["vertices"][:, 2]
        np.testing.assert_allclose(np.sort(z), np.sort(2.0 * nd_res.height[t].ravel()), rtol=1e-5)
