"""Mesh files (io.mesh) and the mesh of a height map (surface.height_mesh), read back with tiny parsers."""
from __future__ import annotations

import numpy as np
import pytest

from meshes import read_mesh, read_obj, read_ply, read_stl
from napari_focus_stack.errors import OutputError
from napari_focus_stack.io.mesh import Mesh, series_paths, write_mesh
from napari_focus_stack.surface import grid_faces, height_mesh

PIXEL = 0.1  # µm


def _bump(shape=(30, 40)):
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    return (2.0 + 1.5 * np.exp(-((rows - 10) ** 2 + (cols - 25) ** 2) / 40.0)).astype(np.float32)


def _colour_image(shape=(30, 40)):
    img = np.zeros((*shape, 3), np.uint8)
    img[..., 0] = 255  # red everywhere
    img[:, 20:, 1] = 255  # yellow on the right half
    return img


@pytest.mark.parametrize("suffix", [".ply", ".stl", ".obj"])
def test_a_height_mesh_reads_back_with_its_counts_bounds_and_colours(tmp_path, suffix):
    height = _bump()
    mesh = height_mesh(height, _colour_image(), pixel_size=(PIXEL, PIXEL), origin=(1.0, 2.0), unit="µm")
    path = write_mesh(tmp_path / f"relief{suffix}", mesh)
    back = read_mesh(path)
    h, w = height.shape
    assert len(back["faces"]) == 2 * (h - 1) * (w - 1)
    assert len(back["vertices"]) == h * w
    lo, hi = back["vertices"].min(axis=0), back["vertices"].max(axis=0)
    # physical units: x from the pixel size and origin, y up the image (mirrored), z the height itself
    np.testing.assert_allclose(lo, [2.0, -(1.0 + (h - 1) * PIXEL), height.min()], atol=1e-5)
    np.testing.assert_allclose(hi, [2.0 + (w - 1) * PIXEL, -1.0, height.max()], atol=1e-5)
    if suffix == ".stl":
        assert back["colors"] is None and "units um" in read_stl(path)["header"]
        assert (back["normals"][:, 2] > 0).all()  # every triangle faces up
        return
    colours = back["colors"]
    xy = back["vertices"][:, :2]
    left = xy[:, 0] < 2.0 + 19.5 * PIXEL
    assert (colours[left] == [255, 0, 0]).all() and (colours[~left] == [255, 255, 0]).all()
    comments = read_ply(path)["comments"] if suffix == ".ply" else read_obj(path)["comments"]
    assert "units um" in comments


def test_vertices_are_where_the_pixels_are_and_faces_wind_upward(tmp_path):
    height = _bump((5, 6))
    mesh = height_mesh(height, pixel_size=(0.5, 0.25), unit="mm")
    back = read_ply(write_mesh(tmp_path / "m.ply", mesh))
    rows, cols = np.divmod(np.arange(30), 6)
    np.testing.assert_allclose(back["vertices"], np.stack([cols * 0.25, -rows * 0.5, height.ravel()], 1), atol=1e-6)
    np.testing.assert_array_equal(back["faces"], grid_faces(5, 6))
    v = back["vertices"][back["faces"]]
    normals = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    assert (normals[:, 2] > 0).all()
    assert back["colors"] is None and "units mm" in back["comments"]


def test_a_large_map_is_decimated_to_the_vertex_budget(tmp_path):
    mesh = height_mesh(np.zeros((400, 500), np.float32), max_vertices=10_000)
    back = read_mesh(write_mesh(tmp_path / "big.ply", mesh))
    assert 5_000 < len(back["vertices"]) <= 10_000


def test_gray_and_channel_images_colour_the_mesh(tmp_path):
    height = np.zeros((4, 4), np.float32)
    gray = np.arange(16, dtype=np.uint16).reshape(4, 4) * 1000
    colours = read_ply(write_mesh(tmp_path / "g.ply", height_mesh(height, gray)))["colors"]
    assert (colours[:, 0] == colours[:, 1]).all() and colours[0, 0] < 10 and colours[-1, 0] > 245
    two = np.zeros((4, 4, 2), np.uint16)
    two[:2, :, 0] = 500  # channel 0 (red) on the top half, channel 1 (green) on the bottom half
    two[2:, :, 1] = 900
    mesh = height_mesh(height, two, channel_colors=[(1, 0, 0), (0, 1, 0)])
    colours = read_ply(write_mesh(tmp_path / "c.ply", mesh))["colors"].reshape(4, 4, 3)
    assert (colours[:2] == [255, 0, 0]).all() and (colours[2:] == [0, 255, 0]).all()


def test_nan_heights_leave_holes_and_are_not_written(tmp_path):
    height = np.zeros((3, 3), np.float32)
    height[1, 1] = np.nan
    back = read_ply(write_mesh(tmp_path / "hole.ply", height_mesh(height)))
    assert np.isfinite(back["vertices"]).all()
    assert len(back["faces"]) == 2 and 4 not in back["faces"]  # the 6 triangles at the centre are gone


def test_mesh_files_are_written_atomically_and_inputs_protected(tmp_path):
    mesh = Mesh(np.zeros((3, 3)), np.array([[0, 1, 2]]))
    with pytest.raises(OutputError, match=r"\.glb.*\.ply"):
        write_mesh(tmp_path / "m.glb", mesh)
    source = tmp_path / "stack.ply"
    source.write_bytes(b"input")
    with pytest.raises(OutputError, match="refusing to overwrite input"):
        write_mesh(source, mesh, protect=[source])
    assert source.read_bytes() == b"input"
    write_mesh(tmp_path / "ok.obj", mesh)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.obj", "stack.ply"]  # no temporary file left
    with pytest.raises(ValueError, match="index vertices"):
        Mesh(np.zeros((3, 3)), np.array([[0, 1, 3]]))


def test_series_paths_number_the_time_points():
    assert [p.name for p in series_paths("a/out.stl", 3)] == ["out_t0.stl", "out_t1.stl", "out_t2.stl"]
    assert series_paths("out.ply", 1)[0].name == "out.ply"
