"""Calibrated N-D microscope data: ImageJ hyperstacks, OME-TIFF and OME-Zarr, read lazily.

A :class:`Hyperstack` is an array with named axes (``T``, ``C``, ``Z``,
``Y``, ``X``, ``S`` for RGB samples, any other letter looped over like
``T``) and a :class:`Calibration` (pixel size, z step and their units,
channel names and colours). :func:`read_hyperstack` opens one from a file
without reading its pixels: a TIFF through tifffile's Zarr view of its pages
(one page, i.e. one plane, per chunk), an OME-Zarr through zarr (its first,
full-resolution level); planes are read when used, so a file larger than
memory is never loaded whole.

Where the calibration comes from:

- ImageJ: ``unit``, ``spacing`` (z step) and ``zorigin`` in the image
  description, the pixel size from the XResolution and YResolution tags,
  channel colours from the LUTs of a composite image;
- OME-TIFF: ``PhysicalSizeX/Y/Z`` and their units, ``PositionZ`` of the
  first plane, channel ``Name`` and ``Color``;
- OME-Zarr (NGFF 0.4 and 0.5): the axes' units, the first level's ``scale``
  and ``translation``, and the ``omero`` channels' labels and colours.

Units are given as symbols (``"µm"``, ``"nm"``...), whatever spelling the
file used (``micron``, ``um``, ``micrometer``).
"""
from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ParameterError, StackError
from .checks import _as_path, _check_file, _guarded, _is_tiff
from .metadata import ImageMeta
from .paths import PathLike
from .source import FrameSource

__all__ = ["Calibration", "Hyperstack", "is_hyperstack_file", "normalise_unit", "plane_count", "read_hyperstack"]

_UNITS = {
    "micron": "µm", "microns": "µm", "um": "µm", "µm": "µm", "\\u00b5m": "µm", "μm": "µm",
    "micrometer": "µm", "micrometre": "µm", "nm": "nm", "nanometer": "nm", "nanometre": "nm",
    "mm": "mm", "millimeter": "mm", "millimetre": "mm", "cm": "cm", "centimeter": "cm", "m": "m",
    "meter": "m", "metre": "m", "pm": "pm", "picometer": "pm", "angstrom": "Å", "å": "Å",
    "inch": "in", "in": "in",
}

# TIFF ResolutionUnit: 2 inch, 3 centimetre (1 "none": ImageJ puts the unit in its description)
_TIFF_RESOLUTION_UNIT_UM = {2: 25400.0, 3: 10000.0}


def normalise_unit(unit: Any) -> str | None:
    """The symbol of a length unit (``"micron"`` -> ``"µm"``); None for none or pixels.

    >>> normalise_unit("micron"), normalise_unit("micrometer"), normalise_unit("pixel")
    ('µm', 'µm', None)
    """
    if unit is None:
        return None
    text = str(unit).strip()
    if not text or text.lower() in ("pixel", "pixels", "px", "none"):
        return None
    return _UNITS.get(text.lower(), _UNITS.get(text, text))


@dataclass(frozen=True)
class Calibration:
    """Physical size of the data's pixels and planes, and what its channels are.

    Attributes
    ----------
    pixel_size : (float, float) or None
        Pixel size along Y and X, in ``unit``.
    unit : str or None
        Unit of ``pixel_size`` (e.g. ``"µm"``).
    z_step : float or None
        Distance between z planes, in ``z_unit``.
    z_unit : str or None
        Unit of ``z_step`` and ``z0`` (default: ``unit``).
    z0 : float
        Position of the first z plane.
    channel_names : tuple of str, optional
    channel_colors : tuple, optional
        One colour per channel, as ``(r, g, b)`` in 0..1 or a name.
    """

    pixel_size: tuple[float, float] | None = None
    unit: str | None = None
    z_step: float | None = None
    z_unit: str | None = None
    z0: float = 0.0
    channel_names: tuple[str, ...] | None = None
    channel_colors: tuple | None = None

    @property
    def height_unit(self) -> str:
        """Unit of heights: the z unit when the z step is known, else ``"frame"``."""
        if self.z_step is None:
            return "frame"
        return self.z_unit or self.unit or "pixel"

    def with_z_step(self, z_step: float | None, unit: str | None = None) -> Calibration:
        """This calibration with ``z_step`` set (``None`` keeps the known one)."""
        if z_step is None:
            return self
        if not (isinstance(z_step, (int, float)) and math.isfinite(z_step) and z_step > 0):
            raise ParameterError(f"z_step must be a positive number, got {z_step!r}")
        z_unit = unit or self.z_unit or self.unit or "µm"
        return replace(self, z_step=float(z_step), z_unit=z_unit)


