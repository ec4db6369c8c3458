"""Calibrated TIFF output: ImageJ-compatible by default, OME-TIFF for ``*.ome.tif``.

The fused images and height maps of microscope data keep what Fiji and
OME readers need to measure them:

- ImageJ (``imagej=True``): the axes (T, Z, C, Y, X, S, in ImageJ's
  order), the pixel size in the XResolution and YResolution tags with its
  ``unit`` in the description, the z step (``spacing``, in that unit) and
  the first plane's position (``zorigin``), channel colours as LUTs of a
  composite image, and for a height map its value unit (``vunit``, shown by
  Fiji next to pixel values) and display range (``min``, ``max``); the time
  between frames (``finterval``, seconds);
- OME-TIFF: ``PhysicalSizeX/Y/Z`` and units, the planes' ``PositionZ``,
  channel names and colours (a height map's channel is called e.g.
  ``"height (µm)"``), ``TimeIncrement``, and the resolution tags in
  centimetres for other TIFF readers.

A result fused along z keeps one plane that spans the input's z range
(:func:`collapsed_z`): written as a z axis of one plane with that plane's
thickness and position, it reopens where the result was
(:func:`~.calibrated_image.read_calibrated_image`).

:class:`CalibratedTiffWriter` takes the planes one at a time (a time series
of results is written while it is computed, without holding it) and, like
every writer of this package, renames a complete temporary file into place.
Loop axes other than T (positions...) are folded into T: neither format has
another.
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import OutputError
from .atomic import write_atomic
from .hyperstack import Calibration, normalise_unit
from .paths import PathLike

__all__ = [
    "CalibratedTiffWriter", "collapsed_z", "convert_length", "is_length_unit", "is_ome_name", "write_calibrated_tiff",
]

_MICROMETRES = {"µm": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6, "pm": 1e-6, "Å": 1e-4, "in": 25400.0}
_IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
_DONE = object()


class _Aborted(Exception):
    pass


def is_ome_name(path: PathLike) -> bool:
    """Whether ``path`` asks for OME-TIFF (``*.ome.tif``, ``*.ome.tiff``)."""
    name = Path(path).name.lower()
    return name.endswith(".ome.tif") or name.endswith(".ome.tiff")


def _fold_axes(shape: tuple[int, ...], axes: str) -> tuple[tuple[int, ...], str]:
    """Fold every loop axis into one leading T axis (ImageJ and OME know T only); Z, C, Y, X, S follow in order."""
    loop = [k for k, a in enumerate(axes) if a not in "ZCYXS"]
    rest = axes[len(loop):]
    if loop != list(range(len(loop))) or [a for a in "ZCYXS" if a in rest] != list(rest):
        raise OutputError(
            f"axes {axes!r}: give loop axes (T) first, then Z, C, Y, X and S in that order (ImageJ's TZCYXS)"
        )
    if not loop or (len(loop) == 1 and axes[loop[0]] == "T"):
        return shape, axes
    t = int(np.prod([shape[k] for k in loop]))
    return (t,) + shape[len(loop) :], "T" + axes[len(loop) :]


def collapsed_z(calibration: Calibration, planes: int) -> Calibration:
    """The calibration of one plane that spans `planes` z planes: a result fused along z.

    Its thickness is the whole range and its position the range's middle
    (where napari shows a result layer's single z plane), so that the
    result reopens over its input. Without a z step, unchanged.

    >>> c = collapsed_z(Calibration((0.1, 0.1), "µm", 0.5, "µm", 2.0), 6)
    >>> c.z_step, c.z0
    (3.0, 3.25)
    """
    if calibration.z_step is None:
        return calibration
    step = calibration.z_step
    return replace(calibration, z_step=step * planes, z0=calibration.z0 + step * (planes - 1) / 2)


def _imagej_unit(unit: str) -> str:
    return "micron" if unit == "µm" else unit


def is_length_unit(unit: Any) -> bool:
    """Whether ``unit`` (any spelling :func:`~.hyperstack.normalise_unit` knows) is a length :func:`convert_length`
    converts.

    >>> is_length_unit("micron"), is_length_unit("second"), is_length_unit(None)
    (True, False, False)
    """
    return unit is not None and normalise_unit(str(unit)) in _MICROMETRES


def convert_length(value: float, unit: str | None, to: str | None) -> float:
    """``value`` in ``unit`` expressed in ``to`` (unchanged when either is not a known length unit).

    >>> convert_length(250.0, "nm", "µm"), convert_length(3.0, "frame", "µm")
    (0.25, 3.0)
    """
    if to is None or unit == to or unit not in _MICROMETRES or to not in _MICROMETRES:
        return value
    return value * _MICROMETRES[unit] / _MICROMETRES[to]


def _lut(color: Any) -> np.ndarray:
    rgb = np.clip(np.asarray(color, dtype=float)[:3], 0, 1)
    return np.round(np.outer(rgb, np.arange(256))).astype(np.uint8)


def _ome_color(color: Any) -> int:
    r, g, b = (int(round(255 * float(v))) for v in np.clip(np.asarray(color, dtype=float)[:3], 0, 1))
    value = (r << 24) | (g << 16) | (b << 8) | 255
    return value - (1 << 32) if value >= 1 << 31 else value  # OME wants a signed int32


def _tiff_kwargs(
    path: Path,
    shape: tuple[int, ...],
    dtype: np.dtype,
    axes: str,
    cal: Calibration,
    value_unit: str | None,
    value_name: str | None,
    display_range: tuple[float, float] | None = None,
    time_step: float | None = None,
) -> dict:
    """tifffile.imwrite keywords for a calibrated TIFF of ``shape`` and ``axes``."""
    rgb = axes.endswith("S")
    kw: dict[str, Any] = {"shape": shape, "dtype": dtype, "photometric": "rgb" if rgb else "minisblack"}
    n_channels = shape[axes.index("C")] if "C" in axes else 1
    colors = cal.channel_colors if cal.channel_colors and len(cal.channel_colors) == n_channels else None
    names = cal.channel_names if cal.channel_names and len(cal.channel_names) == n_channels else None
    # TIFF resolutions and OME sizes are positive: a flipped axis (a negative napari scale) keeps its size
    size = tuple(abs(v) for v in cal.pixel_size) if cal.unit and cal.pixel_size else None
    z_step = cal.z_step if "Z" in axes and cal.z_step else None
    z_unit = cal.z_unit or cal.unit
    if is_ome_name(path):
        meta: dict[str, Any] = {"axes": axes}
        if size is not None:
            meta.update(PhysicalSizeY=size[0], PhysicalSizeYUnit=cal.unit, PhysicalSizeX=size[1],
                        PhysicalSizeXUnit=cal.unit)
        if z_step is not None and z_unit:
            meta.update(PhysicalSizeZ=abs(z_step), PhysicalSizeZUnit=z_unit)
            if cal.z0:  # the planes' positions: OME's only place for the first plane's
                planes = int(np.prod([n for a, n in zip(axes, shape, strict=False) if a not in "YXS"]))
                nz, z_at = shape[axes.index("Z")], axes.index("Z")
                inner = int(np.prod([n for a, n in zip(axes[z_at + 1:], shape[z_at + 1:], strict=False)
                                     if a not in "YXS"]))
                positions = [cal.z0 + z_step * ((k // inner) % nz) for k in range(planes)]
                meta["Plane"] = {"PositionZ": positions, "PositionZUnit": [z_unit] * planes}
        channel: dict[str, Any] = {}
        if value_name:
            label = f"{value_name} ({value_unit})" if value_unit else value_name
            channel["Name"] = [label] * n_channels
        elif names:
            channel["Name"] = list(names)
        if colors:
            channel["Color"] = [_ome_color(c) for c in colors]
        if channel:
            meta["Channel"] = channel
        if time_step and "T" in axes:
            meta.update(TimeIncrement=float(time_step), TimeIncrementUnit="s")
        kw.update(ome=True, metadata=meta)
        if size is not None and cal.unit in _MICROMETRES:
            um = _MICROMETRES[cal.unit]
            kw.update(resolution=(1e4 / (size[1] * um), 1e4 / (size[0] * um)), resolutionunit="CENTIMETER")
        return kw
    if np.dtype(dtype) not in _IMAGEJ_DTYPES:
        raise OutputError(f"{path}: ImageJ TIFFs hold 8-bit, 16-bit or float32 data, not {np.dtype(dtype)}")
    meta = {"axes": axes}
    if size is not None:
        meta["unit"] = _imagej_unit(cal.unit)
        kw["resolution"] = (1.0 / size[1], 1.0 / size[0])
    if z_step is not None and z_unit:
        # ImageJ has one length unit: the z step is given in the pixel size's
        spacing = abs(convert_length(z_step, z_unit, cal.unit) if size is not None else z_step)
        meta.setdefault("unit", _imagej_unit(z_unit))
        meta["spacing"] = spacing
        if cal.z0:
            meta["zorigin"] = -cal.z0 / z_step  # in planes, as ImageJ's Calibration.zOrigin
    if n_channels > 1:
        meta["mode"] = "composite"
    if colors:  # a single channel's colour too (a fused channel layer)
        meta["LUTs"] = [_lut(c) for c in colors]
    if value_unit:
        meta["vunit"] = _imagej_unit(value_unit)
    if display_range is not None:
        meta["min"], meta["max"] = (float(v) for v in display_range)
    if time_step and "T" in axes:
        meta["finterval"] = float(time_step)
    if value_name:
        meta["Info"] = f"{value_name}" + (f" in {value_unit}" if value_unit else "")
    kw.update(imagej=True, metadata=meta)
    return kw


class CalibratedTiffWriter:
    """Write a calibrated TIFF one plane at a time, atomically.

    Parameters
    ----------
    path : str or path-like
        ``*.ome.tif`` / ``*.ome.tiff`` gives OME-TIFF, any other name an
        ImageJ-compatible TIFF.
    shape : tuple of int
        Shape of the whole image, axes ``axes``.
    dtype : dtype
    axes : str
        e.g. ``"TCYX"`` or ``"TZCYX"``; loop axes first, then Z, C, Y, X and
        S (RGB samples), in that order (ImageJ's).
    calibration : Calibration, optional
        Pixel size and unit, z step, its unit and first plane's position
        (written when ``axes`` has a Z), channel names and colours.
    value_unit, value_name : str, optional
        What the pixel values are (a height map: ``"height"`` in ``"µm"``).
    display_range : (float, float), optional
        The contrast to show (ImageJ's ``min`` and ``max``; OME has no place for it).
    time_step : float, optional
        Seconds between time points.
    protect : iterable of path-like
        Inputs that must not be overwritten.

    Examples
    --------
    >>> import tempfile, tifffile
    >>> cal = Calibration(pixel_size=(0.1, 0.1), unit="µm")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = Path(folder) / "height.tif"
    ...     with CalibratedTiffWriter(path, (2, 4, 5), np.float32, "TYX", cal, value_unit="µm") as out:
    ...         for t in range(2):
    ...             out.write(np.full((4, 5), t, np.float32))
    ...     with tifffile.TiffFile(path) as tif:
    ...         tif.series[0].axes, tif.imagej_metadata["unit"], tif.imagej_metadata["vunit"]
    ('TYX', 'micron', 'micron')
    """

    def __init__(
        self,
        path: PathLike,
        shape: tuple[int, ...],
        dtype: Any,
        axes: str,
        calibration: Calibration | None = None,
        *,
        value_unit: str | None = None,
        value_name: str | None = None,
        display_range: tuple[float, float] | None = None,
        time_step: float | None = None,
        protect: Iterable[PathLike | None] = (),
    ) -> None:
        self.path = Path(path)
        shape, axes = _fold_axes(tuple(int(n) for n in shape), axes.upper())
        self.shape, self.axes, self.dtype = shape, axes, np.dtype(dtype)
        plane_dims = 3 if axes.endswith("S") else 2
        self.plane_shape = shape[-plane_dims:]
        self.n_planes = int(np.prod(shape[:-plane_dims]))
        self.written = 0
        kwargs = _tiff_kwargs(self.path, shape, self.dtype, axes, calibration or Calibration(), value_unit, value_name,
                              display_range, time_step)
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        protect = list(protect)

        def planes() -> Iterator[np.ndarray]:
            while True:
                item = self._queue.get()
                if item is _DONE:
                    return
                if item is None:
                    raise _Aborted
                yield item

        def run() -> None:
            import tifffile

            try:
                write_atomic(self.path, lambda fh: tifffile.imwrite(fh, data=planes(), **kwargs), protect=protect)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread and re-raised there
                self._error = exc

        self._thread = threading.Thread(target=run, name=f"write {self.path.name}", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> None:
        while True:
            if not self._thread.is_alive():
                self._raise()
                raise OutputError(f"{self.path}: the writer stopped early")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        if self._error is not None and not isinstance(self._error, _Aborted):
            err, self._error = self._error, None
            if isinstance(err, OutputError):
                raise err
            raise OutputError(f"{self.path} could not be written ({err})") from err

    def write(self, block: np.ndarray) -> None:
        """Append planes: ``block`` is one plane or a stack of them (trailing axes of one plane)."""
        block = np.asarray(block)
        planes = block.reshape((-1,) + tuple(self.plane_shape))
        if self.written + len(planes) > self.n_planes:
            raise OutputError(f"{self.path}: more planes than the {self.n_planes} announced")
        for plane in planes:
            self._put(np.ascontiguousarray(plane, dtype=self.dtype))
            self.written += 1

    def close(self) -> Path:
        """Finish the file (all planes must have been written) and rename it into place."""
        if self.written != self.n_planes:
            self.abort()
            raise OutputError(f"{self.path}: {self.written} of {self.n_planes} planes were written")
        self._put(_DONE)
        self._thread.join()
        self._raise()
        return self.path

    def abort(self) -> None:
        """Stop writing; nothing is left behind (the target keeps its previous content)."""
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=5)
            except queue.Full:
                pass
            self._thread.join(timeout=30)
        self._error = None

    def __enter__(self) -> CalibratedTiffWriter:
        return self

    def __exit__(self, exc_type: Any, *rest: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_calibrated_tiff(
    path: PathLike,
    data: np.ndarray,
    axes: str,
    calibration: Calibration | None = None,
    *,
    value_unit: str | None = None,
    value_name: str | None = None,
    display_range: tuple[float, float] | None = None,
    time_step: float | None = None,
    protect: Iterable[PathLike | None] = (),
) -> Path:
    """Write a whole array as a calibrated TIFF (see :class:`CalibratedTiffWriter`)."""
    data = np.asarray(data)
    with CalibratedTiffWriter(
        path, data.shape, data.dtype, axes, calibration, value_unit=value_unit, value_name=value_name,
        display_range=display_range, time_step=time_step, protect=protect,
    ) as out:
        out.write(data)
    return Path(path)
