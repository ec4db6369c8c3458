"""napari writer: an image layer to TIFF, PNG or JPEG, atomically, metadata kept.

- 2-D images (fused results, single frames) go through
  :func:`napari_focus_stack.io.write_image`: 16-bit is kept in TIFF and PNG,
  JPEG is written at quality 95, and the EXIF and ICC profile found in
  ``layer.metadata`` (copied there by the reader and by the widget from the
  source stack) are embedded.
- Depth and confidence maps are float32: they are written as float32 TIFF
  unchanged; PNG and JPEG would lose them, so those are refused with a
  message saying to use ``.tif``.
- Stacks (``(Z, Y, X)`` or ``(Z, Y, X, 3)``) become multi-page TIFFs.
- Calibrated layers (y/x in a length unit, e.g. read from microscope data,
  or a height map in micrometres) saved as ``.tif`` keep their calibration
  through :func:`napari_focus_stack.io.write_calibrated_tiff`: an
  ImageJ-compatible TIFF (pixel size and unit, axes T, Z, C, Y, X with the
  z step and first plane's position of a z axis; a height map's value
  unit, shown by Fiji next to each value), or an OME-TIFF for ``.ome.tif``
  (``PhysicalSizeZ`` and unit, the planes' ``PositionZ``): the plugin
  reader gives the same scale, translate, units, axis labels, colormap and
  (maps) contrast back. A result's single z plane (:mod:`.geometry`) is
  written as a z axis of one plane with its thickness and position, so a
  ``(T, 1, Y, X)`` fused layer is a ``TYX`` time series to Fiji and
  reopens as ``(T, 1, Y, X)`` over its input. Every result layer of this
  plugin (``metadata["focus_stack_role"]``) goes this way except a plain
  2-D fused photo, which keeps its EXIF and ICC profile; depth and
  confidence maps record what they are and their contrast (ImageJ ``Info``,
  ``vunit``, ``min`` and ``max``; OME channel name), and a time axis in
  seconds (or minutes...) its interval.

Several selected layers (:func:`write_layers`) are written one file each,
``<name>_<layer><ext>``: images as above, Surface layers as meshes
(:mod:`._mesh_writer`).

Every file goes through :func:`napari_focus_stack.io.write_atomic` (a hidden
temporary file beside the target, renamed over it when complete, errors
mapped to :class:`~napari_focus_stack.errors.OutputError`, the process umask
left alone), and the files the layer was read from (``metadata["paths"]``)
are never overwritten.

A Labels layer (the retouch mask, see :mod:`.retouch_panel`) is written by
:func:`write_labels_layer` as a TIFF marked as a retouch mask, with its
input's name and frame names, which the plugin's reader opens again as a
Labels layer over that input's result.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from ..io import Calibration, is_ome_name, write_atomic, write_calibrated_tiff, write_image
from ..io.mask import write_retouch_mask
from ..io.mesh import MESH_EXTENSIONS
from . import layer_metadata as md
from ._mesh_writer import write_surface_layer
from .layers import unit_symbol

__all__ = ["JPEG_QUALITY", "write_image_layer", "write_labels_layer", "write_layers"]

JPEG_QUALITY = 95
_TIFF = (".tif", ".tiff")


def write_image_layer(path: str, data: Any, meta: dict) -> list[str]:
    """Write one napari image layer (npe2 single-layer writer).

    Parameters
    ----------
    path : str
        Target file; its extension (``.tif``, ``.tiff``, ``.png``, ``.jpg``,
        ``.jpeg``) picks the format.
    data : array-like
        The layer data (NumPy or dask).
    meta : dict
        The layer attributes napari passes (``rgb``, ``metadata``...).

    Returns
    -------
    list of str
        The written file.

    Raises
    ------
    OutputError
        The format cannot hold the data (a float map or a stack as PNG/JPEG),
        the target is one of the layer's source files, or the file could not
        be written; the message says what to do.
    """
    target = Path(path)
    ext = target.suffix.lower()
    metadata = meta.get("metadata") or {}
    protect = [p for p in metadata.get(md.PATHS) or [] if p]
    rgb = bool(meta.get("rgb", False))
    a = np.asarray(data)
    if ext in _TIFF:
        layout = _calibrated_layout(target, a, meta)
        if layout is not None:
            _write_calibrated(target, a, meta, layout, protect)
            return [str(target)]
    if a.ndim > (3 if rgb else 2):
        if ext not in _TIFF:
            raise OutputError(
                f"cannot write {target}: {meta.get('name', 'the layer')!r} is a stack of "
                f"{a.shape[0]} frames; save it as .tif (multi-page) or pick one frame."
            )
        _write_tiff_stack(target, a, rgb, metadata.get(md.ICC), protect)
        return [str(target)]
    if a.dtype.kind == "f" and ext not in _TIFF:
        raise OutputError(
            f"cannot write {target}: {meta.get('name', 'the layer')!r} holds float values "
            "(a depth or confidence map?) that PNG and JPEG would round to 8 bits; "
            "save it as .tif to keep them as float32."
        )
    if a.dtype.kind == "f":
        a = a.astype(np.float32, copy=False)
    write_image(target, a, quality=JPEG_QUALITY, exif=metadata.get(md.EXIF), icc=metadata.get(md.ICC),
                protect=protect)
    return [str(target)]


def write_labels_layer(path: str, data: Any, meta: dict) -> list[str]:
    """Write a Labels layer (a retouch mask) as a marked TIFF (npe2 single-layer writer).

    Raises
    ------
    OutputError
        Not a ``.tif`` name, not a 2-D layer, or the file could not be written.
    """
    metadata = meta.get("metadata") or {}
    a = np.asarray(data)
    written = write_retouch_mask(
        path, a, input_name=metadata.get(md.INPUT), frames=list(metadata.get(md.NAMES) or []),
        protect=[p for p in metadata.get(md.PATHS) or [] if p],
    )
    return [str(written)]


def _write_tiff_stack(target: Path, stack: np.ndarray, rgb: bool, icc: bytes | None, protect: list) -> None:
    """A multi-page TIFF, one page per frame, written atomically."""
    import tifffile

    if stack.dtype.kind == "f":
        stack = stack.astype(np.float32, copy=False)
    write_atomic(target, lambda fh: tifffile.imwrite(
        fh,
        stack,
        photometric="rgb" if rgb else "minisblack",
        compression="zlib",
        iccprofile=icc or None,
        metadata={"axes": "ZYXS" if rgb else "ZYX"},
    ), protect=protect)


def _letters(labels: list[str], ndim: int) -> list[str]:
    """Our axes letters for a layer's axes: t, c and z by label, y and x last, other sliders looped."""
    letters = []
    spare = iter("PQABDEFGHIJKLMNORUVW")
    for k in range(ndim - 2):
        label = labels[k].strip().lower() if k < len(labels) else ""
        letters.append(label.upper() if label in ("t", "c", "z") and label.upper() not in letters else next(spare))
    return letters + ["Y", "X"]


