"""Triangle meshes to PLY, STL and OBJ files, written atomically.

A focus stack's height map is a surface; written as a mesh it can be
3D-printed, measured in MeshLab or Blender, or merged with a
photogrammetry model. The three formats every such tool reads:

- PLY (``.ply``): binary little-endian, float32 ``x y z`` and, when the mesh
  has colours, ``uchar red green blue`` per vertex; triangles as lists of
  three int32 vertex indices;
- STL (``.stl``): binary, one float32 normal and three vertices per
  triangle (normals pointing to the side the triangles wind
  counter-clockwise around); no colours (STL has no standard for them);
- OBJ (``.obj``): text, ``v x y z`` lines with ``r g b`` in 0..1 appended
  when the mesh has colours (the extension MeshLab and Blender read), and
  ``f a b c`` triangles (1-based).

Coordinates are written as they are given, in the mesh's ``unit``, which
the file names in a comment (PLY, OBJ) or its header (STL): none of the
three formats has a field for it. :meth:`Mesh.from_zyx` turns napari's
``(z, y, x)`` vertices (y down the image) into the files' right-handed
``x, y, z`` with z up: x to the right, y up the image (``-y``), z the height.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..errors import OutputError
from .atomic import write_atomic
from .paths import PathLike

__all__ = ["MESH_EXTENSIONS", "Mesh", "series_paths", "write_mesh"]

#: The file types :func:`write_mesh` writes, by extension.
MESH_EXTENSIONS = (".ply", ".stl", ".obj")
_CREATOR = "napari-focus-stack height surface"


@dataclass(frozen=True)
class Mesh:
    """Triangles in physical units, ready to write.

    Attributes
    ----------
    vertices : ndarray
        ``(N, 3)`` float32 ``x, y, z``.
    faces : ndarray
        ``(M, 3)`` int32 vertex indices, counter-clockwise seen from the
        side the surface faces (for a height map: from above).
    colors : ndarray or None
        ``(N, 3)`` uint8 RGB per vertex.
    unit : str or None
        Unit of the coordinates (``"µm"``), named in the file.
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray | None = None
    unit: str | None = None

    def __post_init__(self) -> None:
        vertices = np.ascontiguousarray(self.vertices, dtype=np.float32)
        faces = np.ascontiguousarray(self.faces, dtype=np.int32)
        if vertices.ndim != 2 or vertices.shape[1] != 3:
            raise ValueError(f"vertices must be (N, 3), got {vertices.shape}")
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"faces must be (M, 3), got {faces.shape}")
        if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise ValueError("faces index vertices that do not exist")
        colors = self.colors
        if colors is not None:
            colors = np.asarray(colors)
            if colors.ndim != 2 or colors.shape[0] != len(vertices) or colors.shape[1] not in (3, 4):
                raise ValueError(f"colors must be (N, 3) or (N, 4) for {len(vertices)} vertices, got {colors.shape}")
            colors = _as_uint8(colors[:, :3])
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "colors", colors)

    @classmethod
    def from_zyx(cls, zyx: np.ndarray, faces: np.ndarray, colors: np.ndarray | None = None,
                 unit: str | None = None) -> Mesh:
        """A mesh from napari-order ``(z, y, x)`` vertices (image rows down): ``x, -y, z``, z up.

        Mirroring y keeps the image the right way round seen from above (z
        up, right-handed) and the triangles of :func:`surface.grid_faces`
        counter-clockwise from above, so their normals point up.

        >>> m = Mesh.from_zyx(np.array([[5.0, 0, 0], [5, 1, 0], [6, 0, 1]]), np.array([[0, 1, 2]]))
        >>> m.vertices.tolist()
        [[0.0, 0.0, 5.0], [0.0, -1.0, 5.0], [1.0, 0.0, 6.0]]
        """
        zyx = np.asarray(zyx, dtype=np.float64)
        return cls(np.stack([zyx[:, 2], 0.0 - zyx[:, 1], zyx[:, 0]], axis=1), faces, colors, unit)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The lowest and highest ``x, y, z`` of the vertices the faces use."""
        used = self.vertices[np.unique(self.faces)] if self.faces.size else self.vertices
        return used.min(axis=0), used.max(axis=0)

    def face_normals(self) -> np.ndarray:
        """Unit normal of every triangle (zero for a degenerate one), float32."""
        v = self.vertices.astype(np.float64)[self.faces]
        n = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        return np.divide(n, length, out=np.zeros_like(n), where=length > 0).astype(np.float32)


def _as_uint8(colors: np.ndarray) -> np.ndarray:
    """RGB as uint8: integers kept (clipped), floats read as 0..1."""
    if np.issubdtype(colors.dtype, np.integer):
        return np.clip(colors, 0, 255).astype(np.uint8)
    return np.clip(np.rint(np.nan_to_num(colors.astype(np.float64)) * 255.0), 0, 255).astype(np.uint8)


def _ascii_unit(unit: str | None) -> str:
    """The unit in ASCII for the files' headers (``µm`` -> ``um``)."""
    return "unknown" if not unit else unit.replace("µ", "u").replace("μ", "u").replace("Å", "Angstrom")


