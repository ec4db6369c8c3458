"""Calibrated images that are not z-stacks: the fused images and maps this package writes, read back.

:func:`read_hyperstack` opens data to focus-stack: it needs a z axis of two
or more planes. The results (a fused image ``YX``, ``CYX``, ``TYX``,
``TCYX``; a height or confidence map) have none, yet carry a calibration
worth keeping: :func:`read_calibrated_image` opens any ImageJ or OME-TIFF
lazily with its axes and :class:`~.hyperstack.Calibration`, and with what
:mod:`.calibrated` records beside it (:class:`ImageInfo`):

- what the values are: a height map (``"height"`` in ``"µm"``), a depth map
  in frame indices, a confidence map (ImageJ: the ``Info`` text and
  ``vunit``; OME: the channel name, e.g. ``"height (µm)"``);
- the display range (ImageJ ``min`` and ``max``);
- the time between frames (ImageJ ``finterval``; OME ``TimeIncrement``);
- where the single plane of a result lies in z: a z calibration (ImageJ
  ``spacing`` and ``zorigin``; OME ``PhysicalSizeZ`` and ``PositionZ``)
  on a file without a z axis is that of one plane spanning the input's z
  range (see :func:`.calibrated.collapsed_z`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .checks import as_path, check_file, guarded, is_tiff
from .hyperstack import Calibration, normalise_unit
from .microscopy import ome_pixels, open_tiff_series, tiff_calibration
from .paths import PathLike

__all__ = ["CalibratedImage", "ImageInfo", "image_info", "is_calibrated_image", "read_calibrated_image"]

#: What the values of a map this package writes are called (``value_name`` of :mod:`.calibrated`).
VALUE_NAMES = ("height", "depth (frame index)", "confidence")
_SECONDS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "millisecond": 1e-3,
            "min": 60.0, "minute": 60.0, "minutes": 60.0, "h": 3600.0, "hour": 3600.0, "hours": 3600.0}


@dataclass(frozen=True)
class ImageInfo:
    """What a calibrated TIFF says about its values and axes besides the calibration.

    Attributes
    ----------
    value_name : str or None
        ``"height"``, ``"depth (frame index)"`` or ``"confidence"`` for the
        maps this package writes; None for an image.
    value_unit : str or None
        The unit of the values (a height map's ``"µm"``).
    display_range : (float, float) or None
        The contrast a viewer should show (ImageJ's ``min`` and ``max``).
    time_step : float or None
        Seconds between time points.
    """

    value_name: str | None = None
    value_unit: str | None = None
    display_range: tuple[float, float] | None = None
    time_step: float | None = None


@dataclass
class CalibratedImage:
    """An N-D image with named axes and its calibration, read lazily (no z axis needed).

    Attributes
    ----------
    data : zarr array
        Planes are read when indexed.
    axes : str
        tifffile's axes letters (``T``, ``C``, ``Z``, ``Y``, ``X``, ``S``...).
    calibration : Calibration
    info : ImageInfo
    name : str
    """

    data: Any
    axes: str
    calibration: Calibration
    info: ImageInfo = field(default_factory=ImageInfo)
    name: str = "the image"
    closer: Callable[[], None] | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        """Release the file behind the data."""
        if self.closer is not None:
            self.closer()
            self.closer = None


def _seconds(value: Any, unit: Any) -> float | None:
    try:
        step = float(value)
    except (TypeError, ValueError):
        return None
    factor = _SECONDS.get(str(unit or "s").strip().lower())
    return step * factor if factor is not None and step > 0 else None


def _value_name(text: Any) -> tuple[str | None, str | None]:
    """``(name, unit)`` from an ImageJ ``Info`` text or an OME channel name written by :mod:`.calibrated`."""
    text = str(text or "").strip()
    for name in VALUE_NAMES:
        if text == name:
            return name, None
        if text.startswith(f"{name} in "):
            return name, normalise_unit(text[len(name) + 4:])
        if text.startswith(f"{name} (") and text.endswith(")"):
            return name, normalise_unit(text[len(name) + 2:-1])
    return None, None


def _imagej_info(ij: dict) -> ImageInfo:
    name, unit = _value_name(ij.get("Info"))
    unit = normalise_unit(ij.get("vunit")) or unit
    lo, hi = ij.get("min"), ij.get("max")
    numbers = isinstance(lo, (int, float)) and isinstance(hi, (int, float))
    shown = (float(lo), float(hi)) if numbers and hi > lo else None
    return ImageInfo(name, unit, shown, _seconds(ij.get("finterval"), ij.get("tunit")))


def _info(tif: Any, series: int) -> ImageInfo:
    """What an OME-TIFF's or ImageJ file's metadata says of its values (nothing for a plain TIFF)."""
    if tif.is_ome:
        return _ome_info(tif.ome_metadata, series)
    if tif.is_imagej:
        return _imagej_info(tif.imagej_metadata or {})
    return ImageInfo()


def _ome_info(xml: str, series: int) -> ImageInfo:
    pixels = ome_pixels(xml, series)
    if pixels is None:
        return ImageInfo()
    channels = pixels.get("Channel")
    channels = channels if isinstance(channels, list) else [channels] if channels else []
    name, unit = _value_name(channels[0].get("Name")) if channels else (None, None)
    step = _seconds(pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit", "s"))
    return ImageInfo(name, unit, None, step)


def image_info(path: PathLike, series: int = 0) -> ImageInfo:
    """The :class:`ImageInfo` of a TIFF (empty for a plain TIFF); reads the header only."""
    import tifffile

    p = as_path(path)
    if not is_tiff(check_file(p)):
        return ImageInfo()

    def read() -> ImageInfo:
        with tifffile.TiffFile(p) as tif:
            return _info(tif, series)

    return guarded(p, "TIFF", read)


def is_calibrated_image(path: PathLike) -> bool:
    """Whether a file is an ImageJ or OME-TIFF with a calibration to keep, or a map this package wrote.

    A calibration to keep: a pixel size in a length unit. Plain TIFFs, and
    ImageJ TIFFs in pixels (what Fiji writes for any image), are not.
    """
    import tifffile

    p = as_path(path)
    try:
        if not is_tiff(check_file(p)):
            return False
        with tifffile.TiffFile(p) as tif:
            if not (tif.is_imagej or tif.is_ome) or not tif.series:
                return False
            cal, info = tiff_calibration(tif, 0, p.name), _info(tif, 0)
    except Exception:  # noqa: BLE001 - a probe only: the readers say what is wrong with a damaged file
        return False
    return (cal.pixel_size is not None and cal.unit is not None) or info.value_name is not None


def read_calibrated_image(path: PathLike, series: int = 0) -> CalibratedImage:
    """Open an ImageJ or OME-TIFF lazily with its axes, calibration and :class:`ImageInfo`.

    Unlike :func:`~.hyperstack.read_hyperstack` the data need no z axis.

    Raises
    ------
    InputError
        Not found, unreadable or not a TIFF; the message says why.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from napari_focus_stack.io import write_calibrated_tiff
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = folder + "/height.tif"
    ...     _ = write_calibrated_tiff(path, np.zeros((3, 4, 5), np.float32), "TYX",
    ...                               Calibration((0.1, 0.1), "µm"), value_unit="µm", value_name="height")
    ...     image = read_calibrated_image(path)
    ...     image.axes, image.calibration.pixel_size, image.info.value_name, image.info.value_unit
    ...     image.close()
    ('TYX', (0.1, 0.1), 'height', 'µm')
    """

    p = as_path(path)
    if not is_tiff(check_file(p)):
        raise InputError(f"{p} is not a TIFF: calibrated images are ImageJ or OME-TIFF files")

    def read() -> CalibratedImage:
        data, axes, cal, closer, info = open_tiff_series(p, series, _info)
        return CalibratedImage(data, axes, cal, info, name=p.name, closer=closer)

    return guarded(p, "TIFF", read)

