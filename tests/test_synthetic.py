"""Tests of the synthetic focus-stack generator and its ground truth."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi

from napari_focus_stack.synthetic import (
    OCCLUDERS,
    SCENES,
    SyntheticStack,
    make_stack,
    oracle_composite,
    save_stack,
)

SHAPE = (128, 160)
SWAP = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def warp_to_reference(image, matrix, out_shape, order=1, cval=np.nan):
    """Resample a frame into reference geometry (``matrix``: reference -> frame, x/y)."""
    rc = SWAP @ np.asarray(matrix, dtype=np.float64) @ SWAP  # same map in (row, col)
    image = np.asarray(image, dtype=np.float32)
    planes = image[..., None] if image.ndim == 2 else image
    out = np.empty(tuple(out_shape) + (planes.shape[2],), dtype=np.float32)
    for c in range(planes.shape[2]):
        ndi.affine_transform(planes[..., c], rc[:2, :2], rc[:2, 2], output_shape=out_shape,
                             output=out[..., c], order=order, mode="constant", cval=cval)
    return out[..., 0] if image.ndim == 2 else out


def gray(image):
    image = np.asarray(image, dtype=np.float32)
    return image if image.ndim == 2 else image @ np.array([0.2125, 0.7154, 0.0721], np.float32)


def psnr(a, b):
    mse = float(np.nanmean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1.0 / mse)


def decompose(matrix, shape):
    """Scale, rotation (degrees) and shift of a similarity about the image centre."""
    linear = matrix[:2, :2]
    scale = math.sqrt(abs(np.linalg.det(linear)))
    angle = math.degrees(math.atan2(linear[1, 0], linear[0, 0]))
    centre = np.array([(shape[1] - 1) / 2, (shape[0] - 1) / 2, 1.0])
    shift = (matrix @ centre)[:2] - centre[:2]
    return scale, angle, shift


@pytest.fixture(scope="module")
def still_stack() -> SyntheticStack:
    """A stack without motion, gain changes or noise: frames share reference geometry."""
    return make_stack("checker", shape=(160, 200), n_frames=8, seed=5, breathing=0.0,
                      max_rotation_deg=0.0, max_shift=0.0, gain_range=0.0, noise=0.0)


@pytest.fixture(scope="module")
def moving_stack() -> SyntheticStack:
    return make_stack("pcb", shape=(192, 240), n_frames=8, seed=11, noise=0.0)


# -- shapes, dtypes, determinism ---------------------------------------------


@pytest.mark.parametrize(
    "kwargs, frame_shape, dtype",
    [
        ({}, SHAPE + (3,), np.uint8),
        ({"dtype": np.uint16}, SHAPE + (3,), np.uint16),
        ({"gray": True}, SHAPE, np.uint8),
        ({"gray": True, "dtype": np.uint16}, SHAPE, np.uint16),
    ],
)
def test_shapes_and_dtypes(kwargs, frame_shape, dtype):
    stack = make_stack("astronaut", shape=SHAPE, n_frames=5, **kwargs)
    n = 5
    assert len(stack.frames) == n == stack.n_frames
    for frame in stack.frames:
        assert frame.shape == frame_shape and frame.dtype == dtype
        assert frame.flags.c_contiguous
    assert stack.truth.shape == frame_shape and stack.truth.dtype == dtype
    assert stack.depth_index.shape == SHAPE and stack.depth_index.dtype == np.float32
    assert stack.depth.shape == SHAPE and stack.depth.dtype == np.float32
    assert stack.texture_mask.shape == SHAPE and stack.texture_mask.dtype == bool
    assert stack.focus_positions.shape == (n,)
    assert stack.gains.shape == (n, 1 if kwargs.get("gray") else 3)
    assert stack.reference == n // 2
    assert all(m.shape == (3, 3) and m.dtype == np.float64 for m in stack.transforms)
    if dtype == np.uint16:
        # 16-bit output uses the full range, not 8-bit values in a 16-bit container.
        assert stack.truth.max() > 255


def test_same_seed_same_stack():
    a = make_stack("rocks", shape=(64, 80), n_frames=4, seed=3)
    b = make_stack("rocks", shape=(64, 80), n_frames=4, seed=3)
    c = make_stack("rocks", shape=(64, 80), n_frames=4, seed=4)
    for fa, fb in zip(a.frames, b.frames, strict=False):
        np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(a.truth, b.truth)
    np.testing.assert_array_equal(a.depth_index, b.depth_index)
    for ma, mb in zip(a.transforms, b.transforms, strict=False):
        np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(a.frames[0], c.frames[0])
    assert not np.array_equal(a.depth_index, c.depth_index)


@pytest.mark.parametrize("scene", SCENES)
def test_every_scene_renders(scene):
    stack = make_stack(scene, shape=(72, 96), n_frames=4, seed=1)
    truth = stack.truth.astype(np.float32) / 255
    assert truth.std() > 0.05, "scene is nearly flat"
    assert 0.1 < stack.texture_mask.mean() <= 1.0
    for frame in stack.frames:
        assert frame.shape == (72, 96, 3)
        assert 0 < frame.mean() < 255


@pytest.mark.parametrize("seed", [0, 1])
def test_board_has_featureless_raised_chips_and_a_featureless_far_backdrop(seed):
    n = 6
    stack = make_stack("board", shape=(192, 256), n_frames=n, seed=seed)
    di, textured = stack.depth_index, stack.texture_mask
    chips = di < 0.5  # the nearest points
    backdrop = di > n - 1.5
    board = ~chips & ~backdrop
    assert chips.mean() > 0.02 and backdrop.mean() > 0.05 and board.mean() > 0.4
    assert np.median(di[board]) > 1.5 and np.median(di[board]) < n - 2.5  # the board lies in between
    import scipy.ndimage as ndi

    inside = ndi.binary_erosion(chips, iterations=6)  # away from the chips' outlines
    assert inside.any() and textured[inside].mean() < 0.1
    assert textured[ndi.binary_erosion(backdrop, iterations=6)].mean() < 0.1  # a few specks of dust
    assert textured[board].mean() > 0.3
    other = make_stack("board", shape=(192, 256), n_frames=n, seed=seed + 2)
    assert not np.array_equal(stack.depth_index, other.depth_index)


def test_fine_scene_has_detail_at_2_to_6_px_periods():
    stack = make_stack("fine", shape=(128, 160), n_frames=4, seed=3)
    gray = stack.truth.astype(np.float64).mean(axis=2)
    spectrum = np.abs(np.fft.rfft2(gray - gray.mean())) ** 2
    period = 1 / np.maximum(np.hypot(np.fft.fftfreq(128)[:, None], np.fft.rfftfreq(160)[None]), 1e-9)
    fine = spectrum[(period >= 2) & (period < 6)].sum() / spectrum.sum()
    assert fine > 0.3  # astronaut and rocks hold 3-5 % of their variance there, pcb 22 %


def test_invalid_arguments():
    with pytest.raises(ValueError, match="scene"):
        make_stack("moon-landing")
    with pytest.raises(ValueError, match="n_frames"):
        make_stack(n_frames=1)
    with pytest.raises(ValueError, match="dtype"):
        make_stack(dtype=np.float32)
    with pytest.raises(ValueError, match="jpeg"):
        make_stack(shape=(32, 32), dtype=np.uint16, jpeg_quality=90)
    with pytest.raises(ValueError, match="shape"):
        make_stack(shape=(8, 8))
    with pytest.raises(ValueError, match="photons"):
        make_stack(shape=(32, 32), photons=0.0)
    with pytest.raises(ValueError, match="occluders"):
        make_stack(shape=(32, 32), occluders="cables")


@pytest.mark.parametrize("kind", OCCLUDERS)
def test_occluders_are_thin_and_far_in_front(kind):
    kw = dict(shape=(128, 160), n_frames=6, seed=5, noise=0.0, breathing=0.0, max_rotation_deg=0.0, max_shift=0.0)
    plain = make_stack("rocks", **kw)
    stack = make_stack("rocks", occluders=kind, **kw)
    strands = stack.depth_index < 0.5
    assert 0.003 < strands.mean() < 0.25
    # thin: nearly every strand pixel is within a few px of something that is not strand
    # (a tuft of bristles is thicker where they cross at its root)
    assert ndi.binary_erosion(strands, iterations=4).sum() < 0.1 * strands.sum()
    # far in front of the background, which keeps its own depth
    assert np.median(stack.depth_index[~strands]) > 2.5
    assert np.abs(stack.truth[strands].astype(int) - plain.truth[strands].astype(int)).mean() > 10
    # frame 0 is focused on them: sharper there than the frame focused farthest
    lap = [np.abs(ndi.laplace(f.astype(np.float32).mean(axis=2))) for f in (stack.frames[0], stack.frames[-1])]
    assert lap[0][strands].mean() > 1.5 * lap[1][strands].mean()


def test_shot_noise_grows_with_brightness():
    kw = dict(shape=(96, 128), n_frames=2, seed=3, noise=0.0, gray=True, dtype=np.uint16,
              breathing=0.0, max_rotation_deg=0.0, max_shift=0.0, gain_range=0.0)
    clean = make_stack("camera", **kw)
    noisy = make_stack("camera", photons=200.0, **kw)
    ref = clean.reference
    err = noisy.frames[ref].astype(np.float64) - clean.frames[ref].astype(np.float64)
    level = clean.frames[ref].astype(np.float64) / 65535
    dark, bright = level < 0.2, level > 0.6
    # Poisson: variance proportional to the signal, sigma = sqrt(v / photons)
    assert err[bright].std() > 1.5 * err[dark].std()
    assert err[bright].std() / 65535 == pytest.approx(np.sqrt(level[bright].mean() / 200.0), rel=0.25)


def test_jpeg_round_trip_changes_frames_a_little():
    plain = make_stack("coffee", shape=(64, 96), n_frames=3, seed=2)
    jpeg = make_stack("coffee", shape=(64, 96), n_frames=3, seed=2, jpeg_quality=80)
    diff = np.abs(plain.frames[0].astype(int) - jpeg.frames[0].astype(int))
    assert 0 < diff.mean() < 6


# -- geometry ------------------------------------------------------------------


def test_transforms_within_requested_ranges():
    shape = (120, 160)
    stack = make_stack("coins", shape=shape, n_frames=9, seed=7, breathing=0.03,
                       max_rotation_deg=0.5, max_shift=4.0)
    np.testing.assert_array_equal(stack.transforms[stack.reference], np.eye(3))
    parts = [decompose(m, shape) for m in stack.transforms]
    scales = np.array([p[0] for p in parts])
    assert np.all(np.diff(scales) > 0), "breathing grows monotonically with the frame index"
    assert 0.02 <= scales.max() / scales.min() - 1 <= 0.04
    for k, (_scale, angle, shift) in enumerate(parts):
        assert abs(angle) <= 0.5 + 1e-9
        assert np.all(np.abs(shift) <= 4.0 + 1e-9)
        np.testing.assert_allclose(stack.transforms[k][2], [0, 0, 1])
    assert any(abs(p[1]) > 0.05 for p in parts), "rotations are actually drawn"


def test_warp_helper_round_trip():
    # The (x, y) <-> (row, col) swap in the test helper: a pure shift by (+3 x, -2 y).
    image = np.zeros((20, 30), np.float32)
    image[10, 12] = 1.0
    matrix = np.array([[1.0, 0, 3.0], [0, 1.0, -2.0], [0, 0, 1]])
    frame = np.zeros_like(image)
    frame[10 - 2, 12 + 3] = 1.0  # the point seen in the frame
    back = warp_to_reference(frame, matrix, image.shape, order=0, cval=0.0)
    np.testing.assert_array_equal(back, image)


def test_frames_are_in_their_transformed_geometry(moving_stack):
    """In-focus textured pixels of every frame, warped back, match the truth."""
    stack = moving_stack
    truth = gray(stack.truth) / 255
    interior = np.zeros(truth.shape, bool)
    interior[10:-10, 10:-10] = True
    for k, (frame, matrix) in enumerate(zip(stack.frames, stack.transforms, strict=False)):
        back = gray(warp_to_reference(frame, matrix, truth.shape, order=3)) / 255
        back /= stack.gains[k].mean()
        sharp = interior & stack.texture_mask & (np.abs(stack.depth_index - k) < 0.2)
        sharp = ndi.binary_erosion(sharp, iterations=2)
        if sharp.sum() < 50:
            continue
        err = np.abs(back - truth)[sharp].mean()
        # Nearly exact with the right convention, ~0.1 with a wrong one.
        assert err < 0.03, (k, err)


# -- optics --------------------------------------------------------------------


def test_depth_index_and_focus_positions(moving_stack):
    stack = moving_stack
    n = stack.n_frames
    assert stack.depth_index.min() >= 0 and stack.depth_index.max() <= n - 1
    assert stack.depth_index.min() < 0.5 and stack.depth_index.max() > n - 1.5
    fp = stack.focus_positions
    np.testing.assert_allclose(np.diff(fp), fp[1] - fp[0])
    assert fp[0] >= stack.depth.min() - 1e-6 and fp[-1] <= stack.depth.max() + 1e-6
    expected = np.clip((stack.depth - fp[0]) / (fp[1] - fp[0]), 0, n - 1)
    np.testing.assert_allclose(stack.depth_index, expected, atol=1e-4)
    # A sharp depth discontinuity exists (the raised object's outline).
    jump = np.abs(np.diff(stack.depth_index, axis=1)).max()
    assert jump > 1.5


def test_in_focus_frame_is_sharpest(moving_stack):
    stack = moving_stack
    n, shape = stack.n_frames, stack.depth_index.shape
    energies = []
    for frame, matrix in zip(stack.frames, stack.transforms, strict=False):
        back = gray(warp_to_reference(frame, matrix, shape, order=3)) / 255
        back = np.nan_to_num(back)
        lap = ndi.laplace(ndi.gaussian_filter(back, 0.7))
        energies.append(ndi.uniform_filter(lap * lap, 7))
    energies = np.stack(energies)
    di = stack.depth_index
    # Textured pixels away from borders and from depth discontinuities.
    edges = ndi.maximum_filter(di, 15) - ndi.minimum_filter(di, 15) > 1.0
    valid = stack.texture_mask & ~edges
    valid[:14], valid[-14:], valid[:, :14], valid[:, -14:] = False, False, False, False
    nearest = np.clip(np.rint(di), 0, n - 1).astype(int)
    wins = total = 0
    for offset in (-3, 3):
        other = nearest + offset
        ok = valid & (other >= 0) & (other <= n - 1)
        e_near = np.take_along_axis(energies, nearest[None], 0)[0][ok]
        e_other = np.take_along_axis(energies, np.clip(other, 0, n - 1)[None], 0)[0][ok]
        wins += int((e_near > e_other).sum())
        total += int(ok.sum())
    assert total > 1000
    assert wins / total > 0.95


def test_near_object_blur_spills_over_background(still_stack):
    """Occlusion: a defocused near object veils the background behind its outline,
    while a defocused background never veils a sharp near object."""
    stack = still_stack
    n = stack.n_frames
    di = stack.depth_index
    truth = stack.truth.astype(np.float32) / 255
    near = di < 1.2
    assert near.any() and (di > 3).any()
    dist_out = ndi.distance_transform_edt(~near)  # distance from the near object, outside
    dist_in = ndi.distance_transform_edt(near)  # distance from the outline, inside

    def error(frame):
        return np.abs(frame.astype(np.float32) / 255 - truth).mean(axis=2)

    # Each pixel seen in the frame focused nearest to it.
    nearest = np.clip(np.rint(di), 0, n - 1).astype(int)
    err_focus = np.zeros(di.shape, np.float32)
    for k, frame in enumerate(stack.frames):
        err_focus[nearest == k] = error(frame)[nearest == k]
    # In-focus background just outside the (then defocused) object gets its blur.
    background = di > 3.5
    ring = background & (dist_out >= 1) & (dist_out <= 3)
    away = background & (dist_out > 15) & stack.texture_mask
    assert ring.sum() > 20 and away.sum() > 100
    assert err_focus[ring].mean() > 3 * err_focus[away].mean()
    # The object, in focus, stays sharp right up to its outline: the blurred
    # background behind it does not spill over it.
    inner = near & (dist_in >= 1) & (dist_in <= 3)
    centre = near & (dist_in > 6) & stack.texture_mask
    assert inner.sum() > 20 and centre.sum() > 20
    assert err_focus[inner].mean() < 0.03
    assert err_focus[inner].mean() < 2 * err_focus[centre].mean() + 0.01


def test_blur_grows_with_defocus(still_stack):
    """Frames further from a pixel's focus differ more from the truth."""
    stack = still_stack
    truth = gray(stack.truth) / 255
    band = stack.texture_mask & (np.abs(stack.depth_index - 6) < 0.3)
    errs = [np.abs(gray(f) / 255 - truth)[band].mean() for f in stack.frames]
    assert errs[6] < errs[5] < errs[4] < errs[3] < errs[2]
    assert errs[6] < 0.01


