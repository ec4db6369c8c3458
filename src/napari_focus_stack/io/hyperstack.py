"""Calibrated N-D microscope data: :class:`Hyperstack` and :class:`Calibration`.

A :class:`Hyperstack` is an array with named axes (``T``, ``C``, ``Z``,
``Y``, ``X``, ``S`` for RGB samples, any other letter looped over like
``T``) and a :class:`Calibration` (pixel size, z step and their units,
channel names and colours), read lazily one plane at a time. Files become
Hyperstacks in :mod:`.microscopy` (ImageJ, OME-TIFF, OME-Zarr); arrays with
named axes in :func:`napari_focus_stack.nd.as_hyperstack`.

Units are given as symbols (``"µm"``, ``"nm"``...), whatever spelling the
file used (``micron``, ``um``, ``micrometer``): :func:`normalise_unit`.
"""
from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import InputError, ParameterError, StackError
from .metadata import ImageMeta
from .source import FrameSource

__all__ = ["SIZE_RANGE", "Calibration", "Hyperstack", "is_size", "normalise_unit"]

_UNITS = {
    "micron": "µm", "microns": "µm", "um": "µm", "µm": "µm", "\\u00b5m": "µm", "μm": "µm",
    "micrometer": "µm", "micrometre": "µm", "nm": "nm", "nanometer": "nm", "nanometre": "nm",
    "mm": "mm", "millimeter": "mm", "millimetre": "mm", "cm": "cm", "centimeter": "cm", "m": "m",
    "meter": "m", "metre": "m", "pm": "pm", "picometer": "pm", "angstrom": "Å", "å": "Å",
    "inch": "in", "in": "in",
}

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


#: The sizes (pixel size, z step) a calibration may hold, in any length unit. Beyond them a value
#: is no measurement (NaN, inf, 0, negative, 1e308): heights ``z0 + index * z_step`` would be NaN
#: or overflow, and the TIFF resolution tags cannot hold it.
SIZE_RANGE = (1e-12, 1e12)


def is_size(value: Any) -> bool:
    """Whether `value` is a number a pixel size or a z step can be (:data:`SIZE_RANGE`).

    >>> is_size(0.5), is_size(float("nan")), is_size(-0.2), is_size(1e308), is_size(True)
    (True, False, False, False, False)
    """
    return (
        isinstance(value, numbers.Real) and not isinstance(value, bool)
        and SIZE_RANGE[0] <= float(value) <= SIZE_RANGE[1]
    )


def _signed_size(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and is_size(abs(float(value)))


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

    def __post_init__(self) -> None:
        # refused here, before any work, not by the TIFF writer after it; a negative size is an axis
        # that runs the other way (a napari layer's negative scale)
        if self.pixel_size is not None and not (len(self.pixel_size) == 2 and all(map(_signed_size, self.pixel_size))):
            raise ParameterError(
                f"pixel_size must be two numbers from {SIZE_RANGE[0]:g} to {SIZE_RANGE[1]:g} (y, x; or minus such), "
                f"got {self.pixel_size!r}"
            )
        if self.z_step is not None and not _signed_size(self.z_step):
            raise ParameterError(
                f"z_step must be a number from {SIZE_RANGE[0]:g} to {SIZE_RANGE[1]:g} (or minus one), "
                f"got {self.z_step!r}"
            )
        if not (isinstance(self.z0, numbers.Real) and math.isfinite(self.z0)):
            raise ParameterError(f"z0 must be a finite number, got {self.z0!r}")

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
        if not is_size(z_step):
            raise ParameterError(
                f"z_step must be a positive number from {SIZE_RANGE[0]:g} to {SIZE_RANGE[1]:g}, got {z_step!r}"
            )
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