@dataclass
class Hyperstack:
    """N-D image data with named axes, read lazily one plane at a time.

    Parameters
    ----------
    data : array-like
        NumPy, Dask or Zarr array (anything with ``shape``, ``dtype`` and
        NumPy indexing); only the planes in use are read.
    axes : str
        One letter per dimension of ``data``: ``Z``, ``Y`` and ``X`` are
        required; ``C`` (channels) and ``S`` (RGB samples) are optional; any
        other letter (``T``, ``P``...) is looped over.
    calibration : Calibration, optional
    name : str, optional
        What to call the data in messages (a file name).
    closer : callable, optional
        Releases the file behind ``data`` (:meth:`close`).

    Examples
    --------
    >>> import numpy as np
    >>> hs = Hyperstack(np.zeros((2, 5, 3, 8, 8), np.uint16), "TZCYX")
    >>> hs.loop_axes, hs.frame_shape, hs.out_axes
    ('T', (8, 8, 3), 'TCYX')
    """

    data: Any
    axes: str
    calibration: Calibration = field(default_factory=Calibration)
    name: str = "the data"
    closer: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        axes = str(self.axes).upper()
        shape = tuple(self.data.shape)
        if len(axes) != len(shape):
            raise InputError(
                f"{self.name} has {len(shape)} dimensions {shape} but axes {axes!r} name {len(axes)}; "
                "give one letter per dimension, e.g. axes='TCZYX'."
            )
        if len(set(axes)) != len(axes):
            raise InputError(f"axes {axes!r} of {self.name} repeat a letter")
        missing = [a for a in "YX" if a not in axes]
        if missing:
            raise InputError(f"{self.name} has no {' or '.join(missing)} axis (axes {axes!r}): it is not an image")
        if "Z" not in axes:
            raise StackError(
                f"{self.name} has no Z axis (axes {axes!r}): there is nothing to focus-stack. "
                "Name the focus axis Z, or give a z-stack."
            )
        if shape[axes.index("Z")] < 2:
            raise StackError(f"{self.name} has a single z plane: a focus stack needs at least 2")
        if "C" in axes and "S" in axes:
            raise InputError(f"{self.name} has both channels (C) and RGB samples (S); split the channels first")
        if "S" in axes and shape[axes.index("S")] not in (3, 4):
            raise InputError(f"{self.name} has {shape[axes.index('S')]} samples per pixel; S must be RGB(A)")
        self.axes = axes
        names = self.calibration.channel_names
        if names is not None and len(names) != self.n_channels:
            self.calibration = replace(self.calibration, channel_names=None, channel_colors=None)

    def close(self) -> None:
        """Release the file behind the data (nothing for arrays)."""
        if self.closer is not None:
            self.closer()
            self.closer = None

    def __enter__(self) -> Hyperstack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- shape ---------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    def size(self, axis: str) -> int:
        """Length of ``axis`` (1 when absent)."""
        return self.shape[self.axes.index(axis)] if axis in self.axes else 1

    @property
    def loop_axes(self) -> str:
        """The axes looped over (every letter but C, Z, Y, X, S), in data order."""
        return "".join(a for a in self.axes if a not in "CZYXS")

    @property
    def n_channels(self) -> int:
        return self.size("C") if "C" in self.axes else self.size("S") if "S" in self.axes else 1

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Shape of one frame of a z-stack: ``(Y, X)`` or ``(Y, X, C)``."""
        yx = (self.size("Y"), self.size("X"))
        return yx if self.n_channels == 1 and "S" not in self.axes else yx + (self.n_channels,)

    @property
    def out_axes(self) -> str:
        """Axes of a fused image: the loop axes, C, Y, X, S (those present)."""
        return self.loop_axes + ("C" if "C" in self.axes else "") + "YX" + ("S" if "S" in self.axes else "")

    @property
    def dtype(self) -> np.dtype:
        """dtype of the frames handed to the engine (uint8, uint16 or float32)."""
        dt = np.dtype(self.data.dtype)
        if dt in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)):
            return dt
        if dt == np.bool_:
            return np.dtype(np.uint8)
        if dt.kind in "iuf":
            return np.dtype(np.float32)  # exact for integers up to 2**24
        raise InputError(f"{self.name} holds {dt} values; images must be integer or float")

    def loop_indices(self) -> list[tuple[int, ...]]:
        """Every combination of the loop axes, in C order (``[()]`` without loop axes)."""
        return list(itertools.product(*(range(self.size(a)) for a in self.loop_axes)))

    # -- reading ---------------------------------------------------------------

    def read_frame(self, index: tuple[int, ...], z: int) -> np.ndarray:
        """Plane ``z`` of the z-stack at loop ``index``, all channels: ``(Y, X[, C])``."""
        loop = dict(zip(self.loop_axes, index, strict=False))
        key: list[Any] = []
        kept = []
        for a in self.axes:
            if a in loop:
                key.append(int(loop[a]))
            elif a == "Z":
                key.append(int(z))
            else:
                key.append(slice(None))
                kept.append(a)
        plane = np.asarray(self.data[tuple(key)])
        order = [kept.index(a) for a in ("Y", "X", "C", "S") if a in kept]
        plane = np.transpose(plane, order)
        if plane.ndim == 3 and plane.shape[2] == 1:
            plane = plane[..., 0]
        if "S" in self.axes and plane.shape[2] == 4:
            plane = plane[..., :3]  # alpha carries no focus
        dtype = self.dtype
        if plane.dtype == np.bool_:
            return plane.astype(np.uint8) * np.uint8(255)
        return np.array(plane, dtype=dtype, order="C", copy=True)

    def z_stack(self, index: tuple[int, ...]) -> FrameSource:
        """The z-stack at loop ``index`` as a :class:`FrameSource` (planes read on demand)."""
        nz = self.size("Z")
        shape = self.frame_shape
        if shape[-1:] == (4,) and "S" in self.axes:
            shape = shape[:2] + (3,)
        where = ", ".join(f"{a}={i}" for a, i in zip(self.loop_axes, index, strict=False))
        prefix = f"{self.name} ({where}, " if where else f"{self.name} ("
        names = [f"{prefix}z={z})" for z in range(nz)]
        metas = [ImageMeta(None, shape, self.dtype, None, None) for _ in range(nz)]
        loaders = [lambda z=z: self.read_frame(index, z) for z in range(nz)]
        return FrameSource(loaders, metas, names)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------


def is_hyperstack_file(path: PathLike) -> bool:
    """Whether a file is microscope data to read with :func:`read_hyperstack`.

    True for an OME-Zarr folder, an ImageJ hyperstack or an OME-TIFF, and a
    TIFF with more than one non-spatial axis (e.g. time and z); a plain
    multi-page TIFF is a z-stack of frames (:class:`FrameSource`).
    """
    p = _as_path(path)
    if p.is_dir():
        return _is_ome_zarr(p)
    try:
        head = _check_file(p)
    except InputError:
        return False
    if not _is_tiff(head):
        return False
    import tifffile

    try:
        with tifffile.TiffFile(p) as tif:
            if tif.is_imagej or tif.is_ome:
                return True
            series = tif.series[0] if tif.series else None
            return series is not None and sum(a not in "YXS" for a in series.axes) > 1
    except Exception:  # noqa: BLE001 - a probe only: the frame readers report damaged files
        return False


def plane_count(path: PathLike) -> int:
    """How many planes (pages of all non-spatial axes) the first series of a TIFF holds.

    1 for a single image, 0 for a file that is not a readable TIFF; only the
    header is read. A file with 2 or more is a z-stack (or hyperstack) on its
    own.
    """
    import tifffile

    p = _as_path(path)
    try:
        if not _is_tiff(_check_file(p)):
            return 0
        with tifffile.TiffFile(p) as tif:
            if not tif.series:
                return 0
            s = tif.series[0]
            return int(np.prod([n for a, n in zip(s.axes, s.shape, strict=False) if a not in "YXS"], dtype=np.int64))
    except Exception:  # noqa: BLE001 - a probe only (InputError, damaged files): the readers say what is wrong
        return 0


def read_hyperstack(path: PathLike, series: int = 0) -> Hyperstack:
    """Open microscope data lazily: ImageJ or OME-TIFF (any TIFF), or an OME-Zarr folder.

    Parameters
    ----------
    path : str or path-like
        A TIFF file, or an OME-Zarr folder (``*.zarr``).
    series : int
        Which series (OME image) of a TIFF.

    Returns
    -------
    Hyperstack
        Its ``data`` reads planes on demand; call :meth:`Hyperstack.close`
        (or use it in a ``with`` block) to release the file.

    Raises
    ------
    InputError
        Not found, unreadable, not a TIFF or OME-Zarr; the message says why.

    Examples
    --------
    >>> import tempfile, tifffile, numpy as np
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "cells.tif"
    ...     tifffile.imwrite(path, np.zeros((3, 2, 8, 8), np.uint16), imagej=True, resolution=(10, 10),
    ...                      metadata={"axes": "ZCYX", "unit": "micron", "spacing": 0.5})
    ...     with read_hyperstack(path) as hs:
    ...         hs.axes, hs.calibration.pixel_size, hs.calibration.z_step, hs.calibration.unit
    ('ZCYX', (0.1, 0.1), 0.5, 'µm')
    """
    p = _as_path(path)
    if p.is_dir():
        if not _is_ome_zarr(p):
            raise InputError(f"{p} is a folder but not an OME-Zarr (no multiscales metadata)")
        return _guarded(p, "OME-Zarr", lambda: _read_ome_zarr(p))
    head = _check_file(p)
    if not _is_tiff(head):
        raise InputError(f"{p} is not a TIFF or an OME-Zarr folder: microscope data needs one of those")
    return _guarded(p, "TIFF", lambda: _read_tiff(p, series))


def _axes_from_tifffile(axes: str) -> str:
    """tifffile's axes letters to ours: one generic sequence axis (I, Q) is the z axis."""
    axes = axes.upper()
    if "Z" not in axes:
        generic = [a for a in axes if a in "IQ"]
        if len(generic) == 1:
            axes = axes.replace(generic[0], "Z")
    return axes


