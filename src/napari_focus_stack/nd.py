"""N-dimensional data: a focus stack along Z for every time point and position.

Microscope data has named axes (``T``, ``C``, ``Z``, ``Y``, ``X`` and ``S``
for RGB samples; any other letter, such as ``P`` for positions, is looped
over like ``T``) and a calibration (pixel size, z step, units). This module
views such data as a sequence of z-stacks, one per combination of the loop
axes, each read one plane at a time (NumPy, Dask and Zarr arrays, or the
lazy array of a TIFF file), and fuses them with :class:`FocusStacker`:

- every channel of a z-stack is aligned and fused with one decision, driven
  by the chosen channel or by all channels, each normalised by its spread;
- intensities are kept as measured (no exposure matching);
- the alignment of the first z-stack can be reused for all others (the same
  focus sequence on the same instrument), which skips a pass over the data;
- heights are ``z0 + index * z_step`` in the calibration's unit when the z
  step is known, else fractional frame indices.

Memory holds one z-stack in flight (the engine streams its planes) plus the
results; :func:`iter_stacks` hands the results over one z-stack at a time,
for writers that stream them to disk.
"""
from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError, ParameterError, StackError
from .height import to_height
from .io import FrameSource, ImageMeta

if TYPE_CHECKING:
    from .stacker import FocusStacker, StackResult

__all__ = ["Calibration", "Hyperstack", "NDResult", "iter_stacks", "stack_nd"]

