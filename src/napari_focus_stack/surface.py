"""A height map as a triangle mesh: napari's Surface layer and mesh files (no Qt, no napari).

The 3D height view (and a mesh file, :func:`height_mesh`) shows the topography a focus stack measured, as Fiji's
EDF SurfaceMap3D does: one vertex per (block of) pixels at its height,
two triangles per grid cell, coloured by the fused image. A 12 MP map would
give 24 M triangles, too many to turn around smoothly, so the map is first
reduced by block means to at most ``max_vertices`` vertices (250 000 by
default: a 500 x 500 grid, still finer than a screen shows a surface).

Coordinates are physical: ``z = z_offset + z_scale * height`` and
``y, x = translate + scale * pixel centre``, so a surface built with the
input layer's scale, translate and z step lies where the input stack does.

A time series (:func:`height_surface_series`) is one mesh per time point,
each with its time index as a leading vertex coordinate: napari's Surface
layer takes vertices with more than three coordinates and draws, at each
slider position, the triangles whose vertices lie there, so the surface
follows the time slider.

:func:`height_mesh` makes the mesh a file holds (:mod:`.io.mesh`): ``x, y,
z`` with z up, coloured by the fused image (channels composed with their
colours), at most :data:`MESH_MAX_VERTICES` vertices.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .io.calibrated import convert_length
from .io.hyperstack import Calibration
from .io.mesh import Mesh
from .pixels import full_scale

__all__ = [
    "MAX_TOTAL_VERTICES", "MAX_VERTICES", "MESH_MAX_VERTICES", "HeightSurface", "block_step", "calibrated_mesh",
    "composite_colors", "grid_faces", "height_mesh", "height_surface", "height_surface_series", "mesh_unit",
    "relief_scale",
]

#: Vertices of a surface that stays interactive on an ordinary laptop GPU (one time point: what is drawn).
MAX_VERTICES = 250_000

#: Vertices of all the time points of a series together: memory, about 45 bytes a vertex
#: (4 coordinates, a value, two faces), so 45 MB whatever the number of time points.
MAX_TOTAL_VERTICES = 1_000_000

#: Vertices of a mesh file at most: a 1000 x 1000 grid, finer than a 3D print or a photogrammetry model needs
#: (about 40 MB as PLY).
MESH_MAX_VERTICES = 1_000_000

#: Channel colours when none are known (napari's ``channel_axis`` defaults).
_TWO_CHANNELS = ((1.0, 0.0, 1.0), (0.0, 1.0, 0.0))
_MORE_CHANNELS = ((0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (1.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclass
class HeightSurface:
    """A height map as a mesh: what ``napari.layers.Surface`` takes.

    Attributes
    ----------
    vertices : ndarray
        ``(N, 3)`` float32 ``(z, y, x)`` positions in physical units
        (``(N, k + 3)`` for a series: ``k`` loop indices first).
    faces : ndarray
        ``(M, 3)`` int32 vertex indices, two triangles per grid cell.
    values : ndarray
        ``(N,)`` float32 intensity of the fused image at each vertex (block mean).
    colors : ndarray or None
        ``(N, 4)`` float32 RGBA in 0..1 when the image has three channels.
    grid_shape : (int, int)
        Rows and columns of the vertex grid.
    step : int
        Pixels per block along each side (1: one vertex per pixel).
    """

    vertices: np.ndarray
    faces: np.ndarray
    values: np.ndarray
    colors: np.ndarray | None
    grid_shape: tuple[int, int]
    step: int

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(vertices, faces, values)``, the Surface layer's data."""
        return self.vertices, self.faces, self.values


def block_step(shape: Sequence[int], max_vertices: int = MAX_VERTICES) -> int:
    """The smallest block side that leaves at most `max_vertices` vertices.

    >>> block_step((3000, 4000)), block_step((100, 100))
    (7, 1)
    """
    if max_vertices < 4:
        raise ValueError(f"max_vertices must be at least 4 (one grid cell), got {max_vertices}")
    h, w = int(shape[0]), int(shape[1])
    step = max(1, math.ceil(math.sqrt(h * w / max_vertices)))
    while math.ceil(h / step) * math.ceil(w / step) > max_vertices:
        step += 1
    return step