def series_paths(path: PathLike, n: int) -> list[Path]:
    """The files of a series of `n` meshes (time points): ``out_t0.ply`` ... (just `path` for one).

    >>> [p.name for p in series_paths("out.ply", 12)][:2], series_paths("out.ply", 1)[0].name
    (['out_t00.ply', 'out_t01.ply'], 'out.ply')
    """
    path = Path(path)
    if n <= 1:
        return [path]
    width = len(str(n - 1))
    return [path.with_name(f"{path.stem}_t{k:0{width}d}{path.suffix}") for k in range(n)]


# --------------------------------------------------------------------- formats


def _write_ply(fh: BinaryIO, mesh: Mesh) -> None:
    colours = mesh.colors is not None
    header = ["ply", "format binary_little_endian 1.0", f"comment {_CREATOR}",
              f"comment units {_ascii_unit(mesh.unit)}", f"element vertex {len(mesh.vertices)}",
              "property float x", "property float y", "property float z"]
    if colours:
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(mesh.faces)}", "property list uchar int vertex_indices", "end_header"]
    fh.write(("\n".join(header) + "\n").encode("ascii"))
    fields = [("xyz", "<f4", (3,))] + ([("rgb", "u1", (3,))] if colours else [])
    vertices = np.empty(len(mesh.vertices), dtype=fields)
    vertices["xyz"] = mesh.vertices
    if colours:
        vertices["rgb"] = mesh.colors
    fh.write(vertices.tobytes())
    faces = np.empty(len(mesh.faces), dtype=[("n", "u1"), ("abc", "<i4", (3,))])
    faces["n"] = 3
    faces["abc"] = mesh.faces
    fh.write(faces.tobytes())


def _write_stl(fh: BinaryIO, mesh: Mesh) -> None:
    # an ASCII STL starts with "solid": a binary header must not
    header = f"{_CREATOR}, units {_ascii_unit(mesh.unit)}".encode("ascii")[:80].ljust(80, b" ")
    fh.write(header)
    fh.write(np.uint32(len(mesh.faces)).astype("<u4").tobytes())
    triangles = np.zeros(len(mesh.faces), dtype=[("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
    triangles["normal"] = mesh.face_normals()
    triangles["v"] = mesh.vertices[mesh.faces]
    fh.write(triangles.tobytes())


def _write_obj(fh: BinaryIO, mesh: Mesh) -> None:
    fh.write(f"# {_CREATOR}\n# units {_ascii_unit(mesh.unit)}\n".encode("ascii"))
    if mesh.colors is not None:
        rows = np.concatenate([mesh.vertices.astype(np.float64), mesh.colors / 255.0], axis=1)
        np.savetxt(fh, rows, fmt="v %.7g %.7g %.7g %.4f %.4f %.4f")
    else:
        np.savetxt(fh, mesh.vertices.astype(np.float64), fmt="v %.7g %.7g %.7g")
    np.savetxt(fh, mesh.faces.astype(np.int64) + 1, fmt="f %d %d %d")


_WRITERS = {".ply": _write_ply, ".stl": _write_stl, ".obj": _write_obj}


def write_mesh(path: PathLike, mesh: Mesh, *, protect: Iterable[PathLike | None] = ()) -> Path:
    """Write `mesh` as PLY, STL or OBJ (by extension), atomically.

    Parameters
    ----------
    path : str or path-like
        ``*.ply``, ``*.stl`` or ``*.obj``.
    mesh : Mesh
    protect : iterable of path-like
        Input files that must not be overwritten.

    Returns
    -------
    Path

    Raises
    ------
    OutputError
        Another extension, a protected file, or the file could not be written.

    Examples
    --------
    >>> import tempfile
    >>> square = Mesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 1]]), np.array([[0, 1, 2], [1, 3, 2]]))
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_mesh(Path(folder) / "square.stl", square)
    ...     path.stat().st_size == 84 + 50 * 2
    True
    """
    path = Path(path)
    writer = _WRITERS.get(path.suffix.lower())
    if writer is None:
        raise OutputError(
            f"cannot write {path}: unknown mesh type {path.suffix!r}. Use .ply (with colours), .stl or .obj."
        )
    if not np.isfinite(mesh.vertices).all():
        raise OutputError(f"cannot write {path}: the mesh has vertices that are not finite numbers")
    write_atomic(path, lambda fh: writer(fh, mesh), protect=protect)
    return path

