"""napari writer: a Surface layer to a PLY, STL or OBJ mesh, in the layer's physical units.

*File > Save Selected Layers...* with a ``.ply`` (vertex colours), ``.stl``
or ``.obj`` (``v x y z r g b``) name writes what the layer shows: the world
coordinates of its vertices (data times ``scale`` plus ``translate``), as
a right-handed ``x, y, z`` with z up (x to the right, y up the image,
z the layer's z axis, the height of the Focus stack widget's
``<input> height 3D`` surfaces; :meth:`napari_focus_stack.io.mesh.Mesh.from_zyx`).
The 3D view's vertical exaggeration (``metadata["vertical_exaggeration"]``)
is taken out: the mesh is at true scale. The unit (the layer's, e.g. µm) is
named in the file. Colours: the layer's vertex colours, else its values
through its colormap, contrast limits and gamma, as shown.

A surface with more than three dimensions (a time series: one mesh per
time point, see :mod:`.height_view`) is written as one file per time point,
``<name>_t0.ply``, ``<name>_t1.ply``..., all or none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..io.mesh import MESH_EXTENSIONS, Mesh
from ..io.outputs import write_mesh_series
from . import layer_metadata as md
from .layers import unit_symbol

__all__ = ["surface_meshes", "write_surface_layer"]


def write_surface_layer(path: str, data: Any, meta: dict) -> list[str]:
    """Write one napari Surface layer as a mesh (npe2 single-layer writer).

    Parameters
    ----------
    path : str
        ``*.ply``, ``*.stl`` or ``*.obj``.
    data : tuple
        The layer data: ``(vertices, faces[, values])``.
    meta : dict
        The layer attributes napari passes (``scale``, ``translate``,
        ``units``, ``vertex_colors``, ``colormap``, ``metadata``...).

    Returns
    -------
    list of str
        The files written (one per time point of a time series).

    Raises
    ------
    OutputError
        Another extension, or a file that could not be written; nothing is
        left half written.
    """
    target = Path(path)
    if target.suffix.lower() not in MESH_EXTENSIONS:
        raise OutputError(f"cannot write {target}: a surface is written as .ply (with colours), .stl or .obj.")
    return [str(p) for p in write_mesh_series(target, surface_meshes(data, meta))]


def surface_meshes(data: Any, meta: dict) -> list[Mesh]:
    """The meshes a Surface layer holds, in world units at true scale: one, or one per time point."""
    vertices, faces = np.asarray(data[0], dtype=np.float64), np.asarray(data[1], dtype=np.int64)
    values = np.asarray(data[2]) if len(data) > 2 and data[2] is not None else None
    ndim = vertices.shape[1]
    if ndim < 3:
        raise OutputError(f"cannot write {meta.get('name', 'the layer')!r} as a mesh: its vertices are {ndim}-D")
    scale = np.asarray(meta.get("scale") if meta.get("scale") is not None else [1.0] * ndim, dtype=np.float64)
    translate = np.asarray(meta.get("translate") if meta.get("translate") is not None else [0.0] * ndim,
                           dtype=np.float64)
    metadata = meta.get("metadata") or {}
    scale = scale.copy()
    scale[-3] /= float(metadata.get(md.EXAGGERATION, 1.0) or 1.0)  # the 3D view's exaggeration: not in the file
    world = vertices * scale + translate
    colours = _colours(values, meta, len(vertices))
    unit = _unit(meta, metadata)
    lead = ndim - 3
    if lead == 0:
        return [Mesh.from_zyx(world, faces, colours, unit)]
    keys, which = np.unique(np.round(vertices[:, :lead], 6), axis=0, return_inverse=True)
    which = which.ravel()
    meshes = []
    for k in range(len(keys)):
        mine = np.flatnonzero(which == k)
        renumber = np.full(len(vertices), -1, np.int64)
        renumber[mine] = np.arange(len(mine))
        own = faces[(which[faces] == k).all(axis=1)]
        meshes.append(Mesh.from_zyx(world[mine, lead:], renumber[own], None if colours is None else colours[mine],
                                    unit))
    return meshes


def _unit(meta: dict, metadata: dict) -> str | None:
    """The unit of the mesh: that of the layer's z, y, x (a height map's own for z), named per axis when mixed."""
    units = list(meta.get("units") or [])[-3:]
    symbols = [unit_symbol(u) or "pixel" for u in units] if len(units) == 3 else ["pixel"] * 3
    height = metadata.get(md.HEIGHT_UNIT)
    if height == "frame":
        symbols[0] = "frame"
    z, y, x = symbols
    if z == y == x:
        return z
    return f"{x} (x, y), {z} (z)" if x == y else f"{x} (x), {y} (y), {z} (z)"


def _colours(values: np.ndarray | None, meta: dict, n: int) -> np.ndarray | None:
    """Per-vertex RGB in 0..1: the layer's vertex colours, else its values as its colormap shows them."""
    given = meta.get("vertex_colors")
    if given is not None and len(given) == n:
        return np.asarray(given, dtype=np.float64)[:, :3]
    colormap = meta.get("colormap")
    if values is None or values.ndim != 1 or len(values) != n or not isinstance(colormap, dict):
        return None
    limits = meta.get("contrast_limits") or (float(np.nanmin(values)), float(np.nanmax(values)))
    lo, hi = (float(v) for v in limits)
    t = np.clip((values.astype(np.float64) - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    t = t ** float(meta.get("gamma", 1.0) or 1.0)
    colors = np.asarray(colormap["colors"], dtype=np.float64)[:, :3]
    controls = np.asarray(colormap.get("controls") if colormap.get("controls") is not None
                          else np.linspace(0, 1, len(colors)), dtype=np.float64)
    if str(colormap.get("interpolation", "linear")) == "zero" and len(controls) == len(colors) + 1:
        return colors[np.clip(np.searchsorted(controls, t, side="right") - 1, 0, len(colors) - 1)]
    return np.stack([np.interp(t, controls, colors[:, c]) for c in range(3)], axis=1)