def _calibrated_layout(target: Path, a: np.ndarray, meta: dict) -> tuple[str, tuple[int, ...]] | None:
    """``(axes, order)`` to write the layer as a calibrated TIFF, or None when it has nothing to keep.

    A layer has a calibration to keep when its y/x or z unit is a length,
    its values are heights in a length unit, the name asks for OME-TIFF, or
    it is a map of this plugin or a result with sliders. Planes of length
    one are dropped, but for a z with a length unit (a result's single
    plane, kept with its position); the axes are put in ImageJ's order
    (loop axes as T, then Z, C, Y, X).
    """
    rgb = bool(meta.get("rgb", False))
    ndim = a.ndim - (1 if rgb else 0)
    units = list(meta.get("units") or [])
    height_unit = (meta.get("metadata") or {}).get(md.HEIGHT_UNIT)
    role = (meta.get("metadata") or {}).get(md.ROLE)
    if ndim < 2:
        return None
    letters = _letters([str(v) for v in meta.get("axis_labels") or []], ndim)
    z_unit = len(units) == ndim and "Z" in letters and unit_symbol(units[letters.index("Z")]) is not None
    calibrated = (
        (len(units) == ndim and unit_symbol(units[-1]) is not None)
        or z_unit
        or height_unit not in (None, "frame")
        or is_ome_name(target)
        or role in ("depth", "confidence")
        or (role is not None and ndim > 2)
    )
    if not calibrated:
        return None
    keep = [k for k in range(ndim) if letters[k] in "YX" or a.shape[k] > 1 or (letters[k] == "Z" and z_unit)]
    loop = [k for k in keep if letters[k] not in "ZCYX"]
    order = tuple(loop + [k for k in keep if letters[k] == "Z"] + [k for k in keep if letters[k] == "C"]
                  + [ndim - 2, ndim - 1])
    axes = "".join("T" if letters[k] not in "ZCYX" and len(loop) == 1 else letters[k] for k in order)
    return axes + ("S" if rgb else ""), order + ((ndim,) if rgb else ())