def _zarr() -> Any:
    try:
        import zarr
    except ImportError:
        raise InputError(
            "reading microscope data a plane at a time needs zarr: "
            "pip install 'napari-focus-stack[microscopy]'"
        ) from None
    return zarr


def _read_tiff(path: Path, series: int) -> Hyperstack:
    import tifffile

    zarr = _zarr()

    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise InputError(f"{path} contains no image data")
        if not 0 <= series < len(tif.series):
            raise InputError(f"{path} has {len(tif.series)} series; series {series} does not exist")
        s = tif.series[series]
        axes = _axes_from_tifffile(s.axes)
        page = s.keyframe
        if tif.is_ome:
            cal = _ome_tiff_calibration(tif.ome_metadata, series)
        elif tif.is_imagej:
            cal = _imagej_calibration(tif.imagej_metadata or {}, page)
        else:
            cal = Calibration(*_tiff_pixel_size(page))
    store = tifffile.imread(path, aszarr=True, series=series, level=0)
    try:
        data = zarr.open(store, mode="r")
    except Exception:
        store.close()
        raise
    return Hyperstack(data, axes, cal, name=path.name, closer=store.close)


def _tiff_pixel_size(page: Any, unit: str | None = None) -> tuple[tuple[float, float] | None, str | None]:
    """Pixel size (y, x) from the resolution tags, in ``unit`` (ImageJ) or µm (inch/cm units)."""
    def size(tag: str) -> float | None:
        value = page.tags.valueof(tag)
        if not value:
            return None
        num, den = value if isinstance(value, tuple) else (value, 1)
        return float(den) / float(num) if num else None

    sy, sx = size("YResolution"), size("XResolution")
    if sx is None:
        return None, unit
    sy = sx if sy is None else sy
    res_unit = int(page.tags.valueof("ResolutionUnit", default=2) or 1)
    if unit is None:
        if res_unit not in _TIFF_RESOLUTION_UNIT_UM:
            return None, None  # pixels per "no unit": not a calibration
        factor = _TIFF_RESOLUTION_UNIT_UM[res_unit]
        return (sy * factor, sx * factor), "µm"
    if (sx, sy) == (1.0, 1.0):
        return None, unit
    return (sy, sx), unit


