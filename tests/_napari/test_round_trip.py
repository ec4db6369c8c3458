"""Results saved with the plugin reopen through it where they were: calibration, z plane, colours, contrast."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from hyperstacks import write_imagej
from napari_focus_stack._napari import layer_metadata as md
from napari_focus_stack.synthetic import make_hyperstack

from .conftest import results_by_role, run_and_wait

pytestmark = pytest.mark.napari

PLUGIN = "napari-focus-stack"
SHAPE = (40, 48)
N_Z, N_T = 5, 2
Z0, DZ, DXY = 2.0, 0.5, 0.1  # µm


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("patches", shape=SHAPE, n_z=N_Z, n_t=N_T, n_c=2, seed=7)


def _units(layer):
    return [str(u) for u in layer.units]


def _same_place(reopened, result):
    assert reopened.data.shape == result.data.shape
    assert tuple(reopened.scale) == pytest.approx(tuple(result.scale))
    assert tuple(reopened.translate) == pytest.approx(tuple(result.translate))
    assert _units(reopened) == _units(result)
    assert tuple(reopened.axis_labels) == tuple(result.axis_labels)


CASES = {
    # input layer: data (from the TCZYX synthetic data), axis labels, scale, translate, units
    "ZYX": (lambda d: d[0, 0], ("z", "y", "x"), (DZ, DXY, DXY), (Z0, 0, 0), ("µm",) * 3),
    "TZYX": (lambda d: d[:, 0], ("t", "z", "y", "x"), (1.5, DZ, DXY, DXY), (0, Z0, 0, 0), ("second",) + ("µm",) * 3),
    "CZYX": (lambda d: d[0], ("c", "z", "y", "x"), (1, DZ, DXY, DXY), (0, Z0, 0, 0), ("",) + ("µm",) * 3),
    "TCZYX": (lambda d: d, ("t", "c", "z", "y", "x"), (1, 1, DZ, DXY, DXY), (0, 0, Z0, 0, 0), ("", "") + ("µm",) * 3),
}


@pytest.mark.parametrize("suffix", [".tif", ".ome.tif"])
@pytest.mark.parametrize("case", list(CASES))
def test_every_result_reopens_calibrated_where_it_was(viewer, widget, hyper, tmp_path, case, suffix):
    data, labels, scale, translate, units = CASES[case]
    viewer.add_image(data(hyper.data), name="cells", axis_labels=labels, scale=scale, translate=translate,
                     units=units)
    widget.set_input("cells")
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    res = results_by_role(viewer, "cells")
    for role in ("fused", "depth", "confidence"):
        (result,) = res[role]
        (path,) = result.save(str(tmp_path / f"{role}{suffix}"), plugin=PLUGIN)
        layers = viewer.open(path, plugin=PLUGIN)
        if role == "fused" and "C" in case:  # channels are layers of their own, napari's convention
            assert len(layers) == 2
            c_axis = labels.index("c")
            # a single z plane that nothing precedes is dropped, as the widget drops it
            lead = 1 if labels[: c_axis] + labels[c_axis + 1:][:1] == ("z",) else 0
            for c, layer in enumerate(layers):
                channel = np.take(result.data, c, axis=c_axis)
                np.testing.assert_array_equal(np.asarray(layer.data), channel[0] if lead else channel)
                assert tuple(layer.scale) == pytest.approx(tuple(np.delete(result.scale, c_axis))[lead:])
                assert tuple(layer.translate) == pytest.approx(tuple(np.delete(result.translate, c_axis))[lead:])
            continue
        (layer,) = layers
        if "c" in result.axis_labels:  # a map's channel slider of one plane: channels are layers, not kept
            kept = [k for k, a in enumerate(result.axis_labels) if a != "c"]
            assert tuple(layer.scale) == pytest.approx(tuple(np.asarray(result.scale)[kept]))
            assert tuple(layer.translate) == pytest.approx(tuple(np.asarray(result.translate)[kept]))
            np.testing.assert_array_equal(np.asarray(layer.data), result.data[:, 0])
        else:
            _same_place(layer, result)
            np.testing.assert_array_equal(np.asarray(layer.data), result.data)
        if role == "depth":  # a height map in µm: turbo over the z range, and saved again as a height map
            assert layer.colormap.name == "turbo"
            assert layer.metadata[md.HEIGHT_UNIT] == "µm" and layer.metadata[md.ROLE] == "depth"
            lo, hi = np.nanmin(result.data), np.nanmax(result.data)
            if suffix == ".tif":  # ImageJ keeps the display range
                assert tuple(layer.contrast_limits) == pytest.approx(tuple(result.contrast_limits))
            else:  # OME-TIFF has no place for it: the map's own range
                assert lo - 1e-6 <= layer.contrast_limits[0] < layer.contrast_limits[1] <= hi + 1e-6
        if role == "confidence":
            assert layer.colormap.name == "gray" and tuple(layer.contrast_limits) == (0.0, 1.0)


def test_a_channel_result_keeps_its_colour_and_the_time_unit(viewer, widget, hyper, tmp_path):
    for c, (name, colour) in enumerate((("DAPI", "blue"), ("GFP", "green"))):
        viewer.add_image(hyper.data[:, c], name=name, colormap=colour, axis_labels=("t", "z", "y", "x"),
                         scale=(30.0, DZ, DXY, DXY), units=("second", "µm", "µm", "µm"))
    widget.set_input("DAPI", channels=["GFP"])
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    gfp = next(layer for layer in results_by_role(viewer, "DAPI")["fused"] if layer.name == "GFP fused")
    for suffix in (".tif", ".ome.tif"):
        (path,) = gfp.save(str(tmp_path / f"gfp{suffix}"), plugin=PLUGIN)
        (layer,) = viewer.open(path, plugin=PLUGIN)
        assert layer.colormap.name == "green" and layer.blending == "additive"  # composes with the other channel
        assert _units(layer)[0] == "second" and layer.scale[0] == pytest.approx(30.0)
        _same_place(layer, gfp)


def test_command_line_results_reopen_over_their_input(viewer, hyper, tmp_path):
    from napari_focus_stack.cli import main

    src = write_imagej(tmp_path / "cells.tif", hyper.data, "TCZYX")  # red and green, 0.1 µm, 0.5 µm
    fused, height = tmp_path / "fused.tif", tmp_path / "height.tif"
    assert main(["stack", str(src), "-o", str(fused), "--depth-map", str(height), "-q"]) == 0
    inputs = viewer.open(str(src), plugin=PLUGIN)
    channels = viewer.open(str(fused), plugin=PLUGIN)
    (heights,) = viewer.open(str(height), plugin=PLUGIN)
    assert [layer.colormap.name for layer in channels] == ["red", "green"]
    for layer in (*channels, heights):
        # (T, 1, Y, X): the single z plane spans the input's z range, so the time points stay on the t slider
        assert layer.data.shape == (N_T, 1, *SHAPE) and tuple(layer.axis_labels) == ("t", "z", "y", "x")
        assert tuple(layer.scale) == pytest.approx((1.0, N_Z * 0.5, 0.1, 0.1))
        assert tuple(layer.translate) == pytest.approx((0.0, 0.5 * (N_Z - 1) / 2, 0.0, 0.0))
        assert _units(layer) == _units(inputs[0])
    assert heights.colormap.name == "turbo" and tuple(heights.contrast_limits) == pytest.approx((0.0, 0.5 * (N_Z - 1)))
    assert heights.metadata[md.HEIGHT_UNIT] == "µm"