def _write_calibrated(target: Path, a: np.ndarray, meta: dict, layout: tuple, protect: list) -> None:
    """An ImageJ or OME-TIFF with the layer's pixel size, unit, colour and (height maps) value unit."""
    axes, order = layout
    squeezed = [k for k in range(a.ndim) if k not in order]
    data = np.transpose(a, order + tuple(squeezed)).reshape([a.shape[k] for k in order])
    if data.dtype.kind == "f":
        data = data.astype(np.float32, copy=False)
    elif data.dtype == np.bool_:
        data = data.astype(np.uint8) * np.uint8(255)
    scale = [float(v) for v in meta.get("scale") or [1.0] * a.ndim]
    translate = [float(v) for v in meta.get("translate") or [0.0] * len(scale)]
    units = list(meta.get("units") or [])
    unit = unit_symbol(units[-1]) if units else None
    z_step = z_unit = None
    z0 = 0.0
    if "Z" in axes:
        z_at = order[axes.index("Z")]
        z_unit = unit_symbol(units[z_at]) if len(units) > z_at else None
        if z_unit is not None and z_at < len(scale):
            z_step, z0 = scale[z_at], translate[z_at] if z_at < len(translate) else 0.0
    metadata = meta.get("metadata") or {}
    role = metadata.get(md.ROLE)
    colormap = meta.get("colormap")
    colours = None
    if isinstance(colormap, dict) and colormap.get("name") not in (None, "gray", "turbo") and "C" not in axes:
        colours = (tuple(float(v) for v in np.asarray(colormap["colors"])[-1][:3]),)
    height_unit = metadata.get(md.HEIGHT_UNIT)
    cal = Calibration(
        pixel_size=(scale[-2], scale[-1]) if unit else None,
        unit=unit,
        z_step=z_step,
        z_unit=z_unit if z_step else None,
        z0=z0 if z_step else 0.0,
        channel_names=None if "C" in axes else (str(meta.get("name", "image")),),
        channel_colors=colours,
    )
    value_name = {"depth": "height" if height_unit not in (None, "frame") else "depth (frame index)",
                  "confidence": "confidence"}.get(role)
    value_unit = height_unit if role == "depth" and height_unit not in (None, "frame") else None
    limits = meta.get("contrast_limits")
    shown = tuple(float(v) for v in limits) if value_name and limits is not None else None
    t_at = next((order[k] for k, letter in enumerate(axes) if letter == "T"), None)
    time_step = _seconds(scale[t_at], units[t_at]) if t_at is not None and t_at < len(units) else None
    write_calibrated_tiff(target, data, axes, cal, value_unit=value_unit, value_name=value_name, display_range=shown,
                          time_step=time_step, protect=protect)


def _seconds(step: float, unit: Any) -> float | None:
    """A time axis's step in seconds (None when its unit is not a time)."""
    try:
        import pint

        quantity = pint.get_application_registry().Quantity(float(step), str(unit))
        if quantity.dimensionality == {"[time]": 1}:
            return float(quantity.to("second").magnitude)
    except Exception:  # noqa: BLE001 - pint missing or a unit it does not know: no time step
        return None
    return None


def write_layers(path: str, layer_data: list) -> list[str]:
    """Write several layers, one file each (npe2 multi-layer writer): images and surfaces.

    Each layer goes through :func:`write_image_layer` (images) or
    :func:`._mesh_writer.write_surface_layer` (surfaces) to
    ``<stem>_<layer name><suffix>`` beside `path`: `path`'s suffix for
    the layers it suits, else ``.tif`` for images and ``.ply`` for
    surfaces. One layer is written to `path` itself. When a layer fails,
    the files this call created are removed and the error is raised (napari
    shows it): never a silent nothing.

    Returns
    -------
    list of str
        Every file written.
    """
    target = Path(path)
    suffix = "".join(target.suffixes[-2:]) if target.name.lower().endswith(".ome.tif") else target.suffix
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    if not layer_data:
        raise OutputError(f"cannot write {target}: no layer was selected.")
    jobs = []
    for data, meta, kind in layer_data:
        if kind not in ("image", "surface"):
            raise OutputError(f"cannot write {meta.get('name', 'a layer')!r}: this plugin writes image and surface "
                              f"layers, not {kind} layers.")
        mesh = suffix.lower() in MESH_EXTENSIONS
        ext = suffix if (kind == "surface") == mesh and suffix else (".ply" if kind == "surface" else ".tif")
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(meta.get("name", "layer"))).strip("_")
        out = target if len(layer_data) == 1 and ext == suffix else target.with_name(f"{stem}_{name}{ext}")
        jobs.append((out, data, meta, kind))
    names = [str(out).lower() for out, *_ in jobs]
    clash = next((n for n in names if names.count(n) > 1), None)
    if clash is not None:
        raise OutputError(f"two of the selected layers would be written to {clash}; give them different names.")
    written: list[str] = []
    created: list[Path] = []
    try:
        for out, data, meta, kind in jobs:
            new = not out.exists()
            files = write_surface_layer(str(out), data, meta) if kind == "surface" else write_image_layer(
                str(out), data, meta)
            written += files
            created += [Path(f) for f in files] if new else []
    except BaseException:
        for f in created:
            f.unlink(missing_ok=True)
        raise
    return written
