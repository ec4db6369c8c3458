"""Reading microscope files into a :class:`~.hyperstack.Hyperstack`: ImageJ hyperstacks, OME-TIFF, OME-Zarr.

:func:`read_hyperstack` opens a file without reading its pixels: a TIFF
through tifffile's Zarr view of its pages (one page, i.e. one plane, per
chunk), an OME-Zarr through zarr (its first, full-resolution level); planes
are read when used, so a file larger than memory is never loaded whole.

Where the calibration comes from:

- ImageJ: ``unit``, ``spacing`` (z step) and ``zorigin`` in the image
  description, the pixel size from the XResolution and YResolution tags,
  channel colours from the LUTs of a composite image;
- OME-TIFF: ``PhysicalSizeX/Y/Z`` and their units, ``PositionZ`` of the
  first plane, channel ``Name`` and ``Color``;
- OME-Zarr (NGFF 0.4 and 0.5): the axes' units, the first level's ``scale``
  and ``translation``, and the ``omero`` channels' labels and colours.

A size no sample can have (NaN, inf, 0, negative, absurd) is ignored with one
warning line naming the file and the field.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FocusStackWarning, InputError
from .checks import as_path, check_file, guarded, is_tiff, tifffile_messages, warn_tifffile_messages
from .hyperstack import SIZE_RANGE, Calibration, Hyperstack, is_size, normalise_unit
from .paths import PathLike
from .tiff import check_planes_present

__all__ = ["is_hyperstack_file", "plane_count", "read_hyperstack"]

# TIFF ResolutionUnit: 2 inch, 3 centimetre (1 "none": ImageJ puts the unit in its description)
_TIFF_RESOLUTION_UNIT_UM = {2: 25400.0, 3: 10000.0}


def _size_or_none(value: Any, what: str, name: str, consequence: str) -> float | None:
    """`value` as a float when :func:`is_size` (None stays None); else None, with one warning line naming it."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if is_size(number):
        return number
    warnings.warn(
        f"{name}: {what} {value} is not a size (a number from {SIZE_RANGE[0]:g} to {SIZE_RANGE[1]:g}); "
        f"ignored: {consequence}",
        FocusStackWarning, stacklevel=2,
    )
    return None


def _position_or_zero(value: Any, what: str, name: str) -> float:
    """A finite position (z0), else 0 with one warning line naming it."""
    try:
        number = float(value or 0)
    except (TypeError, ValueError):
        number = float("nan")
    if math.isfinite(number) and abs(number) <= SIZE_RANGE[1]:
        return number
    warnings.warn(f"{name}: {what} {value} is not a position; ignored: heights start at 0", FocusStackWarning,
                  stacklevel=2)
    return 0.0


_NO_Z = "heights are frame indices"
_NO_PIXEL = "the outputs carry no pixel size"


def is_hyperstack_file(path: PathLike) -> bool:
    """Whether a file is microscope data to read with :func:`read_hyperstack`.

    True for an OME-Zarr folder, an ImageJ hyperstack or an OME-TIFF, and a
    TIFF with more than one non-spatial axis (e.g. time and z); a plain
    multi-page TIFF is a z-stack of frames (:class:`FrameSource`).
    """
    p = as_path(path)
    if p.is_dir():
        return _is_ome_zarr(p)
    try:
        head = check_file(p)
    except InputError:
        return False
    if not is_tiff(head):
        return False
    import tifffile

    try:
        with tifffile_messages(), tifffile.TiffFile(p) as tif:  # a probe: the reader says what is wrong
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

    p = as_path(path)
    try:
        if not is_tiff(check_file(p)):
            return 0
        with tifffile_messages(), tifffile.TiffFile(p) as tif:  # a probe: the reader says what is wrong
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
    p = as_path(path)
    if p.is_dir():
        if not _is_ome_zarr(p):
            raise InputError(f"{p} is a folder but not an OME-Zarr (no multiscales metadata)")
        return guarded(p, "OME-Zarr", lambda: _read_ome_zarr(p))
    head = check_file(p)
    if not is_tiff(head):
        raise InputError(f"{p} is not a TIFF or an OME-Zarr folder: microscope data needs one of those")
    with tifffile_messages() as messages:
        hs = guarded(p, "TIFF", lambda: _read_tiff(p, series))
    warn_tifffile_messages(p, messages)
    return hs


def _axes_from_tifffile(axes: str) -> str:
    """tifffile's axes letters to ours: one generic sequence axis (I, Q) is the z axis."""
    axes = axes.upper()
    if "Z" not in axes:
        generic = [a for a in axes if a in "IQ"]
        if len(generic) == 1:
            axes = axes.replace(generic[0], "Z")
    return axes


def _import_zarr() -> Any:
    try:
        import zarr
    except ImportError:
        raise InputError(
            "reading microscope data a plane at a time needs zarr: "
            "pip install 'napari-focus-stack[microscopy]'"
        ) from None
    return zarr


def _read_tiff(path: Path, series: int) -> Hyperstack:
    data, axes, cal, closer, _ = open_tiff_series(path, series)
    return Hyperstack(data, axes, cal, name=path.name, closer=closer)