# -- oracle and files ------------------------------------------------------------


def test_oracle_composite_reaches_truth():
    stack = make_stack("astronaut", shape=(192, 256), n_frames=8, seed=3, noise=0.0)
    calls = []

    def warp(image, matrix, out_shape):
        assert image.dtype == np.float32 and image.max() <= 1.1  # gain undone
        calls.append(matrix)
        return warp_to_reference(image, matrix, out_shape, order=1, cval=np.nan)

    fused = oracle_composite(stack, warp)
    assert len(calls) == stack.n_frames
    assert fused.shape == stack.truth.shape and fused.dtype == np.float32
    assert not np.isnan(fused).any()
    assert fused.min() >= 0 and fused.max() <= 1
    truth = stack.truth.astype(np.float32) / 255
    assert psnr(fused, truth) > 30
    # Much better than any single frame.
    best_single = max(psnr(warp_to_reference(f / 255, m, truth.shape[:2], cval=np.nan), truth)
                      for f, m in zip(stack.frames, stack.transforms, strict=False))
    assert psnr(fused, truth) > best_single + 3


def test_oracle_composite_falls_back_to_a_valid_frame():
    stack = make_stack("checker", shape=(64, 80), n_frames=4, seed=0, noise=0.0,
                       gray=True, breathing=0.0, max_rotation_deg=0.0, max_shift=0.0,
                       gain_range=0.0)

    calls = []

    def warp(image, matrix, out_shape):
        out = image.astype(np.float32).copy()
        if len(calls) != stack.reference:
            out[:, :20] = np.nan  # other frames miss the left strip
        calls.append(matrix)
        return out

    fused = oracle_composite(stack, warp)
    assert not np.isnan(fused).any()
    ref = stack.frames[stack.reference].astype(np.float32) / 255
    np.testing.assert_allclose(fused[:, :20], ref[:, :20], atol=1e-6)
    # Elsewhere, the usual interpolation between the bracketing frames.
    di = stack.depth_index[:, 20:]
    lo = np.floor(di).astype(int)
    hi = np.minimum(lo + 1, stack.n_frames - 1)
    frames = np.stack(stack.frames).astype(np.float32)[:, :, 20:] / 255
    rows, cols = np.indices(di.shape)
    expected = (1 - (di - lo)) * frames[lo, rows, cols] + (di - lo) * frames[hi, rows, cols]
    np.testing.assert_allclose(fused[:, 20:], expected, atol=1e-5)


