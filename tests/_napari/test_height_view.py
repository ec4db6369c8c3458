"""The 3D height view: exaggerated, tilted, coloured by image or height, built on a worker; saved as a mesh."""
from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("qtpy")

from meshes import read_mesh, read_ply
from napari_focus_stack._napari import layer_metadata as md
from napari_focus_stack.synthetic import make_hyperstack

from .conftest import run_and_wait

pytestmark = pytest.mark.napari

PLUGIN = "napari-focus-stack"
SHAPE = (48, 64)
N_Z, N_T = 5, 2
DZ, DXY = 0.5, 1.0  # µm: a 64 µm field, 2 µm of relief at most


@pytest.fixture(scope="module")
def hyper():
    return make_hyperstack("patches", shape=SHAPE, n_z=N_Z, n_t=N_T, n_c=1, seed=9)


@pytest.fixture
def surface(viewer, widget, hyper):
    """The 3D height view of a calibrated (T, Z, Y, X) layer, shown by a click on the button."""
    viewer.add_image(hyper.data[:, 0], name="cells", axis_labels=("t", "z", "y", "x"), scale=(1, DZ, DXY, DXY),
                     units=("second", "µm", "µm", "µm"))
    widget.set_input("cells")
    assert run_and_wait(widget._qtbot, widget, timeout=120000) == "done"
    with widget._qtbot.waitSignal(widget.height_view.shown, timeout=30000) as blocker:
        widget.surface_button.click()
    return blocker.args[0]


def _depth(viewer):
    return next(layer for layer in viewer.layers if layer.metadata.get(md.ROLE) == "depth")


def test_the_relief_is_exaggerated_to_a_fifth_of_the_field_and_seen_at_a_slant(viewer, widget, surface):
    vertices = surface.data[0]
    z_dim = list(surface.axis_labels).index("z")
    depth = _depth(viewer)
    # the vertices keep true heights (µm); the layer's z scale exaggerates them
    np.testing.assert_allclose(np.sort(vertices[:, z_dim]), np.sort(depth.data.ravel()), rtol=1e-6)
    exaggeration = surface.metadata[md.EXAGGERATION]
    assert surface.scale[z_dim] == pytest.approx(exaggeration) and exaggeration > 3
    assert exaggeration * np.ptp(vertices[:, z_dim]) == pytest.approx(0.2 * SHAPE[1] * DXY, rel=1e-3)
    assert widget.height_view.exaggeration.value() == pytest.approx(exaggeration, abs=0.01)
    assert "exaggerated" in widget.status_label.text()
    # a tilted camera, not one looking straight down the z axis
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    view, up = (np.asarray(v, dtype=float) for v in (camera.view_direction, camera.up_direction))
    # looking down from above (z up) at a slant: 20-70 degrees below the horizon, z up on the screen
    assert viewer.dims.ndisplay == 3 and -0.94 < view[0] < -0.34 and up[0] > 0.3
    # the control changes the layer's z scale and what it records, not the vertices
    widget.height_view.set_exaggeration(2.0)
    assert surface.scale[z_dim] == pytest.approx(2.0) and surface.metadata[md.EXAGGERATION] == 2.0
    np.testing.assert_array_equal(surface.data[0], vertices)


def test_the_surface_can_be_coloured_by_height(viewer, widget, hyper):
    for name, colour in (("DAPI", "magenta"), ("GFP", "green")):  # two channels: a composite of colours
        viewer.add_image(hyper.data[0, 0], name=name, colormap=colour, blending="additive",
                         scale=(DZ, DXY, DXY), units=("µm",) * 3)
    widget.set_input("DAPI", channels=["GFP"])
    assert run_and_wait(widget._qtbot, widget) == "done"
    with widget._qtbot.waitSignal(widget.height_view.shown, timeout=30000) as blocker:
        widget.show_height_3d()
    surface = blocker.args[0]
    colours, values = np.array(surface.vertex_colors), np.array(surface.vertex_values)
    assert colours.shape == (len(values), 4) and np.ptp(colours[:, 1]) > 0.2  # green where GFP is bright
    widget.height_view.colour_by.setCurrentText("height")
    z = surface.data[0][:, list(surface.axis_labels).index("z")]
    assert surface.colormap.name == "turbo" and surface.vertex_colors is None
    np.testing.assert_allclose(surface.vertex_values, z)
    assert tuple(surface.contrast_limits) == pytest.approx((z.min(), z.max()))
    widget.height_view.colour_by.setCurrentText("fused image")
    np.testing.assert_array_equal(surface.vertex_colors, colours)
    np.testing.assert_array_equal(surface.vertex_values, values)


