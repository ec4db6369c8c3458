"""Retouching: painted regions take the chosen frame, blended in; the rest stays the automatic result."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from napari_focus_stack import FocusStacker
from napari_focus_stack.errors import ParameterError
from napari_focus_stack.pixels import cast_to, full_scale
from napari_focus_stack.retouch import HAND_SET_CONFIDENCE, REACH, Retouch, apply_retouch, check_mask
from napari_focus_stack.synthetic import make_stack

SHAPE = (240, 320)
# two painted regions: frame 2 (label 2) and frame 5 (label 5)
REGIONS = {2: (40, 150, 30, 170), 5: (100, 220, 200, 310)}


@pytest.fixture(scope="module")
def stack():
    return make_stack("astronaut", shape=SHAPE, n_frames=5, seed=3)


@pytest.fixture(scope="module")
def stacker():
    return FocusStacker(device="cpu")


@pytest.fixture(scope="module")
def automatic(stack, stacker):
    return stacker.stack(stack.frames)


def _same_to_rounding(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal but for a level here and there: the bicubic warp of a window and of a whole frame differ by
    float rounding (about 1e-5 of full scale), which flips a rounding in a few pixels."""
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return int(d.max()) <= 1 and float((d > 0).mean()) < 1e-3


def _mask(regions=REGIONS, shape=SHAPE) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    for k, (y0, y1, x0, x1) in regions.items():
        mask[y0:y1, x0:x1] = k
    return mask


def _inside(region, margin=REACH) -> tuple[slice, slice]:
    y0, y1, x0, x1 = region
    return slice(y0 + margin, y1 - margin), slice(x0 + margin, x1 - margin)


def _aligned_frame(stacker, frames, result, k) -> np.ndarray:
    """Frame k (from 1) aligned and exposure-corrected, independently of the retouch code: float warp, gain, cast."""
    dtype = frames[0].dtype
    peak = full_scale(dtype)
    floats = [f.astype(np.float32) / np.float32(peak) for f in frames]
    aligned = list(stacker.warp_to_reference(floats, result.transforms))[k - 1]
    gain = result.report.frames[k - 1].gain
    if gain is not None:
        aligned = aligned * np.asarray(gain, np.float32)
    return cast_to(aligned.astype(np.float32), dtype, peak)


def test_painted_region_is_the_aligned_exposure_corrected_frame(stack, stacker, automatic):
    out = apply_retouch(automatic, stack.frames, _mask())
    for k, region in REGIONS.items():
        want = _aligned_frame(stacker, stack.frames, automatic, k)
        inside = _inside(region)
        diff = np.abs(out.image[inside].astype(int) - want[inside].astype(int))
        assert diff.max() <= 1, f"label {k}: up to {diff.max()} levels off frame {k}"
        # and it differs from the automatic result there: the frame really was taken
        assert np.abs(automatic.image[inside].astype(int) - want[inside].astype(int)).mean() > 1
    assert out.image.dtype == automatic.image.dtype and out.image.shape == automatic.image.shape


def test_outside_the_reach_the_result_is_bit_identical(stack, automatic):
    out = apply_retouch(automatic, stack.frames, _mask())
    far = np.ones(SHAPE, bool)
    for y0, y1, x0, x1 in REGIONS.values():
        far[max(0, y0 - REACH): y1 + REACH, max(0, x0 - REACH): x1 + REACH] = False
    assert far.sum() > 10000
    for name in ("image", "depth", "depth_raw", "confidence"):
        assert np.array_equal(getattr(out, name)[far], getattr(automatic, name)[far]), name
    # the automatic result itself is untouched
    assert automatic.retouch is None and not any(f.retouched_pixels for f in automatic.report.frames)