@pytest.mark.parametrize(
    "fmt, kwargs",
    [
        ("jpg", {}),
        ("png", {}),
        ("tif", {"dtype": np.uint16}),
        ("png", {"gray": True, "dtype": np.uint16}),
    ],
)
def test_save_stack_writes_readable_files(tmp_path, fmt, kwargs):
    import tifffile
    from PIL import Image

    stack = make_stack("pcb", shape=(48, 64), n_frames=3, seed=0, **kwargs)
    paths = save_stack(stack, tmp_path / "out", fmt=fmt, quality=90)
    assert [p.name for p in paths] == [f"frame_{i:03d}.{fmt}" for i in (1, 2, 3)]
    for path, frame in zip(paths, stack.frames, strict=False):
        assert path.is_file()
        if fmt == "tif":
            data = tifffile.imread(path)
        else:
            with Image.open(path) as image:
                data = np.asarray(image)
        assert data.shape == frame.shape
        if fmt == "jpg":
            assert np.abs(data.astype(int) - frame.astype(int)).mean() < 8
        else:
            np.testing.assert_array_equal(data.astype(frame.dtype), frame)


def test_save_stack_refuses_formats_that_cannot_hold_the_data(tmp_path):
    stack = make_stack("pcb", shape=(32, 32), n_frames=2, dtype=np.uint16)
    with pytest.raises(ValueError, match="tif"):
        save_stack(stack, tmp_path, fmt="jpg")
    with pytest.raises(ValueError, match="format"):
        save_stack(stack, tmp_path, fmt="bmp")