def _imagej_calibration(ij: dict, page: Any) -> Calibration:
    unit = normalise_unit(ij.get("unit"))
    pixel_size, unit = _tiff_pixel_size(page, unit) if unit else (None, None)
    spacing = ij.get("spacing")
    z_step = float(spacing) if isinstance(spacing, (int, float)) and spacing > 0 else None
    z0 = -float(ij.get("zorigin", 0) or 0) * (z_step or 0)
    colors = None
    luts = ij.get("LUTs")
    if luts is not None and np.ndim(luts) == 2:  # tifffile gives a single channel's LUT unlisted
        luts = [luts]
    if luts is not None and len(luts):
        colors = tuple(tuple(float(v) / 255 for v in np.asarray(lut)[:, -1]) for lut in luts)
    return Calibration(pixel_size, unit, z_step, unit if z_step else None, z0 + 0.0, None, colors)


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [] if x is None else [x]


def _ome_tiff_calibration(xml: str, series: int) -> Calibration:
    import tifffile

    images = _as_list(tifffile.xml2dict(xml).get("OME", {}).get("Image"))
    if series >= len(images):
        return Calibration()
    px = images[series].get("Pixels", {})

    def size(axis: str) -> tuple[float | None, str]:
        value = px.get(f"PhysicalSize{axis}")
        unit = normalise_unit(px.get(f"PhysicalSize{axis}Unit", "µm"))  # µm is OME's default
        return (float(value) if value else None), unit

    (sx, ux), (sy, uy), (sz, uz) = size("X"), size("Y"), size("Z")
    pixel_size = None
    if sx:
        pixel_size = (sy if sy else sx, sx)
        if uy != ux and sy:
            pixel_size = (sx, sx)  # mixed units are not worth supporting: square pixels
    planes = _as_list(px.get("Plane"))
    z0 = 0.0
    if planes and planes[0].get("PositionZ") is not None:
        z0 = float(planes[0]["PositionZ"])
        if normalise_unit(planes[0].get("PositionZUnit", "µm")) != uz:
            z0 = 0.0
    channels = _as_list(px.get("Channel"))
    names = tuple(str(c.get("Name", f"channel {k}")) for k, c in enumerate(channels)) or None
    colors = None
    if channels and all(c.get("Color") is not None for c in channels):
        colors = tuple(_ome_color(int(c["Color"])) for c in channels)
    return Calibration(pixel_size, ux if sx else None, sz, uz if sz else None, z0, names, colors)