#: The axes with a meaning of their own; any other letter is looped over.
KNOWN_AXES = "TCZYXS"


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
    """

    data: Any
    axes: str
    calibration: Calibration = field(default_factory=Calibration)
    name: str = "the data"

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
        loop = dict(zip(self.loop_axes, index))
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
        where = ", ".join(f"{a}={i}" for a, i in zip(self.loop_axes, index))
        prefix = f"{self.name} ({where}, " if where else f"{self.name} ("
        names = [f"{prefix}z={z})" for z in range(nz)]
        metas = [ImageMeta(None, shape, self.dtype, None, None) for _ in range(nz)]
        loaders = [lambda z=z: self.read_frame(index, z) for z in range(nz)]
        return FrameSource(loaders, metas, names)


@dataclass
class NDResult:
    """The fused N-D data: one fused image and height map per z-stack.

    Attributes
    ----------
    image : ndarray
        Fused images, axes :attr:`axes` (the input's loop axes, C, Y, X, S;
        absent ones dropped), dtype of the input.
    height : ndarray
        Regularised heights, axes :attr:`height_axes`, float32, in
        :attr:`unit`: ``z0 + index * z_step``, or the fractional frame
        index when the z step is unknown (``unit == "frame"``).
    height_raw : ndarray
        The heights as measured (noisy where the sample has no texture).
    confidence : ndarray
        0..1, axes :attr:`height_axes`.
    axes : str
    unit : str
    calibration : Calibration
        The input's calibration (with ``z_step`` as used).
    reports : list of dict
        The engine's report per z-stack, with ``"index"`` (loop indices)
        and ``"reused_alignment"``.
    transforms : list
        The transforms of the first z-stack (reused by the others when
        alignment is reused).
    """

    image: np.ndarray
    height: np.ndarray
    height_raw: np.ndarray
    confidence: np.ndarray
    axes: str
    unit: str
    calibration: Calibration
    reports: list = field(default_factory=list)
    transforms: list = field(default_factory=list)

    @property
    def height_axes(self) -> str:
        """Axes of the height and confidence maps (no C, no S)."""
        return self.axes.replace("C", "").replace("S", "")


def as_hyperstack(data: Any, axes: str | None = None, calibration: Calibration | None = None) -> Hyperstack:
    """A :class:`Hyperstack` from an array (with ``axes``) or a Hyperstack (returned as is).

    Without ``axes`` a 3-D array is ``ZYX``; other arrays need their axes.
    """
    if isinstance(data, Hyperstack):
        if axes is not None and axes.upper() != data.axes:
            raise InputError(f"axes {axes!r} were given but the data's axes are {data.axes!r}")
        return data if calibration is None else replace(data, calibration=calibration)
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        raise InputError(
            f"{data}: reading files with named axes needs napari_focus_stack.io (not available here); "
            "give an array and its axes"
        )
    if not all(hasattr(data, a) for a in ("shape", "dtype", "__getitem__")):
        raise InputError(f"expected an array with named axes, got {type(data).__name__}")
    if axes is None:
        if len(data.shape) != 3:
            raise InputError(
                f"an array of shape {tuple(data.shape)} needs its axes named, e.g. axes='TZYX' or 'ZCYX'"
            )
        axes = "ZYX"
    return Hyperstack(data, axes, calibration or Calibration(), name="the array")


def iter_stacks(
    stacker: FocusStacker,
    data: Hyperstack,
    *,
    channel: int | str | None = None,
    reuse_alignment: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> Iterator[tuple[tuple[int, ...], StackResult]]:
    """Fuse every z-stack of ``data`` in turn: yields ``(loop index, StackResult)``.

    Only one z-stack is in flight; a consumer that writes each result and
    drops it keeps memory flat whatever the number of time points.
    See :func:`stack_nd` for the parameters.
    """
    stacker = _with_channel(stacker, channel)
    names = data.calibration.channel_names
    independent = "C" in data.axes and data.n_channels > 1
    indices = data.loop_indices()
    per_stack = 2 * data.size("Z")
    total = per_stack * len(indices)
    transforms = None
    for k, index in enumerate(indices):
        where = ", ".join(f"{a} {i + 1}/{data.size(a)}" for a, i in zip(data.loop_axes, index))

        def tick(done: int, _total: int, stage: str, k=k, where=where) -> None:
            if progress is not None:
                progress(k * per_stack + done, total, f"{where}: {stage}" if where else stage)

        result = stacker.stack(
            data.z_stack(index),
            progress=tick,
            cancel=cancel,
            transforms=transforms,
            channel_names=names,
            normalise_channels=independent,
            match_exposure=False,
        )
        result.report["index"] = dict(zip(data.loop_axes, index))
        result.report["reused_alignment"] = transforms is not None
        if reuse_alignment and transforms is None and stacker.align != "none":
            transforms = result.transforms
        yield index, result


def stack_nd(
    stacker: FocusStacker,
    data: Any,
    axes: str | None = None,
    *,
    z_step: float | None = None,
    calibration: Calibration | None = None,
    channel: int | str | None = None,
    reuse_alignment: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> NDResult:
    """Fuse N-D data along Z for every time point (and position); see :meth:`FocusStacker.stack_nd`."""
    hs = as_hyperstack(data, axes, calibration)
    cal = hs.calibration.with_z_step(z_step)
    loop_shape = tuple(hs.size(a) for a in hs.loop_axes)
    out_axes = hs.out_axes
    image = height = height_raw = confidence = None
    reports: list = []
    first_transforms: list = []
    for index, res in iter_stacks(
        stacker, hs, channel=channel, reuse_alignment=reuse_alignment, progress=progress, cancel=cancel
    ):
        if image is None:
            img_shape = loop_shape + _image_layout(hs, res.image.shape)
            image = np.empty(img_shape, dtype=res.image.dtype)
            height = np.empty(loop_shape + res.depth_raw.shape, np.float32)
            height_raw = np.empty_like(height)
            confidence = np.empty_like(height)
            first_transforms = res.transforms
        image[index] = _to_layout(hs, res.image)
        height[index] = to_height(res.depth, cal.z_step, cal.z0)
        height_raw[index] = to_height(res.depth_raw, cal.z_step, cal.z0)
        confidence[index] = res.confidence
        reports.append(res.report)
        del res
    if image is None:  # no loop index at all: an axis of length 0
        raise StackError(f"{hs.name} has an empty axis: nothing to fuse")
    return NDResult(image, height, height_raw, confidence, out_axes, cal.height_unit, cal, reports, first_transforms)


def _image_layout(hs: Hyperstack, shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of one fused image in output order (C, Y, X[, S]) from the engine's (Y, X[, C])."""
    if "C" in hs.axes:
        return (shape[2] if len(shape) == 3 else 1,) + tuple(shape[:2])
    return tuple(shape)


def _to_layout(hs: Hyperstack, image: np.ndarray) -> np.ndarray:
    """The engine's (Y, X[, C]) image in output order (C, Y, X) when the data has channels."""
    if "C" in hs.axes:
        return np.moveaxis(image, -1, 0) if image.ndim == 3 else image[None]
    return image


def _with_channel(stacker: FocusStacker, channel: int | str | None) -> FocusStacker:
    """``stacker`` itself, or a copy whose deciding channel is ``channel``."""
    if channel is None or channel == stacker.channel:
        return stacker
    import copy

    from .options import option

    other = copy.copy(stacker)
    other.channel = option("channel").check(channel)
    return other
