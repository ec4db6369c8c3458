"""The Focus stack widget on microscope data: 4-D layers, channel layers, calibration, the 3D height view."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from napari_focus_stack._napari import layer_metadata as md
from napari_focus_stack._napari.channel_picker import ALL_CHANNELS
from napari_focus_stack.synthetic import make_hyperstack

from .conftest import results_by_role, run_and_wait

pytestmark = pytest.mark.napari

SHAPE = (64, 80)
N_Z, N_T = 6, 3
Z0, DZ, DXY = 2.0, 0.5, 0.1  # µm


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("patches", shape=SHAPE, n_z=N_Z, n_t=N_T, n_c=2, seed=3)


def _tzyx_layer(viewer, hyper, **kwargs):
    defaults = dict(
        name="cells", scale=(1.0, DZ, DXY, DXY), translate=(0.0, Z0, 0.0, 0.0),
        units=("second", "µm", "µm", "µm"), axis_labels=("t", "z", "y", "x"),
    )
    return viewer.add_image(hyper.data[:, 0], **{**defaults, **kwargs})


class _UnitWarnings:
    """napari's "Inconsistent units across layers" (a notification from the canvas, or a Python warning)."""

    def __enter__(self):
        from napari.utils.notifications import notification_manager

        self._records = notification_manager.records
        self._before = len(self._records)
        self._catcher = warnings.catch_warnings(record=True)
        self._warned = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catcher.__exit__(*exc)

    @property
    def messages(self) -> list[str]:
        texts = [n.message for n in self._records[self._before:]] + [str(w.message) for w in self._warned]
        return [t for t in texts if "units" in t.lower()]


def test_tzyx_layer_fuses_every_time_point_and_keeps_sliders_and_units(viewer, widget, hyper):
    _tzyx_layer(viewer, hyper)
    widget.set_input("cells")
    assert widget.z_combo.axis() == 1  # the axis labelled z
    assert widget.engine.reference.max == N_Z - 1
    assert not widget.aligned_check.isEnabled()  # one z-stack's only
    values = []
    widget.progress_bar.valueChanged.connect(values.append)
    with _UnitWarnings() as unit_warnings:
        assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
        widget._qtbot.wait(100)  # let the canvas draw the new layers
    assert not unit_warnings.messages
    assert values[-1] == widget.progress_bar.maximum() == 2 * N_Z * N_T
    res = results_by_role(viewer, "cells")
    (fused,), (depth,), (conf,) = res["fused"], res["depth"], res["confidence"]
    assert fused.name == "cells fused" and fused.data.shape == (N_T, 1, *SHAPE) and fused.data.dtype == np.uint16
    assert depth.data.shape == conf.data.shape == (N_T, 1, *SHAPE) and depth.data.dtype == np.float32
    for layer in (fused, depth, conf):
        # the input's t, y, x scale and units; one z plane spanning the input's z range
        assert tuple(layer.scale) == pytest.approx((1.0, N_Z * DZ, DXY, DXY))
        assert tuple(layer.translate) == pytest.approx((0.0, Z0 + DZ * (N_Z - 1) / 2, 0.0, 0.0))
        assert [str(u) for u in layer.units] == ["second", "micrometer", "micrometer", "micrometer"]
        assert tuple(layer.axis_labels) == ("t", "z", "y", "x")
    assert [str(u) for u in viewer.layers.units] == ["second", "micrometer", "micrometer", "micrometer"]
    # heights in µm: the world z of the sharpest plane, within one z step of the truth
    assert depth.metadata[md.HEIGHT_UNIT] == "µm"
    assert tuple(depth.contrast_limits) == pytest.approx((Z0, Z0 + DZ * (N_Z - 1)))
    truth = Z0 + DZ * hyper.depth_index
    for t in range(N_T):
        within = np.abs(depth.data[t, 0] - truth) <= DZ
        assert within[hyper.texture_mask].mean() > 0.9, t
    assert len(fused.metadata[md.REPORTS]) == N_T
    # the time slider moves the results with the input
    for t in range(N_T):
        viewer.dims.set_point(0, t)
        for z in range(N_Z):
            viewer.dims.set_point(1, Z0 + DZ * z)
            np.testing.assert_array_equal(fused._slice.image.view, fused.data[t, 0])
    assert "3 z-stacks of 6 planes" in widget.status_label.text()