def test_the_mesh_is_built_on_a_worker_thread(viewer, widget, hyper, monkeypatch):
    from napari_focus_stack._napari import height_view

    threads = []
    build = height_view.height_surface_series

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return build(*args, **kwargs)

    monkeypatch.setattr(height_view, "height_surface_series", spy)
    viewer.add_image(hyper.data[0, 0], name="z", scale=(DZ, DXY, DXY), units=("µm",) * 3)
    widget.set_input("z")
    assert run_and_wait(widget._qtbot, widget) == "done"
    with widget._qtbot.waitSignal(widget.height_view.shown, timeout=30000):
        worker = widget.show_height_3d()
        assert worker is not None and "z height 3D" not in viewer.layers  # returned before the mesh exists
        assert not widget.surface_button.isEnabled()  # one build at a time
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert "z height 3D" in viewer.layers


@pytest.mark.parametrize("suffix", [".ply", ".stl", ".obj"])
def test_the_surface_saves_as_a_mesh_per_time_point_at_true_scale(viewer, widget, surface, tmp_path, suffix):
    widget.height_view.set_exaggeration(7.0)  # the view's exaggeration is not in the file
    paths = surface.save(str(tmp_path / f"relief{suffix}"), plugin=PLUGIN)
    assert [p.rsplit("/", 1)[-1] for p in paths] == [f"relief_t0{suffix}", f"relief_t1{suffix}"]
    depth = _depth(viewer)
    h, w = SHAPE
    for t, path in enumerate(paths):
        mesh = read_mesh(path)
        assert len(mesh["vertices"]) == h * w and len(mesh["faces"]) == 2 * (h - 1) * (w - 1)
        x, y, z = mesh["vertices"].T
        assert (x.min(), x.max()) == pytest.approx((0.0, (w - 1) * DXY))
        assert (y.min(), y.max()) == pytest.approx((-(h - 1) * DXY, 0.0))  # y up the image
        np.testing.assert_allclose(np.sort(z), np.sort(depth.data[t].ravel()), rtol=1e-5)  # µm, true scale
        if suffix != ".stl":  # gray fused image: gray vertex colours, dark to bright
            colours = mesh["colors"]
            assert (colours[:, 0] == colours[:, 1]).all() and np.ptp(colours[:, 0]) > 100
    if suffix == ".ply":
        assert "units um" in read_ply(paths[0])["comments"]


def test_several_selected_layers_are_saved_one_file_each(viewer, widget, surface, tmp_path):
    fused = next(layer for layer in viewer.layers if layer.metadata.get(md.ROLE) == "fused")
    viewer.layers.selection = {fused, _depth(viewer), surface}
    written = viewer.layers.save(str(tmp_path / "cells.tif"), selected=True, plugin=PLUGIN)
    names = sorted(p.rsplit("/", 1)[-1] for p in written)
    assert names == ["cells_cells_depth.tif", "cells_cells_fused.tif", "cells_cells_height_3D_t0.ply",
                     "cells_cells_height_3D_t1.ply"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    # a layer that cannot be written says why, and the files written before it are removed
    photo = viewer.add_image(np.zeros((8, 8), np.uint8), name="photo")
    float_map = viewer.add_image(np.zeros((8, 8), np.float32), name="map")
    viewer.layers.selection = {photo, float_map}
    with pytest.raises(Exception, match="float values"):
        viewer.layers.save(str(tmp_path / "more.png"), selected=True, plugin=PLUGIN)
    assert not list(tmp_path.glob("more*"))
