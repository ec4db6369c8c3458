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
and :func:`stack_nd_to_files` streams them to calibrated TIFFs, so that
memory does not grow with the number of time points.

With ``scheduler=`` (a Dask scheduler's address or a ``distributed.Client``)
the z-stacks run in parallel on the cluster through the batch's executor
(:mod:`napari_focus_stack.batch.timepoints`): each task reads its own z-stack
(from the file, or a lazy slice of a Dask array), at most one per worker
thread is in flight, and the results come back in time order, the same as
those of the serial loop.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._runtime import release_free_heap
from .errors import InputError, OutputError, StackError
from .height import to_height
from .io.hyperstack import Calibration, Hyperstack, read_hyperstack

if TYPE_CHECKING:
    from .stacker import FocusStacker, StackResult

__all__ = ["Calibration", "Hyperstack", "NDResult", "iter_stacks", "stack_nd", "stack_nd_to_files"]

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
    """A :class:`Hyperstack` from an array (with ``axes``), a file, or a Hyperstack (returned as is).

    Without ``axes`` a 3-D array is ``ZYX``; other arrays need their axes.
    Files (ImageJ and OME-TIFF, OME-Zarr) name their axes themselves.
    """
    if isinstance(data, Hyperstack):
        if axes is not None and axes.upper() != data.axes:
            raise InputError(f"axes {axes!r} were given but the data's axes are {data.axes!r}")
        return data if calibration is None else replace(data, calibration=calibration)
    if _is_path(data):
        hs = read_hyperstack(data)
        if axes is not None and axes.upper() != hs.axes:
            raise InputError(f"axes {axes!r} were given but {hs.name} has axes {hs.axes!r}")
        return hs if calibration is None else replace(hs, calibration=calibration)
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
    scheduler: Any | None = None,
    path: Any | None = None,
    depth: bool = True,
) -> Iterator[tuple[tuple[int, ...], StackResult]]:
    """Fuse every z-stack of ``data`` in turn: yields ``(loop index, StackResult)``.

    Only one z-stack is in flight (one per worker thread with a
    ``scheduler``); a consumer that writes each result and drops it keeps
    memory flat whatever the number of time points. ``path`` is the file
    ``data`` was read from (workers open it themselves); ``depth=False``
    spares the workers the regularised depth map. See :func:`stack_nd` for
    the other parameters.
    """
    stacker = _with_channel(stacker, channel)
    if scheduler is not None:
        yield from _iter_on_cluster(stacker, data, scheduler, path, reuse_alignment, depth, progress, cancel)
        return
    names = data.calibration.channel_names
    independent = "C" in data.axes and data.n_channels > 1
    indices = data.loop_indices()
    per_stack = 2 * data.size("Z")
    total = per_stack * len(indices)
    transforms = None
    for k, index in enumerate(indices):
        where = _where(data, index)

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
        result.report["index"] = dict(zip(data.loop_axes, index, strict=False))
        result.report["reused_alignment"] = transforms is not None
        if reuse_alignment and transforms is None and stacker.align != "none":
            transforms = result.transforms
        yield index, result
        del result
        release_free_heap()


def _where(data: Hyperstack, index: tuple[int, ...]) -> str:
    """``"T 2/10"``: where a z-stack is, for progress and messages."""
    return ", ".join(f"{a} {i + 1}/{data.size(a)}" for a, i in zip(data.loop_axes, index, strict=False))


def _iter_on_cluster(stacker, data: Hyperstack, scheduler, path, reuse_alignment, depth, progress, cancel):
    """:func:`iter_stacks` on a Dask cluster: progress summed over the z-stacks in flight."""
    from .batch.timepoints import iter_stacks_on_cluster
    from .stacker import Cancelled, cancel_check

    indices = data.loop_indices()
    total = 2 * data.size("Z") * len(indices)
    done: dict[str, float] = {}
    lock = threading.Lock()

    def tick(name: str, d: int, _total: int, stage: str) -> None:  # from the client's event thread
        with lock:
            done[name] = d
            so_far = int(sum(done.values()))
        progress(so_far, total, f"{name}: {stage}")

    is_cancelled = cancel_check(cancel)
    count = 0
    for index, result in iter_stacks_on_cluster(
        stacker, data, scheduler, path=None if path is None else str(Path(path).expanduser().absolute()),
        reuse_alignment=reuse_alignment,
        depth=depth, progress=tick if progress is not None else None, is_cancelled=is_cancelled,
        frame_names=lambda index: data.z_stack(index).names,
    ):
        result.report["index"] = dict(zip(data.loop_axes, index, strict=False))
        count += 1
        yield index, result
        del result
    if count < len(indices):  # the executor stops early only when cancelled
        raise Cancelled("cancelled by the user")


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
    scheduler: Any | None = None,
) -> NDResult:
    """Fuse N-D data along Z for every time point (and position).

    See :meth:`FocusStacker.stack_nd` for the parameters, and:

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        Run the time points in parallel on this Dask cluster (a scheduler's
        address, or a connected client, left open) through the batch's
        executor. Each task reads its own z-stack (the workers open the
        file, or compute their slice of a Dask array), at most one per
        worker thread is in flight, and the results are those of the serial
        run, in time order. The aligned transforms of the first z-stack go
        to the others when alignment is reused; cancelling stops the time
        points not finished yet. Needs ``dask.distributed``.
    """
    hs = as_hyperstack(data, axes, calibration)
    path = data if _is_path(data) else None
    try:
        return _collect(stacker, hs, z_step, channel, reuse_alignment, progress, cancel, scheduler, path)
    finally:
        if path is not None:  # opened here
            hs.close()