def test_depth_and_confidence_are_set_by_hand(stack, automatic):
    mask = _mask()
    out = apply_retouch(automatic, stack.frames, mask)
    for k in REGIONS:
        painted = mask == k
        assert np.all(out.depth_raw[painted] == k - 1) and np.all(out.depth[painted] == k - 1)
        assert np.all(out.confidence[painted] == HAND_SET_CONFIDENCE)
        assert out.report.frames[k - 1].retouched_pixels == int(painted.sum())
        assert out.report.to_dict()["frames"][k - 1]["retouched_pixels"] == int(painted.sum())
    unpainted = mask == 0
    assert np.array_equal(out.depth_raw[unpainted], automatic.depth_raw[unpainted])
    assert np.array_equal(out.confidence[unpainted], automatic.confidence[unpainted])
    assert np.array_equal(out.retouch, mask)
    # "set by hand" is told apart: the automatic confidence stays below 1
    assert automatic.confidence.max() < HAND_SET_CONFIDENCE


def _steps(a: np.ndarray, band: tuple) -> int:
    return int(np.abs(np.diff(a[band].astype(int), axis=1)).max())


def test_the_blend_leaves_no_step_at_the_mask_edge():
    # frame 1 sharp and dark, frame 2 blurred and 60 levels brighter (no exposure matching):
    # a hard cut would show a 40-60 level step along the mask's edge
    rng = np.random.default_rng(0)
    h, w = 160, 200
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.5)
    texture /= np.abs(texture).max()
    dark = np.clip(100 + 12 * texture, 0, 255).astype(np.uint8)
    bright = np.clip(160 + 12 * cv2.GaussianBlur(texture, (0, 0), 2.0), 0, 255).astype(np.uint8)
    frames = [dark, bright, dark]
    auto = FocusStacker(device="cpu", align="none").stack(frames, match_exposure=False)
    mask = np.zeros((h, w), np.uint8)
    mask[40:120, 60:140] = 2
    out = apply_retouch(auto, frames, mask)
    jump = abs(float(bright[mask == 2].mean()) - float(auto.image[mask == 0].mean()))
    assert jump > 30
    for band in ((slice(50, 110), slice(60 - 12, 60 + 12)), (slice(50, 110), slice(140 - 12, 140 + 12))):
        local = max(_steps(auto.image, band), _steps(bright, band))  # the contrast either image has there
        # spread over >= 8 px, the brightness difference adds at most jump / 8 per pixel
        assert _steps(out.image, band) <= local + jump / 8
        hard = np.where(mask == 2, bright, auto.image)
        assert _steps(hard, band) > local + jump / 2  # what the test guards against
    # and the band is narrow: a few pixels in, the frame; a few pixels out, the automatic result
    assert np.abs(out.image[60:100, 60 + 20: 140 - 20].astype(int) - bright[60:100, 80:120]).max() <= 1
    assert np.abs(out.image[60:100, 60 - REACH: 60 - 24].astype(int)
                  - auto.image[60:100, 60 - REACH: 60 - 24]).max() <= 1


def test_strokes_update_incrementally_and_erasing_restores_exactly(stack, automatic):
    retouch = Retouch(automatic, stack.frames)
    mask = np.zeros(SHAPE, np.uint8)
    # the two regions painted in three strokes, the last one over part of the first
    y0, y1, x0, x1 = REGIONS[2]
    mask[y0:y1, x0:100] = 2
    assert retouch.update(mask, (y0, y1, x0, 100)) is not None
    mask[y0:y1, 100:x1] = 2
    retouch.update(mask)  # no region: found by comparing with the mask applied
    y0, y1, x0, x1 = REGIONS[5]
    mask[y0:y1, x0:x1] = 5
    retouch.update(mask, REGIONS[5])
    once = apply_retouch(automatic, stack.frames, _mask())
    assert _same_to_rounding(retouch.image, once.image)
    assert np.array_equal(retouch.depth, once.depth) and np.array_equal(retouch.confidence, once.confidence)
    assert retouch.update(mask) is None  # nothing changed
    # erase frame 5's region: exactly what painting frame 2 alone gives
    mask[mask == 5] = 0
    retouch.update(mask)
    two = apply_retouch(automatic, stack.frames, _mask({2: REGIONS[2]}))
    assert _same_to_rounding(retouch.image, two.image)
    # erase everything: the automatic result, bit for bit
    retouch.reset()
    for name in ("image", "depth", "depth_raw", "confidence"):
        assert np.array_equal(getattr(retouch, name), getattr(automatic, name)), name
    assert retouch.result().retouch is None