def test_click_on_a_time_point_moves_the_z_slider(viewer, widget, hyper):
    _tzyx_layer(viewer, hyper)
    widget.set_input("cells")
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    depth = results_by_role(viewer, "cells")["depth"][0]
    t = 2
    plane = np.rint((depth.data[t, 0] - Z0) / DZ)
    for frame in (int(plane.min()), int(plane.max())):
        r, c = np.argwhere(plane == frame)[0]
        world = (t, viewer.dims.point[1], r * DXY, c * DXY)
        assert widget.jump_to_sharpest(depth, world) == frame
        assert viewer.dims.point[1] == pytest.approx(Z0 + DZ * frame)
        assert f"frame {frame}" in viewer.status


def test_unlabelled_layer_takes_the_z_axis_the_user_picks(viewer, widget, hyper):
    zt = np.moveaxis(hyper.data[:2, 0], 0, 1)  # (Z, T, Y, X), no labels: z is not next to y
    viewer.add_image(zt, name="zt")
    widget.set_input("zt")
    assert widget.z_combo.count() == 2 and widget.z_combo.isEnabled()
    assert widget.z_combo.axis() == 0  # by default the longest slider (6 planes, not 2)
    widget.set_input("zt", z_axis=1)
    assert not widget.z_warning.isHidden()  # 2 planes beside 6: suspect
    widget.set_input("zt", z_axis=0)
    assert widget.z_warning.isHidden()
    assert widget.engine.reference.max == N_Z - 1
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    res = results_by_role(viewer, "zt")
    fused, depth = res["fused"][0], res["depth"][0]
    assert fused.data.shape == depth.data.shape == (2, *SHAPE)  # z was the first axis: dropped
    assert depth.metadata[md.HEIGHT_UNIT] == "frame" and depth.data.max() <= N_Z - 1
    within = np.abs(depth.data[1] - hyper.depth_index) <= 1
    assert within[hyper.texture_mask].mean() > 0.9


def test_channel_layers_are_fused_with_one_decision(viewer, widget, hyper):
    dapi = hyper.data[0, 0] // 4
    gfp = 2 * dapi + 100  # no overflow: dapi < 16384
    layers = viewer.add_image(
        np.stack([dapi, gfp]), channel_axis=0, name=["DAPI", "GFP"], scale=(DZ, DXY, DXY),
        translate=(Z0, 0, 0), units=("µm",) * 3, axis_labels=("z", "y", "x"),
    )
    layers[1].gamma = 0.8
    widget.set_input("DAPI")
    assert widget.channel_picker.isVisible() or not widget.isVisible()
    assert [layer.name for layer in widget.channel_picker.channel_layers()] == ["DAPI"]  # not ticked yet
    widget.set_input("DAPI", channels=["GFP"], deciding="GFP")
    assert widget.channel_picker.deciding() == 1
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    res = results_by_role(viewer, "DAPI")
    fused = {layer.name: layer for layer in res["fused"]}
    assert set(fused) == {"DAPI fused", "GFP fused"}
    assert [layer.metadata[md.CHANNEL] for layer in res["fused"]] == [0, 1]
    for name, source in zip(["DAPI", "GFP"], layers, strict=True):
        out = fused[f"{name} fused"]
        assert out.colormap.name == source.colormap.name and out.blending == source.blending
        assert tuple(out.contrast_limits) == tuple(source.contrast_limits) and out.gamma == source.gamma
        assert out.data.shape == SHAPE and out.data.dtype == np.uint16
    # every channel from the same plane at every pixel: the relation between them holds in the result
    a = fused["DAPI fused"].data.astype(float)
    b = fused["GFP fused"].data.astype(float)
    assert np.abs(b - (2 * a + 100)).max() <= 2
    assert len(res["depth"]) == 1 and res["depth"][0].metadata[md.HEIGHT_UNIT] == "µm"
    report = res["depth"][0].metadata[md.REPORT]
    assert report["channel_weights"] == [0.0, 1.0]  # GFP decided


