"""Reused alignment across a turntable scan: evenly spaced calibration, median, fit check."""
from __future__ import annotations

import numpy as np
import pytest

from napari_focus_stack.align import corner_error
from napari_focus_stack.batch.calibration import calibration_indices, check_reused_alignment, combine_transforms
from napari_focus_stack.stacker import FocusStacker
from napari_focus_stack.synthetic import make_turntable_scan

SHAPE = (120, 160)


@pytest.fixture(scope="module")
def scan():
    """4 positions x 5 frames; position 1 was bumped while it was taken."""
    return make_turntable_scan(4, 5, SHAPE, scenes=("pcb", "rocks"), seed=3, disturbed=(1,), jitter=0.05)


@pytest.fixture(scope="module")
def estimates(scan):
    stacker = FocusStacker(device="cpu")
    return [stacker.estimate_transforms(p.frames)[0] for p in scan.positions]


def worst(mats, truth) -> float:
    return max(corner_error(m, t, SHAPE) for m, t in zip(mats, truth, strict=False) if m is not None)


def test_calibration_positions_are_evenly_spaced():
    assert calibration_indices(36, 3) == [0, 18, 35]
    assert calibration_indices(10, 4) == [0, 3, 6, 9]
    assert calibration_indices(2, 3) == [0, 1] and calibration_indices(7, 1) == [0]


def test_median_is_robust_to_one_bad_calibration_position(scan, estimates):
    calib = [estimates[i] for i in (0, 1, 2)]  # position 1 moved by 6 px
    median = combine_transforms(calib, reference=2)
    mean = [np.mean([c[k] for c in calib], axis=0) for k in range(5)]
    for p in (0, 2, 3):  # the positions that kept the focus sequence
        truth = scan.positions[p].transforms
        assert worst(median, truth) < 0.5
        assert worst(mean, truth) > 1.0  # a mean carries a third of the bad position into every stack


def test_median_is_relative_to_the_reference_and_skips_excluded_frames(estimates):
    # the same alignment, expressed in other reference coordinates (its reference frame is not the identity)
    moved = [m if m is None else m @ np.array([[1, 0, 5.0], [0, 1, -3.0], [0, 0, 1]]) for m in estimates[0]]
    gone = list(estimates[2])
    gone[0] = None
    combined = combine_transforms([moved, estimates[0], gone], reference=2)
    assert np.allclose(combined[2], np.eye(3))
    assert corner_error(combined[0], estimates[0][0], SHAPE) < 1e-9  # frame 0: median of two equal ones
    assert combine_transforms([gone, gone, estimates[0]], reference=2)[0] is None


def test_fit_check_passes_where_the_reused_alignment_fits_and_fails_where_it_does_not(scan, estimates):
    median = combine_transforms([estimates[i] for i in (0, 2, 3)], reference=2)
    for p, stack in enumerate(scan.positions):
        check = check_reused_alignment(stack.frames, median)
        assert check["fits"] is (p != 1), (p, check)
        assert [f["index"] for f in check["frames"]] == [0, 4]
        if p == 1:
            assert check["error_px"] > 3
        else:
            assert check["error_px"] < 0.6