def test_a_stroke_reads_only_its_window(stack, automatic):
    from napari_focus_stack.io import FrameSource

    reads = []
    frames = [lambda k=k: reads.append(k) or stack.frames[k] for k in range(len(stack.frames))]
    source = FrameSource.from_inputs(stack.frames)
    source = FrameSource(frames, [source.meta(k) for k in range(len(frames))], source.names)
    retouch = Retouch(automatic, source)
    mask = np.zeros(SHAPE, np.uint8)
    mask[100:110, 100:120] = 3
    window = retouch.update(mask, (100, 110, 100, 120))
    assert window == (100 - REACH, 110 + REACH, 100 - REACH, 120 + REACH)
    mask[120:130, 100:120] = 3
    retouch.update(mask, (120, 130, 100, 120))
    assert reads == [2]  # frame 3 decoded once, then taken from the cache
    assert retouch.sharpest_labels((0, 2, 0, 2)).shape == (2, 2)
    assert retouch.frame_at(105, 105) == 2 and retouch.frame_at(-1, 0) is None
    assert retouch.frame_at(5, 5) == int(np.rint(automatic.depth[5, 5]))


@pytest.mark.parametrize("kind", ["uint16 gray", "float"])
def test_input_dtypes_are_kept(kind):
    if kind == "float":
        st = make_stack("checker", shape=(160, 200), n_frames=4, seed=1)
        frames = [f.astype(np.float32) / 255 for f in st.frames]
    else:
        st = make_stack("checker", shape=(160, 200), n_frames=4, seed=1, gray=True, dtype=np.uint16)
        frames = st.frames
    stacker = FocusStacker(device="cpu")
    auto = stacker.stack(frames)
    region = (30, 130, 40, 160)
    out = apply_retouch(auto, frames, _mask({1: region}, (160, 200)))
    assert out.image.dtype == frames[0].dtype
    want = _aligned_frame(stacker, frames, auto, 1)
    inside = _inside(region)
    tolerance = 1e-5 if kind == "float" else 1
    assert np.abs(out.image[inside].astype(float) - want[inside].astype(float)).max() <= tolerance


def test_scale_factor_two(stack):
    stacker = FocusStacker(device="cpu", scale_factor=2)
    auto = stacker.stack(stack.frames)
    region = REGIONS[2]
    out = apply_retouch(auto, stack.frames, _mask({2: region}))
    want = _aligned_frame(stacker, stack.frames, auto, 2)  # warped at the frames' size: no block means
    inside = _inside(region)
    diff = np.abs(out.image[inside].astype(int) - want[inside].astype(int))
    # fused at twice the size and brought back by block means: near the frame, not equal to it
    assert diff.mean() < 1.5
    assert np.abs(auto.image[inside].astype(int) - want[inside].astype(int)).mean() > 2 * diff.mean()


def test_gpu_kernels_give_the_cpu_result(stack, automatic):
    from napari_focus_stack._backend import reference_backend

    cpu = apply_retouch(automatic, stack.frames, _mask())
    ndimage = apply_retouch(automatic, stack.frames, _mask(), backend=reference_backend())
    # order 2 is OpenCV's cubic convolution on the CPU (prefiltered to be as sharp as Lanczos-4 on
    # average), the cubic spline with ndimage: a few levels apart at the sharpest edges
    d = np.abs(cpu.image.astype(int) - ndimage.image.astype(int))
    assert d.max() <= 10 and d.mean() < 0.25
    assert np.array_equal(cpu.depth_raw, ndimage.depth_raw)


def test_masks_that_do_not_fit_are_refused(stack, automatic):
    frames = stack.frames
    with pytest.raises(ParameterError, match=r"is 320 x 200 pixels, the fused image 320 x 240"):
        apply_retouch(automatic, frames, np.zeros((200, 320), np.uint8))
    with pytest.raises(ParameterError, match=r"label 6 is no frame: the stack has 5 frames"):
        apply_retouch(automatic, frames, _mask({6: (0, 10, 0, 10)}))
    with pytest.raises(ParameterError, match=r"label -1 is no frame"):
        apply_retouch(automatic, frames, -np.ones(SHAPE, np.int32))
    with pytest.raises(ParameterError, match=r"integer labels"):
        apply_retouch(automatic, frames, np.zeros(SHAPE, np.float32))
    with pytest.raises(ParameterError, match=r"one 2-D image"):
        apply_retouch(automatic, frames, np.zeros((*SHAPE, 3), np.uint8))
    # a label in a stroke is checked too
    retouch = Retouch(automatic, frames)
    mask = np.zeros(SHAPE, np.uint16)
    mask[5:8, 5:8] = 9
    with pytest.raises(ParameterError, match="label 9"):
        retouch.update(mask, (5, 8, 5, 8))
    assert check_mask(np.zeros(SHAPE, bool), SHAPE, 5).dtype == np.uint8