def _collect(stacker, hs: Hyperstack, z_step, channel, reuse_alignment, progress, cancel, scheduler, path) -> NDResult:
    cal = hs.calibration.with_z_step(z_step)
    loop_shape = tuple(hs.size(a) for a in hs.loop_axes)
    out_axes = hs.out_axes
    image = height = height_raw = confidence = None
    reports: list = []
    first_transforms: list = []
    for index, res in iter_stacks(
        stacker, hs, channel=channel, reuse_alignment=reuse_alignment, progress=progress, cancel=cancel,
        scheduler=scheduler, path=path,
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


def stack_nd_to_files(
    stacker: FocusStacker,
    data: Any,
    output: Any,
    axes: str | None = None,
    *,
    height: Any | None = None,
    confidence: Any | None = None,
    z_step: float | None = None,
    calibration: Calibration | None = None,
    channel: int | str | None = None,
    reuse_alignment: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    scheduler: Any | None = None,
) -> dict:
    """Fuse N-D data and write the results as they come: memory stays at one z-stack.

    The fused image goes to ``output`` (axes (T, C, Y, X), absent ones
    dropped), the regularised heights to ``height`` and the confidence to
    ``confidence``: calibrated TIFFs (ImageJ, or OME-TIFF for
    ``*.ome.tif``), checked before any work and written all or none (see
    :mod:`napari_focus_stack.io.outputs`); see :func:`stack_nd` for the other
    parameters (with ``scheduler``, one z-stack per worker thread is in
    flight, and the results are written in time order as they come).
    Input files are never overwritten.

    Returns
    -------
    dict
        ``{"outputs": {kind: path}, "sizes": {kind: bytes}, "axes": ...,
        "unit": ..., "calibration": ..., "reports": [per z-stack]}``.

    Raises
    ------
    OutputError
        An output is not a TIFF name, is an input, or cannot be written.
    """

    from .io.calibrated import CalibratedTiffWriter
    from .io.outputs import Output, check_outputs, staged_outputs

    outputs = [Output(kind, Path(p).expanduser()) for kind, p in
               (("image", output), ("depth", height), ("confidence", confidence)) if p is not None]
    for out in outputs:
        if out.path.suffix.lower() not in (".tif", ".tiff"):
            raise OutputError(
                f"cannot write {out.path}: calibrated microscope results are TIFFs (ImageJ, or OME-TIFF "
                "for .ome.tif); give a .tif name"
            )
    inputs = [Path(data)] if _is_path(data) else []
    check_outputs(outputs, inputs=inputs)
    hs = as_hyperstack(data, axes, calibration)
    cal = hs.calibration.with_z_step(z_step)
    loop_shape = tuple(hs.size(a) for a in hs.loop_axes)
    map_axes = hs.out_axes.replace("C", "").replace("S", "")
    writers: dict = {}
    reports: list = []
    try:
        with staged_outputs(outputs) as stages:
            for _index, res in iter_stacks(
                stacker, hs, channel=channel, reuse_alignment=reuse_alignment, progress=progress, cancel=cancel,
                scheduler=scheduler, path=inputs[0] if inputs else None, depth=height is not None,
            ):
                blocks = {"image": _to_layout(hs, res.image), "depth": None, "confidence": res.confidence}
                if height is not None:
                    blocks["depth"] = to_height(res.depth, cal.z_step, cal.z0)
                if not writers:
                    for out in outputs:
                        kind = out.kind
                        shape = loop_shape + blocks[kind].shape
                        axes_k = hs.out_axes if kind == "image" else map_axes
                        named = {"depth": ("height", cal.height_unit), "confidence": ("confidence", None)}
                        name, unit = named.get(kind, (None, None))
                        writers[kind] = CalibratedTiffWriter(
                            stages[kind], shape, blocks[kind].dtype, axes_k, cal, value_unit=unit, value_name=name,
                            protect=inputs,
                        )
                for kind, writer in writers.items():
                    writer.write(blocks[kind])
                reports.append(res.report)
                del res, blocks
            if not writers:
                raise StackError(f"{hs.name} has an empty axis: nothing to fuse")
            for writer in writers.values():
                writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    finally:
        if _is_path(data):  # opened here
            hs.close()
    return {
        "outputs": {out.kind: out.path for out in outputs},
        "sizes": {out.kind: out.path.stat().st_size for out in outputs},
        "axes": hs.out_axes, "unit": cal.height_unit, "calibration": cal, "reports": reports,
    }


def _is_path(data: Any) -> bool:
    return isinstance(data, str) or hasattr(data, "__fspath__")


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