def test_channel_layers_of_one_file_are_ticked_and_all_channels_decide(viewer, widget, hyper):
    group = {md.CHANNEL_GROUP: "cells.tif"}
    for c, name in enumerate(["a", "b"]):
        viewer.add_image(hyper.data[0, c], name=name, metadata=dict(group), blending="additive")
    viewer.add_image(hyper.data[0, 0], name="other")  # same shape, from no file: not one of its channels
    viewer.add_image(hyper.data[0, 0, :, :32], name="small")  # another shape: not offered
    widget.set_input("a")
    picker = widget.channel_picker
    assert [picker.list.item(k).text() for k in range(picker.list.count())] == ["b"]
    assert [layer.name for layer in picker.channel_layers()] == ["a", "b"]
    assert picker.deciding_combo.currentText() == ALL_CHANNELS and picker.deciding() is None
    with pytest.raises(ValueError, match="small"):
        widget.set_input("a", channels=["small"])


def test_layers_that_cannot_be_stacked_say_why(viewer, widget):
    from napari.utils.notifications import notification_manager

    viewer.add_image(np.zeros((32, 40), np.uint16), name="photo")
    viewer.add_image(np.zeros((1, 32, 40), np.uint16), name="one")
    assert widget.input_combo.count() == 0
    text = widget.status_label.text()
    assert "'photo' is a single 2-D image (no z axis)" in text
    assert "'one' is a single frame" in text
    before = len(notification_manager.records)
    widget.run_button.click()
    messages = [n.message for n in notification_manager.records[before:]]
    assert any("Nothing to stack" in m and "'one' is a single frame" in m for m in messages), messages


def test_a_z_axis_of_one_plane_is_refused_with_the_reason(viewer, widget, hyper):
    from napari.utils.notifications import notification_manager

    viewer.add_image(hyper.data[:, 0, :1], name="flat", axis_labels=("t", "z", "y", "x"))  # T=3, Z=1
    widget.set_input("flat")
    assert widget.z_combo.axis() == 1
    before = len(notification_manager.records)
    widget.run_button.click()
    messages = [n.message for n in notification_manager.records[before:]]
    assert any("single plane along 'z'" in m for m in messages), messages
    assert widget.worker is None


