"""FocusStacker.warp_to_reference: frames brought into reference geometry, one at a time."""
from __future__ import annotations

import numpy as np
import pytest

from napari_focus_stack import FocusStacker, StackError
from napari_focus_stack.io import FrameSource
from napari_focus_stack.synthetic import make_stack

SHAPE = (96, 128)
INNER = (slice(8, -8), slice(8, -8))  # away from the borders a breathing frame does not cover


@pytest.fixture(scope="module")
def sharp_stack():
    """Strong breathing, shifts and rotation; no blur, noise or exposure change.

    Every frame is then the all-in-focus truth seen through its transform, so
    a frame warped back by that transform equals the truth up to resampling.
    """
    return make_stack(
        "checker", shape=SHAPE, n_frames=5, seed=7, max_blur=3.0, breathing=0.08, max_rotation_deg=2.0,
        max_shift=4.0, gain_range=0.0, noise=0.0,
    )


def _err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a[INNER].astype(float) - b[INNER].astype(float)).mean())


def test_true_transforms_line_frames_up_with_the_reference(sharp_stack):
    st = sharp_stack
    ref = st.frames[st.reference]
    aligned = list(FocusStacker(device="cpu").warp_to_reference(st.frames, st.transforms))
    assert len(aligned) == len(st.frames)
    np.testing.assert_array_equal(aligned[st.reference], ref)  # identity: untouched
    for k, (raw, warped) in enumerate(zip(st.frames, aligned, strict=True)):
        assert warped.shape == ref.shape and warped.dtype == ref.dtype
        if k == st.reference:
            continue
        # compare edges, not blur: gradients of the warped frame sit where the reference's do
        gy_w, gy_r, gy_raw = (np.gradient(a.astype(float).mean(axis=2))[0] for a in (warped, ref, raw))
        corr_w = np.corrcoef(gy_w[INNER].ravel(), gy_r[INNER].ravel())[0, 1]
        corr_raw = np.corrcoef(gy_raw[INNER].ravel(), gy_r[INNER].ravel())[0, 1]
        assert corr_w > 0.7 and corr_w > corr_raw + 0.2, (k, corr_w, corr_raw)


def test_estimated_transforms_undo_the_breathing(sharp_stack):
    st = sharp_stack
    stacker = FocusStacker(device="cpu")
    result = stacker.stack(st.frames)
    aligned = list(stacker.warp_to_reference(st.frames, result.transforms))
    truth_aligned = list(stacker.warp_to_reference(st.frames, st.transforms))
    for k in (0, len(st.frames) - 1):  # the frames with the most breathing
        raw = _err(st.frames[k], truth_aligned[k])
        assert _err(aligned[k], truth_aligned[k]) < 0.25 * raw, k


def test_pixels_the_frame_does_not_cover_are_zero_and_excluded_frames_none(backend):
    frames = [np.full((40, 50, 3), 1000, np.uint16) for _ in range(3)]
    shift = np.array([[1.0, 0, 10], [0, 1, 0], [0, 0, 1]])  # reference x -> frame x + 10
    out = list(FocusStacker(device=backend).warp_to_reference(frames, [np.eye(3), shift, None]))
    assert all(isinstance(a, np.ndarray) for a in out[:2])  # host arrays, whatever the device
    np.testing.assert_array_equal(out[0], frames[0])
    assert out[1].dtype == np.uint16
    assert (out[1][:, :40] == 1000).all()  # source x 10..49: on the frame
    assert (out[1][:, 40:] == 0).all()  # source x >= 50: beyond its last column
    assert out[2] is None


def test_upscaled_output_matches_the_fused_geometry(sharp_stack):
    st = sharp_stack
    stacker = FocusStacker(device="cpu", scale_factor=2, upscale_output=True)
    frames = st.frames[:3]
    result = stacker.stack(frames)
    aligned = list(stacker.warp_to_reference(frames, result.transforms))
    assert all(a.shape == result.image.shape for a in aligned)
    assert result.image.shape[:2] == (2 * SHAPE[0], 2 * SHAPE[1])
    # the reference frame, upsampled, still lines up with the reference (same centre of every pixel)
    ref = result.report.reference
    down = aligned[ref].astype(float).reshape(SHAPE[0], 2, SHAPE[1], 2, -1).mean(axis=(1, 3))
    assert _err(down, frames[ref]) < 6


def test_frames_are_read_one_at_a_time():
    base = make_stack("checker", shape=(48, 64), n_frames=4, seed=1, gray=True)
    reads: list[int] = []
    src = FrameSource.from_inputs(base.frames)

    def reader(k):
        def read():
            reads.append(k)
            return src.read(k)
        return read

    source = FrameSource([reader(k) for k in range(4)], [src.meta(k) for k in range(4)], src.names)
    frames = FocusStacker(device="cpu").warp_to_reference(source, [np.eye(3)] * 4)
    assert reads == []  # nothing read before it is asked for
    next(frames)
    assert reads == [0]
    assert len(list(frames)) == 3 and reads == [0, 1, 2, 3]


def test_transform_count_must_match():
    frames = [np.zeros((32, 32), np.uint8)] * 3
    with pytest.raises(StackError, match="2 transforms were given for a stack of 3 frames"):
        FocusStacker(device="cpu").warp_to_reference(frames, [np.eye(3)] * 2)