def _block_means(a: np.ndarray, step: int) -> np.ndarray:
    """Means over `step` x `step` blocks (the last row and column of blocks may be smaller)."""
    a = np.asarray(a, dtype=np.float64)
    if step == 1:
        return a
    rows = np.arange(0, a.shape[0], step)
    cols = np.arange(0, a.shape[1], step)
    sums = np.add.reduceat(np.add.reduceat(a, rows, axis=0), cols, axis=1)
    counts = np.outer(np.diff(np.append(rows, a.shape[0])), np.diff(np.append(cols, a.shape[1])))
    if a.ndim == 3:
        counts = counts[..., None]
    return sums / counts


def _block_centres(n: int, step: int) -> np.ndarray:
    """Pixel coordinate of the centre of each block along one axis of length `n`."""
    starts = np.arange(0, n, step)
    ends = np.minimum(starts + step, n)
    return (starts + ends - 1) / 2.0


def grid_faces(rows: int, cols: int) -> np.ndarray:
    """Two triangles per cell of a ``rows`` x ``cols`` vertex grid (row-major vertex order).

    >>> grid_faces(2, 3).tolist()
    [[0, 3, 1], [1, 3, 4], [1, 4, 2], [2, 4, 5]]
    """
    if rows < 2 or cols < 2:
        return np.empty((0, 3), np.int32)
    a = (np.arange(rows - 1)[:, None] * cols + np.arange(cols - 1)[None, :]).ravel()
    b, c = a + 1, a + cols
    d = c + 1
    return np.stack([np.stack([a, c, b], 1), np.stack([b, c, d], 1)], 1).reshape(-1, 3).astype(np.int32)


def _unit_colors(image: np.ndarray) -> np.ndarray:
    """RGB block means in 0..1: integers by their dtype's range, floats by their maximum above 1."""
    if np.issubdtype(image.dtype, np.integer):
        return np.float32(1.0 / full_scale(image.dtype))
    peak = float(np.nanmax(image)) if image.size else 1.0
    return np.float32(1.0 / peak if peak > 1.0 else 1.0)


def height_surface(
    height: np.ndarray,
    image: np.ndarray | None = None,
    *,
    scale: Sequence[float] = (1.0, 1.0),
    translate: Sequence[float] = (0.0, 0.0),
    z_scale: float = 1.0,
    z_offset: float = 0.0,
    max_vertices: int = MAX_VERTICES,
) -> HeightSurface:
    """Build the mesh of a height map, decimated to at most `max_vertices` vertices.

    Parameters
    ----------
    height : ndarray
        ``(H, W)`` heights (a focus stack's height or depth map).
    image : ndarray, optional
        ``(H, W)`` or ``(H, W, C)`` fused image: vertex values are its
        intensity (the mean of its channels); with three channels the
        vertices also get its colours. Default: the heights.
    scale, translate : (float, float)
        Pixel size and position of pixel (0, 0) along y and x, e.g. the
        input layer's, so that the mesh is in physical units.
    z_scale, z_offset : float
        ``z = z_offset + z_scale * height``: 1 and 0 for heights already in
        physical units, the z step and the first plane's position for
        frame indices.
    max_vertices : int
        Upper bound on the vertex count; blocks of ``step`` x ``step``
        pixels are averaged into one vertex.

    Returns
    -------
    HeightSurface
        Vertices ``(z, y, x)``, faces, values (and colours for RGB images).
        Cells with a non-finite height have no faces.

    Examples
    --------
    >>> import numpy as np
    >>> s = height_surface(np.zeros((3000, 4000), np.float32), scale=(0.1, 0.1))
    >>> len(s.vertices) <= MAX_VERTICES, s.step, s.grid_shape
    (True, 7, (429, 572))
    """
    height = np.asarray(height)
    if height.ndim != 2 or min(height.shape) < 2:
        raise ValueError(f"a height map must be 2-D and at least 2 x 2, got shape {height.shape}")
    if image is not None:
        image = np.asarray(image)
        if image.shape[:2] != height.shape or image.ndim not in (2, 3):
            raise ValueError(f"the image {image.shape} must have the height map's shape {height.shape}")
    step = block_step(height.shape, max_vertices)
    h = _block_means(height, step)
    rows, cols = h.shape
    finite = np.isfinite(h)
    z = np.where(finite, z_offset + z_scale * h, z_offset + z_scale * (np.nanmin(h) if finite.any() else 0.0))
    yy = translate[0] + scale[0] * _block_centres(height.shape[0], step)
    xx = translate[1] + scale[1] * _block_centres(height.shape[1], step)
    vertices = np.stack(
        [z.ravel(), np.repeat(yy, cols), np.tile(xx, rows)], axis=1
    ).astype(np.float32)
    faces = grid_faces(rows, cols)
    if not finite.all():
        ok = finite.ravel()
        faces = faces[ok[faces].all(axis=1)]
    colors = None
    if image is None:
        values = z.ravel()
    else:
        means = _block_means(image, step)
        values = (means.mean(axis=2) if means.ndim == 3 else means).ravel()
        if image.ndim == 3 and image.shape[2] == 3:
            rgb = np.clip(means.reshape(-1, 3) * _unit_colors(image), 0.0, 1.0)
            colors = np.concatenate([rgb, np.ones((len(rgb), 1))], axis=1).astype(np.float32)
    return HeightSurface(vertices, faces, np.asarray(values, np.float32), colors, (rows, cols), step)