def test_show_height_in_3d(viewer, widget, hyper):
    cells = _tzyx_layer(viewer, hyper)
    widget.set_input("cells")
    assert not widget.surface_button.isEnabled()
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    assert widget.surface_button.isEnabled()
    viewer.dims.set_point(0, 1)  # the second time point
    with _UnitWarnings() as unit_warnings:
        with widget._qtbot.waitSignal(widget.height_view.shown, timeout=30000):
            widget.surface_button.click()
        widget._qtbot.wait(100)
    assert not unit_warnings.messages
    surface = viewer.layers["cells height 3D"]
    assert surface.metadata[md.ROLE] == "surface" and viewer.dims.ndisplay == 3
    vertices, faces, values = surface.data
    depth = results_by_role(viewer, "cells")["depth"][0]
    fused = results_by_role(viewer, "cells")["fused"][0]
    h, w = SHAPE
    # one mesh per time point, (t, z, y, x), each at its t: small, so not decimated
    assert surface.ndim == 4 and vertices.shape == (N_T * h * w, 4)
    assert len(faces) == N_T * 2 * (h - 1) * (w - 1)
    assert (np.ptp(vertices[faces][:, :, 0], axis=1) == 0).all()  # no triangle joins two time points
    for t in range(N_T):
        at = vertices[:, 0] == t
        assert at.sum() == h * w
        # physical units: z is the height (µm) at t, y and x the pixel size times the index
        np.testing.assert_allclose(vertices[at, 1], depth.data[t, 0].ravel(), rtol=1e-6)
        np.testing.assert_allclose(values[at], fused.data[t, 0].ravel())
    assert vertices[:, 2].max() == pytest.approx((h - 1) * DXY) and vertices[:, 3].max() == pytest.approx((w - 1) * DXY)
    assert [str(u) for u in surface.units] == ["second"] + ["micrometer"] * 3
    assert tuple(surface.axis_labels) == ("t", "z", "y", "x")
    # it follows the time slider: what is drawn is the height map of the slider's time point
    for t in (1, 2):
        viewer.dims.set_point(0, t)
        shown = np.asarray(surface._view_vertices)
        assert len(shown) == h * w
        np.testing.assert_allclose(np.sort(shown[:, 0]), np.sort(depth.data[t, 0].ravel()), rtol=1e-6)
    assert not cells.visible and not fused.visible and not depth.visible
    # again: replaced, not added
    n = len(viewer.layers)
    with widget._qtbot.waitSignal(widget.height_view.shown, timeout=30000):
        widget.show_height_3d("cells")
    assert len(viewer.layers) == n


def test_height_3d_of_a_photo_stack_is_in_colour_and_stretched(viewer, widget, stack_layer):
    widget.set_input("stack")
    assert run_and_wait(widget._qtbot, widget) == "done"
    with widget._qtbot.waitSignal(widget.height_view.shown, timeout=30000) as blocker:
        widget.show_height_3d()
    surface = blocker.args[0]
    assert surface.name == "stack height 3D"
    vertices = surface.data[0]
    depth = results_by_role(viewer, "stack")["depth"][0]
    np.testing.assert_allclose(np.sort(vertices[:, 0]), np.sort(depth.data.ravel()), rtol=1e-6)  # frame indices
    stretch = surface.metadata["vertical_exaggeration"]
    assert stretch > 1 and surface.scale[0] == pytest.approx(stretch)  # stretched to be seen, by the layer's scale
    relief = stretch * np.ptp(vertices[:, 0])
    assert relief == pytest.approx(0.2 * max(np.ptp(vertices[:, 1]) + 1, np.ptp(vertices[:, 2]) + 1), rel=0.05)
    assert surface.vertex_colors is not None and surface.vertex_colors.shape == (len(vertices), 4)


def test_photo_stack_with_units_set_by_hand_gives_results_in_those_units(viewer, widget, stack_layer):
    stack_layer.scale = (1.0, 2.5, 2.5)
    stack_layer.units = ("pixel", "mm", "mm")  # z stays in frames: the photo path, EXIF and all
    widget.set_input("stack")
    assert widget.aligned_check.isEnabled()
    with _UnitWarnings() as unit_warnings:
        assert run_and_wait(widget._qtbot, widget) == "done"
        widget._qtbot.wait(100)
    assert not unit_warnings.messages
    res = results_by_role(viewer, "stack")
    for role in ("fused", "depth", "confidence"):
        (layer,) = res[role]
        assert tuple(layer.scale) == (2.5, 2.5) and [str(u) for u in layer.units] == ["millimeter"] * 2
    assert res["depth"][0].metadata[md.HEIGHT_UNIT] == "frame"