def _ome_color(value: int) -> tuple[float, float, float]:
    """OME's signed 32-bit RGBA integer to (r, g, b) in 0..1."""
    v = value & 0xFFFFFFFF
    return ((v >> 24) & 255) / 255, ((v >> 16) & 255) / 255, ((v >> 8) & 255) / 255


def _zarr_attrs(folder: Path) -> dict:
    """The group attributes of an OME-Zarr folder (zarr v2 .zattrs or v3 zarr.json), {} if none."""
    v2 = folder / ".zattrs"
    if v2.is_file():
        return json.loads(v2.read_text(encoding="utf-8"))
    v3 = folder / "zarr.json"
    if v3.is_file():
        attrs = json.loads(v3.read_text(encoding="utf-8")).get("attributes", {})
        return {**attrs, **attrs.get("ome", {})}  # NGFF 0.5 nests its metadata under "ome"
    return {}


def _is_ome_zarr(folder: Path) -> bool:
    try:
        return "multiscales" in _zarr_attrs(folder)
    except (OSError, ValueError):
        return False


def _read_ome_zarr(folder: Path) -> Hyperstack:
    zarr = _zarr()

    attrs = _zarr_attrs(folder)
    ms = attrs["multiscales"][0]
    axes_meta = ms.get("axes") or [{"name": a} for a in "tczyx"[-len(ms.get("datasets", [])) :]]
    names = [(a["name"] if isinstance(a, dict) else str(a)).upper() for a in axes_meta]
    units = [normalise_unit(a.get("unit")) if isinstance(a, dict) else None for a in axes_meta]
    level = ms["datasets"][0]
    data = zarr.open_array(str(folder / level["path"]), mode="r")
    scale = [1.0] * len(names)
    translation = [0.0] * len(names)
    for transform in level.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            scale = [float(v) for v in transform["scale"]]
        elif transform.get("type") == "translation":
            translation = [float(v) for v in transform["translation"]]
    pos = {a: k for k, a in enumerate(names)}
    pixel_size = unit = z_step = z_unit = None
    if "X" in pos and units[pos["X"]]:
        unit = units[pos["X"]]
        pixel_size = (scale[pos["Y"]], scale[pos["X"]])
    z0 = 0.0
    if "Z" in pos and units[pos["Z"]]:
        z_step, z_unit, z0 = scale[pos["Z"]], units[pos["Z"]], translation[pos["Z"]]
    channels = attrs.get("omero", {}).get("channels") or []
    ch_names = tuple(str(c.get("label", f"channel {k}")) for k, c in enumerate(channels)) or None
    colors = None
    if channels and all(isinstance(c.get("color"), str) and len(c["color"]) == 6 for c in channels):
        colors = tuple(tuple(int(c["color"][i : i + 2], 16) / 255 for i in (0, 2, 4)) for c in channels)
    cal = Calibration(pixel_size, unit, z_step, z_unit, z0, ch_names, colors)
    return Hyperstack(data, "".join(names), cal, name=folder.name)
