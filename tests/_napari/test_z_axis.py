"""The Focus stack widget picks the right z axis, warns about a suspect one, and says when a depth map is flat."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from hyperstacks import write_imagej
from napari_focus_stack._napari import layer_metadata as md
from napari_focus_stack.synthetic import make_hyperstack

from .conftest import run_and_wait

pytestmark = pytest.mark.napari

SHAPE = (48, 64)
N_Z = 9


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("patches", shape=SHAPE, n_z=N_Z, n_t=1, n_c=2, seed=3)


def _depth(viewer, key):
    return next(layer for layer in viewer.layers
                if layer.metadata.get(md.INPUT) == key and layer.metadata.get(md.ROLE) == "depth")


def test_a_zcyx_file_opened_by_napari_defaults_to_its_longest_axis(viewer, widget, hyper, tmp_path):
    path = write_imagej(tmp_path / "zc.tif", hyper.data[0], "CZYX")
    (layer,) = viewer.open(str(path), plugin="napari")  # napari's own reader: axes -4..-1, no scale
    assert layer.data.shape == (N_Z, 2, *SHAPE) and tuple(layer.axis_labels) == ("-4", "-3", "-2", "-1")
    widget.set_input(layer.name)
    assert widget.z_combo.axis() == 0  # the 9 planes, not the 2 channels next to y
    assert widget.z_warning.isHidden()
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    assert f"2 z-stacks of {N_Z} planes" in widget.status_label.text()
    depth = _depth(viewer, layer.name)
    assert np.ptp(depth.data) > 2 and "flat" not in widget.status_label.text()
    # the 2 channels picked as z by hand: the widget says it is suspect
    widget.set_input(layer.name, z_axis=1)
    assert not widget.z_warning.isHidden()
    assert widget.z_warning.text() == f"z has 2 planes but axis '-4' has {N_Z}: is that the focus axis?"


def test_a_flat_depth_map_is_reported(viewer, widget):
    from napari.utils.notifications import notification_manager
    from scipy.ndimage import gaussian_filter

    sharp = np.random.default_rng(0).integers(0, 60000, SHAPE).astype(np.float32)
    planes = [sharp, gaussian_filter(sharp, 2), gaussian_filter(sharp, 4)]  # the first is sharpest everywhere
    viewer.add_image(np.stack(planes).astype(np.uint16), name="flat", axis_labels=("z", "y", "x"))
    widget.set_input("flat")
    widget.engine.align.value = "none"
    before = len(notification_manager.records)
    assert run_and_wait(widget._qtbot, widget) == "done"
    depth = _depth(viewer, "flat")
    assert np.ptp(depth.data) == pytest.approx(0, abs=1e-2)
    text = widget.status_label.text()
    assert "the depth map is flat" in text.lower() and "Is 'z' the focus axis?" in text
    messages = [n.message for n in notification_manager.records[before:]]
    assert any("depth map is flat" in m for m in messages), messages


def test_a_z_scale_without_units_gives_heights_in_that_scale(viewer, widget, hyper):
    viewer.add_image(hyper.data[0, 0], name="scaled", scale=(0.5, 0.1, 0.1))  # no units: "pixel"
    widget.set_input("scaled")
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    depth = _depth(viewer, "scaled")
    assert depth.metadata[md.HEIGHT_UNIT] == "pixel"
    assert tuple(depth.contrast_limits) == pytest.approx((0.0, 0.5 * (N_Z - 1)))
    assert 0 <= np.nanmin(depth.data) and np.nanmax(depth.data) <= 0.5 * (N_Z - 1) + 1e-6
    truth = 0.5 * hyper.depth_index
    assert (np.abs(depth.data - truth) <= 0.5)[hyper.texture_mask].mean() > 0.85
    assert "Heights in pixel" in widget.status_label.text()