def test_calibration_round_trips_through_reader_widget_and_writer(viewer, widget, hyper, tmp_path):
    import tifffile

    path = tmp_path / "cells.tif"
    lut = [np.round(np.outer(rgb, np.arange(256))).astype(np.uint8) for rgb in ((0, 1, 0), (1, 0, 1))]
    tifffile.imwrite(path, np.ascontiguousarray(hyper.data[:2].transpose(0, 2, 1, 3, 4)), imagej=True,
                     resolution=(1 / DXY, 1 / DXY),
                     metadata={"axes": "TZCYX", "unit": "micron", "spacing": DZ, "mode": "composite", "LUTs": lut})
    first, second = viewer.open(str(path), plugin="napari-focus-stack")
    widget.set_input(first.name)
    # the channels of one file are fused together by default
    assert [layer.name for layer in widget.channel_picker.channel_layers()] == [first.name, second.name]
    with _UnitWarnings() as unit_warnings:
        assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
        widget._qtbot.wait(100)
    assert not unit_warnings.messages
    res = results_by_role(viewer, first.name)
    fused, depth = res["fused"][1], res["depth"][0]
    assert fused.name == f"{second.name} fused" and fused.colormap.name == "magenta"
    assert fused.data.shape == depth.data.shape == (2, 1, *SHAPE)
    truth = DZ * hyper.depth_index  # ImageJ files start at z = 0
    assert (np.abs(depth.data[1, 0] - truth) <= DZ)[hyper.texture_mask].mean() > 0.9
    written = {}
    for layer, name in ((fused, "fused.tif"), (depth, "height.tif")):
        (written[name],) = layer.save(str(tmp_path / name), plugin="napari-focus-stack")
    with tifffile.TiffFile(written["fused.tif"]) as tif:  # what Fiji reads
        assert tif.series[0].axes == "TYX" and tif.imagej_metadata["unit"] == "micron"
        x_res = tif.pages[0].tags["XResolution"].value
        assert x_res[1] / x_res[0] == pytest.approx(DXY)
        np.testing.assert_array_equal(tif.asarray(), fused.data[:, 0])
    with tifffile.TiffFile(written["height.tif"]) as tif:
        assert tif.imagej_metadata["vunit"] == "micron" and tif.imagej_metadata["unit"] == "micron"
        np.testing.assert_array_equal(tif.asarray(), depth.data[:, 0])


def test_progress_names_the_time_point_and_cancel_stops(viewer, widget, hyper, monkeypatch):
    from napari_focus_stack._napari import stack_widget

    _tzyx_layer(viewer, hyper)
    widget.set_input("cells")
    stages = []
    # every progress report reaches the GUI thread (the bar itself shows the latest at most every 200 ms)
    widget._bridge.progress.connect(lambda done, total, stage: stages.append(stage))
    real_job = stack_widget._stack_job

    def job_cancelled_in_t2(job, options, cancel, progress):
        # cancel (what the Cancel button sets) once the second time point is being fused, from the
        # worker itself: a loaded machine may deliver the GUI's click after the third has begun
        def tick(done, total, stage):
            progress(done, total, stage)
            if done > 2 * N_Z + N_Z:
                widget._cancel.set()
        return real_job(job, options, cancel, tick)

    monkeypatch.setattr(stack_widget, "_stack_job", job_cancelled_in_t2)
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "cancelled"
    assert any(s.startswith("T 1/3: ") for s in stages) and any(s.startswith("T 2/3: ") for s in stages), stages
    assert not any(s.startswith("T 3/3: ") for s in stages), "the run went on after the cancel"
    assert not results_by_role(viewer, "cells") and widget.status_label.text() == "Cancelled."


def test_a_channel_axis_in_one_layer_is_fused_with_one_decision(viewer, widget, hyper):
    czyx = hyper.data[0] // 4
    czyx[1] = 2 * czyx[0] + 100
    viewer.add_image(czyx, name="cz", axis_labels=("c", "z", "y", "x"))
    widget.set_input("cz")
    assert widget.z_combo.axis() == 1
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    res = results_by_role(viewer, "cz")
    fused, depth = res["fused"][0], res["depth"][0]
    assert fused.data.shape == (2, 1, *SHAPE) and depth.data.shape == SHAPE  # the height map has no channels
    a, b = fused.data[0, 0].astype(float), fused.data[1, 0].astype(float)
    assert np.abs(b - (2 * a + 100)).max() <= 2