def open_tiff_series(
    path: Path, series: int = 0, describe: Callable[[Any, int], Any] | None = None
) -> tuple[Any, str, Calibration, Callable[[], None], Any]:
    """A TIFF series opened lazily (a Zarr view of its pages) with its axes and calibration.

    Returns ``(data, axes, calibration, close, described)``, where
    ``described`` is ``describe(tiff_file, series)`` (None without it), for
    readers that need more of the file's metadata.

    Raises
    ------
    InputError
        No image data, no such series, or planes the metadata names but the
        file does not hold.
    """
    import tifffile

    zarr = _import_zarr()
    described = None
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise InputError(f"{path} contains no image data")
        if not 0 <= series < len(tif.series):
            raise InputError(f"{path} has {len(tif.series)} series; series {series} does not exist")
        s = tif.series[series]
        check_planes_present(s, path)
        axes = _axes_from_tifffile(s.axes)
        cal = tiff_calibration(tif, series, path.name)
        if describe is not None:
            described = describe(tif, series)
    store = tifffile.imread(path, aszarr=True, series=series, level=0)
    try:
        data = zarr.open(store, mode="r")
    except Exception:
        store.close()
        raise
    return data, axes, cal, store.close, described


def _tiff_pixel_size(
    page: Any, name: str, unit: str | None = None
) -> tuple[tuple[float, float] | None, str | None]:
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
        sy, sx, unit = sy * factor, sx * factor, "µm"
    elif (sx, sy) == (1.0, 1.0):
        return None, unit
    sizes = [_size_or_none(v, f"the pixel size ({tag})", name, _NO_PIXEL) for v, tag in ((sy, "YResolution"),
                                                                                         (sx, "XResolution"))]
    return (None, unit) if None in sizes else (tuple(sizes), unit)


def imagej_calibration(ij: dict, page: Any, name: str) -> Calibration:
    unit = normalise_unit(ij.get("unit"))
    pixel_size, unit = _tiff_pixel_size(page, name, unit) if unit else (None, None)
    z_step = _size_or_none(ij.get("spacing"), "the z step (ImageJ spacing)", name, _NO_Z)
    z0 = -_position_or_zero(ij.get("zorigin", 0), "the z origin (ImageJ zorigin)", name) * (z_step or 0)
    colors = None
    luts = ij.get("LUTs")
    if luts is not None and np.ndim(luts) == 2:  # tifffile gives a single channel's LUT unlisted
        luts = [luts]
    if luts is not None and len(luts):
        colors = tuple(tuple(float(v) / 255 for v in np.asarray(lut)[:, -1]) for lut in luts)
    return Calibration(pixel_size, unit, z_step, unit if z_step else None, z0 + 0.0, None, colors)


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [] if x is None else [x]


def ome_pixels(xml: str, series: int) -> dict | None:
    """The ``Pixels`` element of an OME-XML's image `series` as a dict; None when there is no such image."""
    import tifffile

    images = _as_list(tifffile.xml2dict(xml).get("OME", {}).get("Image"))
    return images[series].get("Pixels", {}) if series < len(images) else None


def tiff_calibration(tif: Any, series: int, name: str) -> Calibration:
    """The calibration of an open TIFF's `series`: from its OME-XML, its ImageJ metadata or its resolution tags."""
    if tif.is_ome:
        return ome_tiff_calibration(tif.ome_metadata, series, name)
    if tif.is_imagej:
        return imagej_calibration(tif.imagej_metadata or {}, tif.series[series].keyframe, name)
    return Calibration(*_tiff_pixel_size(tif.series[series].keyframe, name))


def ome_tiff_calibration(xml: str, series: int, name: str) -> Calibration:
    px = ome_pixels(xml, series)
    if px is None:
        return Calibration()

    def size(axis: str) -> tuple[float | None, str]:
        value = px.get(f"PhysicalSize{axis}")
        unit = normalise_unit(px.get(f"PhysicalSize{axis}Unit", "µm"))  # µm is OME's default
        what = f"the {'z step' if axis == 'Z' else 'pixel size'} (PhysicalSize{axis})"
        return _size_or_none(value, what, name, _NO_Z if axis == "Z" else _NO_PIXEL), unit

    (sx, ux), (sy, uy), (sz, uz) = size("X"), size("Y"), size("Z")
    pixel_size = None
    if sx:
        pixel_size = (sy if sy else sx, sx)
        if uy != ux and sy:
            pixel_size = (sx, sx)  # mixed units are not worth supporting: square pixels
    planes = _as_list(px.get("Plane"))
    z0 = 0.0
    if planes and planes[0].get("PositionZ") is not None:
        z0 = _position_or_zero(planes[0]["PositionZ"], "the first plane's PositionZ", name)
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
    zarr = _import_zarr()

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
    name = folder.name
    if "X" in pos and units[pos["X"]]:
        sizes = [_size_or_none(scale[pos[a]], f"the pixel size (scale of {a.lower()})", name, _NO_PIXEL)
                 for a in "YX" if a in pos]
        if len(sizes) == 2 and None not in sizes:
            unit, pixel_size = units[pos["X"]], tuple(sizes)
    z0 = 0.0
    if "Z" in pos and units[pos["Z"]]:
        z_step = _size_or_none(scale[pos["Z"]], "the z step (scale of z)", name, _NO_Z)
        if z_step is not None:
            z_unit = units[pos["Z"]]
            z0 = _position_or_zero(translation[pos["Z"]], "the z translation", name)
    channels = attrs.get("omero", {}).get("channels") or []
    ch_names = tuple(str(c.get("label", f"channel {k}")) for k, c in enumerate(channels)) or None
    colors = None
    if channels and all(isinstance(c.get("color"), str) and len(c["color"]) == 6 for c in channels):
        colors = tuple(tuple(int(c["color"][i : i + 2], 16) / 255 for i in (0, 2, 4)) for c in channels)
    cal = Calibration(pixel_size, unit, z_step, z_unit, z0, ch_names, colors)
    return Hyperstack(data, "".join(names), cal, name=folder.name)