def test_an_excluded_frame_is_refused_by_name(stack, stacker):
    transforms, _ = stacker.estimate_transforms(stack.frames)
    transforms[1] = None  # frame 2 excluded
    auto = stacker.stack(stack.frames, transforms=transforms)
    assert auto.report.frames[1].excluded
    with pytest.raises(ParameterError, match=r"label 2 takes frame 2 \(frame 1\), which was excluded"):
        apply_retouch(auto, stack.frames, _mask({2: (0, 10, 0, 10)}))
    retouch = Retouch(auto, stack.frames)
    assert 2 not in retouch.sharpest_labels()
    with pytest.raises(ParameterError, match=r"label 2 takes frame 2"):  # in a stroke too
        retouch.update(_mask({2: (0, 10, 0, 10)}), (0, 10, 0, 10))


def test_a_frame_the_fusion_takes_unwarped_is_taken_unwarped(stack, stacker):
    # moved by 0.05 px: the fusion uses it as it is (fuse_stack.UNWARPED_PX), so must the retouch
    nudge = np.array([[1, 0, 0.05], [0, 1, -0.04], [0, 0, 1.0]])
    auto = stacker.stack(stack.frames, transforms=[nudge] + [np.eye(3)] * 4, match_exposure=False)
    assert auto.report.frames[0].warped is False
    out = apply_retouch(auto, stack.frames, _mask({1: REGIONS[2]}))
    inside = _inside(REGIONS[2])
    assert np.array_equal(out.image[inside], stack.frames[0][inside])


def test_stacker_checks_the_mask_before_reading_a_frame(stack, stacker):
    ticks = []
    with pytest.raises(ParameterError, match="the size of the fused image"):
        stacker.stack(stack.frames, retouch=np.zeros((10, 10), np.uint8), progress=lambda *a: ticks.append(a))
    assert ticks == []
    out = stacker.stack(stack.frames, retouch=_mask({3: REGIONS[2]}), depth=False)
    assert out.depth is None and np.all(out.depth_raw[_mask({3: REGIONS[2]}) == 3] == 2)


def test_in_place_retouches_the_results_arrays_and_keeps_the_automatic_ones(stack, automatic):
    import dataclasses

    shown = dataclasses.replace(automatic, image=automatic.image.copy(), depth=automatic.depth.copy(),
                                depth_raw=automatic.depth_raw.copy(), confidence=automatic.confidence.copy())
    retouch = Retouch(shown, stack.frames, in_place=True)
    retouch.update(_mask())
    assert retouch.image is shown.image and retouch.depth is shown.depth  # what a viewer shows, changed
    assert np.array_equal(shown.image, apply_retouch(automatic, stack.frames, _mask()).image)
    assert np.array_equal(retouch.automatic.image, automatic.image)
    retouch.reset()
    assert np.array_equal(shown.image, automatic.image) and np.array_equal(shown.depth, automatic.depth)


def test_a_big_change_is_blended_by_blocks_with_the_same_result(stack, automatic, monkeypatch):
    import napari_focus_stack.retouch as retouch_module

    whole = apply_retouch(automatic, stack.frames, _mask())
    monkeypatch.setattr(retouch_module, "BLOCK", 48)  # many blocks, none on the grid
    blocks = apply_retouch(automatic, stack.frames, _mask())
    assert _same_to_rounding(blocks.image, whole.image)
    for name in ("depth", "depth_raw", "confidence"):
        assert np.array_equal(getattr(blocks, name), getattr(whole, name)), name