def height_surface_series(
    heights: np.ndarray,
    images: Callable[[tuple[int, ...]], np.ndarray | None] | np.ndarray | None = None,
    *,
    max_vertices: int = MAX_VERTICES,
    max_total_vertices: int = MAX_TOTAL_VERTICES,
    **kwargs,
) -> HeightSurface:
    """The meshes of a series of height maps (time points...) as one surface that follows the sliders.

    Parameters
    ----------
    heights : ndarray
        ``(*loop, H, W)`` height maps: the leading axes (time, positions)
        are looped over; may be lazy (each map is read once, in turn).
    images : callable, ndarray or None
        The fused images, ``(*loop, H, W[, C])``, or a callable
        ``index -> image`` giving the one at a loop index (see
        :func:`height_surface`).
    max_vertices : int
        Vertices per map at most: what the viewer draws at one slider
        position, kept interactive.
    max_total_vertices : int
        Vertices of all maps together at most: each map gets
        ``min(max_vertices, max_total_vertices // n_maps)``, one block step
        for all, so memory stays bounded whatever the number of time points.
    **kwargs
        ``scale``, ``translate``, ``z_scale``, ``z_offset``: as for
        :func:`height_surface`.

    Returns
    -------
    HeightSurface
        Vertices ``(*loop index, z, y, x)`` (``len(loop) + 3`` columns, the
        loop indices in data units of the height maps), the faces of every
        map (each joins one map's vertices only), values, and colours when
        every map has them.

    Examples
    --------
    >>> import numpy as np
    >>> s = height_surface_series(np.zeros((10, 1024, 1024), np.float32))
    >>> s.vertices.shape[1], len(s.vertices) <= MAX_TOTAL_VERTICES, s.step
    (4, True, 4)
    """
    shape = tuple(heights.shape)
    if len(shape) < 2:
        raise ValueError(f"height maps must be at least 2-D, got shape {shape}")
    loop = shape[:-2]
    indices = list(np.ndindex(*loop)) if loop else [()]
    per_map = max(4, min(int(max_vertices), int(max_total_vertices) // len(indices)))
    vertices, faces, values, colors = [], [], [], []
    offset = 0
    step, grid = 1, (0, 0)
    for index in indices:
        image = images(index) if callable(images) else None if images is None else images[index]
        mesh = height_surface(np.asarray(heights[index]), image, max_vertices=per_map, **kwargs)
        n = len(mesh.vertices)
        lead = np.broadcast_to(np.asarray(index, np.float32), (n, len(index)))
        vertices.append(np.concatenate([lead, mesh.vertices], axis=1))
        faces.append(mesh.faces + np.int32(offset))
        values.append(mesh.values)
        colors.append(mesh.colors)
        offset += n
        step, grid = mesh.step, mesh.grid_shape
    has_colors = all(c is not None for c in colors)
    return HeightSurface(
        np.concatenate(vertices).astype(np.float32, copy=False),
        np.concatenate(faces).astype(np.int32, copy=False),
        np.concatenate(values).astype(np.float32, copy=False),
        np.concatenate(colors) if has_colors else None,
        grid,
        step,
    )


def relief_scale(height_range: float, extent: Sequence[float], share: float = 0.25) -> float:
    """A z factor that makes a relief of `height_range` span `share` of the larger of `extent`.

    For depth maps in frame indices, whose z has no physical size: ten frames
    over a 4000-pixel image would look flat at face value.

    >>> relief_scale(9.0, (3000.0, 4000.0))
    111.11111111111111
    """
    side = max(float(e) for e in extent)
    if not (height_range > 0 and math.isfinite(height_range)) or side <= 0:
        return 1.0
    return share * side / float(height_range)


def _stretch(plane: np.ndarray) -> np.ndarray:
    """A channel scaled to 0..1 between its 0.5th and 99.5th percentiles (as a display's auto-contrast)."""
    plane = np.asarray(plane, dtype=np.float32)
    finite = plane[np.isfinite(plane)]
    if not finite.size:
        return np.zeros(plane.shape, np.float32)
    lo, hi = (float(v) for v in np.percentile(finite, [0.5, 99.5]))
    return np.clip((np.nan_to_num(plane, nan=lo) - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)


def composite_colors(image: np.ndarray, channel_colors: Sequence | None = None, rgb: bool | None = None) -> np.ndarray:
    """The fused image as ``(H, W, 3)`` colours in 0..1, for a mesh.

    Parameters
    ----------
    image : ndarray
        ``(H, W)`` gray, ``(H, W, 3)`` RGB, or ``(H, W, C)`` channels.
    channel_colors : sequence of (r, g, b), optional
        One colour per channel (0..1): the channels, each stretched between
        its 0.5th and 99.5th percentiles, are added in their colours (a
        composite, as napari and Fiji show them). Default: magenta and
        green for two channels, cyan, magenta, yellow... for more.
    rgb : bool, optional
        Whether three channels are RGB (default: when no colours are given).
        RGB keeps its colours, scaled by its dtype's range.

    Returns
    -------
    ndarray
        float32 ``(H, W, 3)``.

    Examples
    --------
    >>> composite_colors(np.array([[0, 10], [20, 30]], np.uint16))[..., 0].astype(float).round(2).tolist()
    [[0.0, 0.33], [0.67, 1.0]]
    """
    image = np.asarray(image)
    if image.ndim == 2:
        return np.repeat(_stretch(image)[..., None], 3, axis=2)
    if image.ndim != 3:
        raise ValueError(f"an image must be (H, W) or (H, W, C), got {image.shape}")
    n = image.shape[2]
    if (rgb if rgb is not None else channel_colors is None) and n in (3, 4):
        scale = 1.0 / full_scale(image.dtype) if np.issubdtype(image.dtype, np.integer) else 1.0
        return np.clip(image[..., :3].astype(np.float32) * np.float32(scale), 0.0, 1.0)
    if channel_colors is None or len(channel_colors) != n:
        cycle = _TWO_CHANNELS if n == 2 else _MORE_CHANNELS
        channel_colors = [cycle[k % len(cycle)] for k in range(n)] if n > 1 else [(1.0, 1.0, 1.0)]
    out = np.zeros((*image.shape[:2], 3), np.float32)
    for c in range(n):
        out += _stretch(image[..., c])[..., None] * np.asarray(channel_colors[c], np.float32)[:3]
    return np.clip(out, 0.0, 1.0)


def height_mesh(
    height: np.ndarray,
    image: np.ndarray | None = None,
    *,
    pixel_size: Sequence[float] = (1.0, 1.0),
    origin: Sequence[float] = (0.0, 0.0),
    unit: str | None = None,
    z_scale: float = 1.0,
    channel_colors: Sequence | None = None,
    rgb: bool | None = None,
    max_vertices: int = MESH_MAX_VERTICES,
) -> Mesh:
    """The mesh of a height map for a file: ``x, y, z`` in physical units, z up, coloured by the image.

    Parameters
    ----------
    height : ndarray
        ``(H, W)`` heights, in `unit` (or frame indices).
    image : ndarray, optional
        The fused image (see :func:`composite_colors`): the vertex colours.
    pixel_size, origin : (float, float)
        Pixel size and position of pixel (0, 0) along y and x, in `unit`.
    unit : str, optional
        The unit of x, y and z, written in the file.
    z_scale : float
        Vertical exaggeration (1: true scale; files are written at true
        scale unless asked).
    channel_colors, rgb
        As for :func:`composite_colors`.
    max_vertices : int
        Block means decimate the grid to at most this many vertices.

    Returns
    -------
    Mesh
        x to the right, y up the image (row 0 at the top has the largest
        y: ``y = -(origin + row * size)``), z the height; triangles
        counter-clockwise seen from above.

    Examples
    --------
    >>> m = height_mesh(np.full((4, 5), 2.0, np.float32), pixel_size=(0.5, 0.5), unit="µm")
    >>> len(m.vertices), len(m.faces), [b.tolist() for b in m.bounds]
    (20, 24, [[0.0, -1.5, 2.0], [2.0, 0.0, 2.0]])
    """
    colours = None if image is None else composite_colors(image, channel_colors, rgb)
    surface = height_surface(height, colours, scale=pixel_size, translate=origin, z_scale=z_scale,
                             max_vertices=max_vertices)
    return Mesh.from_zyx(surface.vertices, surface.faces, None if surface.colors is None else surface.colors[:, :3],
                         unit)


def mesh_unit(calibration: Calibration) -> tuple[str, float]:
    """The unit a mesh file of these heights is in, and the factor that brings heights into it.

    x and y are in the pixel size's unit (pixels without one), z in the
    heights' (:attr:`Calibration.height_unit`); a z in another length unit
    is converted to the pixel size's. Mixed units are named axis by axis.

    >>> mesh_unit(Calibration((0.1, 0.1), "µm", 250.0, "nm"))
    ('µm', 0.001)
    >>> mesh_unit(Calibration())
    ('pixel (x, y), frame (z)', 1.0)
    """
    xy = calibration.unit if calibration.pixel_size is not None and calibration.unit else "pixel"
    z = calibration.height_unit
    factor = convert_length(1.0, z, xy) if xy != "pixel" else 1.0
    if factor != 1.0 or z == xy:
        return xy, factor
    return f"{xy} (x, y), {z} (z)", 1.0


def calibrated_mesh(
    height: np.ndarray,
    image: np.ndarray | None,
    calibration: Calibration,
    *,
    rgb: bool | None = None,
    z_scale: float = 1.0,
    max_vertices: int = MESH_MAX_VERTICES,
) -> Mesh:
    """:func:`height_mesh` with the pixel size, units and channel colours of `calibration`.

    Parameters
    ----------
    height : ndarray
        ``(H, W)`` heights in ``calibration.height_unit`` (frame indices without a z step).
    image : ndarray, optional
        The fused ``(H, W[, C])`` image: the colours.
    calibration : Calibration
    rgb : bool, optional
        Whether the image's three channels are RGB samples.
    z_scale : float
        Vertical exaggeration (1: true scale).
    max_vertices : int

    Examples
    --------
    >>> cal = Calibration((0.1, 0.1), "µm", 0.5, "µm")
    >>> m = calibrated_mesh(np.full((3, 4), 2.5, np.float32), None, cal)
    >>> m.unit, [b.astype(float).round(6).tolist() for b in m.bounds]
    ('µm', [[0.0, -0.2, 2.5], [0.3, 0.0, 2.5]])
    """
    unit, factor = mesh_unit(calibration)
    size = calibration.pixel_size if calibration.pixel_size is not None and calibration.unit else (1.0, 1.0)
    return height_mesh(
        height, image, pixel_size=size, unit=unit, z_scale=z_scale * factor,
        channel_colors=calibration.channel_colors, rgb=rgb, max_vertices=max_vertices,
    )
