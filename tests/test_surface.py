"""The height map as a mesh (pure NumPy: no viewer involved)."""
from __future__ import annotations

import numpy as np
import pytest

from napari_focus_stack.surface import (
    MAX_VERTICES,
    block_step,
    grid_faces,
    height_surface,
    relief_scale,
)


def _plane(shape, a=0.02, b=-0.01, c=4.0):
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    return (c + a * rows + b * cols).astype(np.float32)


def test_a_12_mp_map_is_decimated_to_an_interactive_mesh():
    height = _plane((3000, 4000))
    s = height_surface(height)
    assert len(s.vertices) <= MAX_VERTICES
    assert len(s.vertices) > 0.8 * MAX_VERTICES  # not decimated more than needed
    assert s.vertices.shape[1] == 3 and s.vertices.dtype == np.float32
    assert len(s.faces) == 2 * (s.grid_shape[0] - 1) * (s.grid_shape[1] - 1)


def test_vertices_are_in_physical_units():
    # a tilted plane: block means of a linear function are its value at the block centre
    height = _plane((90, 120))
    scale, translate = (0.2, 0.1), (5.0, -3.0)
    s = height_surface(height, scale=scale, translate=translate, z_scale=0.5, z_offset=10.0, max_vertices=500)
    assert s.step > 1
    z, y, x = s.vertices.T.astype(np.float64)
    rows = (y - translate[0]) / scale[0]
    cols = (x - translate[1]) / scale[1]
    expected = 10.0 + 0.5 * (4.0 + 0.02 * rows - 0.01 * cols)
    np.testing.assert_allclose(z, expected, atol=1e-4)
    # the mesh covers the map: first and last vertices near its corners
    assert rows.min() < s.step and rows.max() > 90 - 1 - s.step
    assert cols.min() < s.step and cols.max() > 120 - 1 - s.step


def test_full_resolution_when_small_enough():
    height = _plane((20, 30))
    s = height_surface(height, scale=(0.5, 0.5))
    assert s.step == 1 and s.grid_shape == (20, 30) and len(s.vertices) == 600
    np.testing.assert_allclose(s.vertices[:, 0], height.ravel())
    np.testing.assert_allclose(s.vertices[:31, 1:], [[0.0, 0.5 * k] for k in range(30)] + [[0.5, 0.0]])


def test_faces_tile_the_grid_with_one_orientation():
    faces = grid_faces(4, 5)
    assert faces.min() == 0 and faces.max() == 19 and len(faces) == 2 * 3 * 4
    # every triangle is a half cell, all turning the same way seen from +z
    yx = np.stack(np.mgrid[:4, :5], -1).reshape(-1, 2).astype(float)
    a, b, c = yx[faces[:, 0]], yx[faces[:, 1]], yx[faces[:, 2]]
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    np.testing.assert_allclose(np.abs(cross), 1.0)
    assert len(np.unique(np.sign(cross))) == 1
    # each cell is covered once: its two triangles share the diagonal
    assert len({tuple(sorted(f)) for f in faces.tolist()}) == len(faces)


def test_values_are_the_fused_intensity_and_rgb_gives_colours():
    height = np.zeros((40, 60), np.float32)
    gray = np.zeros((40, 60), np.uint16)
    gray[:, 30:] = 1000
    s = height_surface(height, gray, max_vertices=600)
    cols = s.vertices[:, 2]
    assert np.all(s.values[cols < 25] == 0) and np.all(s.values[cols > 35] == 1000)
    assert s.colors is None
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[..., 0] = 255
    rgb[:, 30:, 2] = 51
    s = height_surface(height, rgb, max_vertices=600)
    assert s.colors.shape == (len(s.vertices), 4) and s.colors.dtype == np.float32
    np.testing.assert_allclose(s.colors[cols < 25], [[1.0, 0.0, 0.0, 1.0]] * int((cols < 25).sum()))
    np.testing.assert_allclose(s.colors[cols > 35][:, 2], 0.2, atol=1e-6)
    np.testing.assert_allclose(s.values[cols > 35], (255 + 51) / 3, atol=1e-4)


def test_cells_without_a_height_have_no_faces():
    height = _plane((10, 10))
    height[4, 4] = np.nan
    s = height_surface(height)
    assert np.isfinite(s.vertices).all()
    assert not np.isin(4 * 10 + 4, s.faces)
    assert len(s.faces) == 2 * 9 * 9 - 6  # the six triangles around that vertex


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        height_surface(np.zeros((5,)))
    with pytest.raises(ValueError, match="shape"):
        height_surface(np.zeros((5, 5)), np.zeros((4, 5)))


def test_block_step_is_the_smallest_that_fits():
    for shape in [(3000, 4000), (1, 10**6), (999, 1001), (2, 2)]:
        step = block_step(shape, 10_000)
        n = -(-shape[0] // step) * -(-shape[1] // step)
        assert n <= 10_000
        if step > 1:
            assert -(-shape[0] // (step - 1)) * -(-shape[1] // (step - 1)) > 10_000


def test_relief_scale_spans_a_share_of_the_image():
    assert relief_scale(10.0, (300.0, 400.0)) == pytest.approx(10.0)
    assert relief_scale(0.0, (300.0, 400.0)) == 1.0


def test_a_series_is_one_mesh_per_time_point_at_its_index():
    from napari_focus_stack.surface import height_surface_series

    heights = np.stack([_plane((20, 30), c=float(t)) for t in range(3)])
    images = heights * 10
    s = height_surface_series(heights, images, scale=(0.5, 0.5))
    assert s.vertices.shape == (3 * 600, 4) and s.step == 1
    for t in range(3):
        at = s.vertices[:, 0] == t
        one = height_surface(heights[t], images[t], scale=(0.5, 0.5))
        np.testing.assert_array_equal(s.vertices[at, 1:], one.vertices)
        np.testing.assert_array_equal(s.values[at], one.values)
    # faces join vertices of one time point only, and tile each grid as a single map's do
    assert (np.ptp(s.vertices[s.faces][:, :, 0], axis=1) == 0).all()
    assert len(s.faces) == 3 * len(grid_faces(20, 30))
    # a callable gives the image of a loop index (lazily)
    asked = []
    height_surface_series(heights, lambda i: asked.append(i) or images[i])
    assert asked == [(0,), (1,), (2,)]


def test_a_series_keeps_both_vertex_caps():
    from napari_focus_stack.surface import MAX_TOTAL_VERTICES, height_surface_series

    few = height_surface_series(np.zeros((2, 1000, 1000), np.float32))  # the per-map cap decides
    assert few.step == block_step((1000, 1000), MAX_VERTICES) and len(few.vertices) == 2 * MAX_VERTICES
    many = height_surface_series(np.zeros((10, 1024, 1024), np.float32))  # the total cap decides
    assert many.step == block_step((1024, 1024), MAX_TOTAL_VERTICES // 10)
    assert 0.6 * MAX_TOTAL_VERTICES < len(many.vertices) <= MAX_TOTAL_VERTICES
    assert many.vertices.dtype == np.float32 and many.faces.dtype == np.int32
    assert many.vertices.nbytes + many.faces.nbytes + many.values.nbytes < 40 * 2**20
    two = height_surface_series(np.zeros((2, 3, 40, 50), np.float32))  # several loop axes
    assert two.vertices.shape == (6 * 2000, 5)
    assert {tuple(v) for v in two.vertices[:, :2].tolist()} == {(a, b) for a in range(2) for b in range(3)}
