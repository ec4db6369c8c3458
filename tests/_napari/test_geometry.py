"""Where a layer's z axis is and where results go (pure functions; one check in a ViewerModel)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_focus_stack._napari.geometry import (
    default_z_axis,
    hyperstack_letters,
    placement,
    to_layer_layout,
    unstackable_reason,
    z_axis_candidates,
)


@pytest.mark.parametrize(
    ("shape", "labels", "z"),
    [
        ((30, 64, 64), None, 0),
        ((5, 30, 64, 64), ("t", "z", "y", "x"), 1),
        ((30, 5, 64, 64), ("z", "t", "y", "x"), 0),  # the label wins over the position
        ((5, 30, 64, 64), ("axis -4", "axis -3", "axis -2", "axis -1"), 1),  # unlabelled: the longest
        ((9, 2, 64, 64), ("-4", "-3", "-2", "-1"), 0),  # napari's reader on a ZCYX file: not the 2 channels
        ((5, 30, 1, 64, 64), None, 1),  # a slider of one plane is no z axis
        ((30, 5, 64, 64), ("a", "t", "y", "x"), 0),  # a slider labelled t is time
        ((64, 64), None, None),
    ],
)
def test_default_z_axis(shape, labels, z):
    assert default_z_axis(shape, labels) == z


def test_a_z_like_slider_wins_over_a_longer_one():
    shape = (20, 6, 64, 64)  # 20 time points, 6 planes, no labels
    assert default_z_axis(shape) == 0
    assert default_z_axis(shape, scale=(1.0, 0.5, 0.1, 0.1)) == 1  # a scale of its own
    assert default_z_axis(shape, units=("second", "µm", "µm", "µm")) == 1  # a length unit
    assert default_z_axis(shape, scale=(2.0, 0.5, 0.1, 0.1), units=("pixel", "µm", "µm", "µm")) == 1


def test_candidates_are_the_sliders():
    assert z_axis_candidates(4) == [0, 1] and z_axis_candidates(2) == []


def test_unstackable_reasons():
    assert "no z axis" in unstackable_reason((64, 64))
    assert "single frame" in unstackable_reason((1, 64, 64))
    assert "single frame" in unstackable_reason((1, 1, 64, 64))
    assert unstackable_reason((1, 2, 64, 64)) is None


def test_letters():
    assert hyperstack_letters(3, 0) == "ZYX"
    assert hyperstack_letters(5, 2, ("t", "c", "z", "y", "x")) == "TCZYX"
    assert hyperstack_letters(4, 1, ("t", "z", "y", "x"), rgb=True) == "TZYXS"
    assert hyperstack_letters(5, 1, ("t", "z", "t", "y", "x")) == "TZPYX"  # letters never repeat
    with pytest.raises(ValueError):
        hyperstack_letters(3, 1)


def test_placement_keeps_sliders_and_spans_the_z_range():
    p = placement((4, 6, 32, 40), [1], scale=(2.0, 0.5, 0.1, 0.1), translate=(0.0, 3.0, 1.0, 2.0),
                  units=("s", "µm", "µm", "µm"), axis_labels=("t", "z", "y", "x"))
    assert p.axes == (0, 1, 2, 3) and p.collapsed == (1,)
    assert p.scale == (2.0, 3.0, 0.1, 0.1)
    # the single plane's centre is the middle of the z planes 3.0 .. 5.5, its extent all of them
    assert p.translate == (0.0, 4.25, 1.0, 2.0)
    assert p.units == ("s", "µm", "µm", "µm") and p.axis_labels == ("t", "z", "y", "x")
    assert p.kwargs()["units"] == p.units
    lead = placement((6, 32, 40), [0], scale=(0.5, 0.1, 0.1), units=("µm",) * 3)
    assert lead.axes == (1, 2) and lead.collapsed == () and lead.units == ("µm", "µm")
    assert "axis_labels" not in lead.kwargs()
    # a height map of a layer with channels lacks z and c: (C, Z, Y, X) -> (Y, X)
    assert placement((2, 6, 32, 40), [0, 1]).axes == (2, 3)


def test_layout():
    tcyx = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    out = to_layer_layout(tcyx, "TCYX", "TZCYX", [0, 1, 2, 3, 4])
    assert out.shape == (2, 1, 3, 4, 5)
    np.testing.assert_array_equal(out[:, 0], tcyx)
    rgb = np.zeros((2, 4, 5, 3))
    assert to_layer_layout(rgb, "TYXS", "TZYXS", [0, 1, 2, 3]).shape == (2, 1, 4, 5, 3)
    ctyx = to_layer_layout(tcyx, "TCYX", "CTZYX", [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(ctyx[:, :, 0], tcyx.transpose(1, 0, 2, 3))
    with pytest.raises(ValueError, match="does not keep"):
        to_layer_layout(tcyx, "TCYX", "TZYX", [0, 1, 2, 3])


def test_placed_results_show_at_every_slider_position_with_consistent_units():
    """In napari: a (T, 1, Y, X) result beside its (T, Z, Y, X) input, on the input's T slider."""
    pytest.importorskip("napari")
    from napari.components import ViewerModel

    viewer = ViewerModel()
    shape, scale, translate = (3, 5, 8, 10), (1.0, 0.5, 0.1, 0.1), (0.0, 2.0, 0.0, 0.0)
    units, labels = ("s", "µm", "µm", "µm"), ("t", "z", "y", "x")
    viewer.add_image(np.zeros(shape), scale=scale, translate=translate, units=units, axis_labels=labels)
    data = np.arange(3.0)[:, None, None, None] * np.ones((3, 1, 8, 10))  # value = time point
    p = placement(shape, [1], scale, translate, units, labels)
    result = viewer.add_image(to_layer_layout(data[:, 0], "TYX", "TZYX", p.axes), **p.kwargs())
    # consistent: napari has nothing to warn about (inconsistent units give None)
    assert [str(u) for u in viewer.layers.units] == ["second", "micrometer", "micrometer", "micrometer"]
    for t in range(3):
        for z in range(5):
            viewer.dims.set_point(0, t)
            viewer.dims.set_point(1, translate[1] + scale[1] * z)
            view = result._slice.image.view
            assert view.shape == (8, 10) and np.all(view == t), (t, z)
