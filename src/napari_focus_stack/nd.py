"""N-dimensional data: a focus stack along Z for every time point and position.

Microscope data has named axes (``T``, ``C``, ``Z``, ``Y``, ``X`` and ``S``
for RGB samples; any other letter, such as ``P`` for positions, is looped
over like ``T``) and a calibration (pixel size, z step, units). This module
views such data as a sequence of z-stacks, one per combination of the loop
axes, each read one plane at a time (NumPy, Dask and Zarr arrays, or the
lazy array of a TIFF file), and fuses each with the engine
(:func:`napari_focus_stack.pipeline.stack_frames`):

- every channel of a z-stack is aligned and fused with one decision, driven
  by the chosen channel or by all channels, each normalised by its spread;
- intensities are kept as measured (no exposure matching);
- the alignment of the first z-stack can be reused for all others (the same
  focus sequence on the same instrument), which skips a pass over the data;
- heights are ``z0 + index * z_step`` in the calibration's unit when the z
  step is known, else fractional frame indices.

One z-stack is one :class:`ZStackTask`, plain data that
:func:`fuse_z_stack` runs here or, through an executor's ``iter_ordered``
(:class:`napari_focus_stack.executors.DaskExecutor`), on a Dask cluster:
each task then reads its own z-stack (from the file, or a lazy slice of a
Dask array), at most one per worker thread is in flight, and the results
come back in time order, the same as those of the serial loop.

Memory holds one z-stack in flight (the engine streams its planes) plus the
results; :func:`iter_stacks` hands the results over one z-stack at a time,
so that a consumer writing each one (the job layer) keeps memory flat
whatever the number of time points. Nothing here writes files.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ._backend import Backend, get_backend
from ._runtime import cancel_check, default_threads, release_free_heap, task_progress, tune_malloc, worker_context
from .depth import to_height
from .errors import Cancelled, FocusStackError, InputError, StackError
from .io import Calibration, Hyperstack, read_hyperstack
from .pipeline import StackSettings, stack_frames
from .result import StackResult

__all__ = [
    "Calibration", "Hyperstack", "NDResult", "ZStackTask", "as_hyperstack", "fuse_z_stack", "iter_stacks",
    "run_z_stack", "stack_nd",
]


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
    reports : list of StackReport
        The engine's report per z-stack, with ``index`` (loop indices) and
        ``reused_alignment`` set.
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
    if is_path(data):
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


@dataclass
class ZStackTask:
    """One z-stack of a hyperstack: what it takes to fuse it, here or on a Dask worker (plain data).

    ``data`` is the open :class:`Hyperstack` (in this process), a file's
    path (opened where the task runs) or an array with the axes ``axes``
    that holds this z-stack at ``index``.
    """

    name: str  # "T 2/10": progress and messages
    index: tuple[int, ...]  # where the z-stack is in `data`
    data: Any
    axes: str
    calibration: Calibration
    frame_names: list[str]  # as the planes are named in reports
    settings: StackSettings
    loop_axes: str = ""  # the letters of `index` and `place`, for the report
    place: tuple[int, ...] | None = None  # where the z-stack is in the whole hyperstack (None: `index`)
    transforms: list | None = None  # reused alignment, None: estimate
    normalise_channels: bool = False
    depth: bool = True  # also regularise the depth map
    threads_on_host: dict | None = None  # set by a Dask executor
    progress_topic: str | None = None  # set by a Dask executor

    def make_entry(self, status: str, **extra: Any) -> dict:
        """The entry an executor hands back (``result``: the StackResult when done)."""
        entry = {"stack": self.name, "index": self.index, "status": status, "error": None, "result": None}
        entry.update(extra)
        return entry


def fuse_z_stack(
    task: ZStackTask,
    backend: Backend | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> StackResult:
    """Fuse one z-stack as microscope data: intensities as measured, channels by one decision.

    The one place that says how a hyperstack's z-stack goes through the
    engine, for the serial loop and the cluster alike.
    """
    is_path = isinstance(task.data, (str, Path))
    if isinstance(task.data, Hyperstack):
        hs = task.data
    elif is_path:
        hs = read_hyperstack(task.data)
    else:
        hs = Hyperstack(task.data, task.axes, task.calibration)
    try:
        source = hs.z_stack(task.index)
        source.names = list(task.frame_names)
        result = stack_frames(
            source, task.settings, backend or get_backend(task.settings.options.device),
            progress=progress, cancel=cancel, transforms=task.transforms,
            channel_names=task.calibration.channel_names, normalise_channels=task.normalise_channels,
            match_exposure=False, depth=task.depth,
        )
    finally:
        if is_path:
            hs.close()
    result.report.index = dict(zip(task.loop_axes, task.index if task.place is None else task.place, strict=True))
    result.report.reused_alignment = task.transforms is not None
    result.meta = None  # the reference frame's metadata: nothing for a plane of a hyperstack
    return result


def run_z_stack(task: ZStackTask) -> dict:
    """An executor's runner: fuse one z-stack where the task runs (a Dask worker).

    Errors of the :class:`FocusStackError` family are returned in the entry
    (``exception``), to be raised by the caller; anything else propagates,
    so that the executor retries it.
    """
    worker, _host, share = worker_context(task.threads_on_host)
    if worker is not None:
        tune_malloc()
    settings = replace(task.settings, workers=default_threads(share))
    try:
        result = fuse_z_stack(
            replace(task, settings=settings), progress=task_progress(task.name, worker, task.progress_topic)
        )
    except FocusStackError as exc:
        return task.make_entry("failed", error=str(exc), exception=exc)
    return task.make_entry("done", result=result)


def iter_stacks(
    settings: StackSettings,
    data: Hyperstack,
    *,
    backend: Backend | None = None,
    channel: int | str | None = None,
    reuse_alignment: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    executor: Any | None = None,
    path: Any | None = None,
    depth: bool = True,
) -> Iterator[tuple[tuple[int, ...], StackResult]]:
    """Fuse every z-stack of ``data`` in turn: yields ``(loop index, StackResult)`` in order.

    Only one z-stack is in flight (one per worker thread with an
    ``executor``); a consumer that writes each result and drops it keeps
    memory flat whatever the number of time points.

    Parameters
    ----------
    settings : StackSettings
    data : Hyperstack
    backend : Backend, optional
        Where to compute in this process (default: ``settings.options.device``).
    channel : int or str, optional
        The deciding channel (overrides the options').
    reuse_alignment : bool
        Estimate the alignment on the first z-stack and reuse it for the others.
    progress : callable(done, total, stage), optional
        Progress over all z-stacks; ``stage`` names the time point.
    cancel : callable or threading.Event, optional
    executor : DaskExecutor, optional
        Run the z-stacks on its cluster (see :mod:`napari_focus_stack.executors`).
    path : path-like, optional
        The file ``data`` was read from: an executor's workers open it themselves.
    depth : bool
        Also regularise the depth maps.
    """
    if channel is not None and channel != settings.options.channel:
        settings = replace(settings, options=replace(settings.options, channel=channel))
    independent = "C" in data.axes and data.n_channels > 1
    indices = data.loop_indices()
    if executor is not None:
        yield from _iter_on_executor(settings, data, executor, path, reuse_alignment, depth, independent, progress,
                                     cancel)
        return
    per_stack = 2 * data.size("Z")
    total = per_stack * len(indices)
    backend = backend or get_backend(settings.options.device)
    transforms = None
    for k, index in enumerate(indices):
        where = _where(data, index)

        def tick(done: int, _total: int, stage: str, k=k, where=where) -> None:
            if progress is not None:
                progress(k * per_stack + done, total, f"{where}: {stage}" if where else stage)

        task = _task(settings, data, index, data, transforms, independent, depth)
        result = fuse_z_stack(task, backend, tick, cancel)
        if reuse_alignment and transforms is None and settings.options.align != "none":
            transforms = result.transforms
        yield index, result
        del result
        release_free_heap()


def _where(data: Hyperstack, index: tuple[int, ...]) -> str:
    """``"T 2/10"``: where a z-stack is, for progress and messages."""
    return ", ".join(f"{a} {i + 1}/{data.size(a)}" for a, i in zip(data.loop_axes, index, strict=False))


def _task(settings, hs: Hyperstack, index, data, transforms, independent: bool, depth: bool) -> ZStackTask:
    return ZStackTask(
        name=_where(hs, index) or hs.name, index=index, data=data, axes=hs.axes, calibration=hs.calibration,
        frame_names=hs.z_stack(index).names, settings=settings, loop_axes=hs.loop_axes, place=index,
        transforms=transforms, normalise_channels=independent, depth=depth,
    )


def _iter_on_executor(settings, hs: Hyperstack, executor, path, reuse_alignment, depth, independent, progress,
                      cancel) -> Iterator[tuple[tuple[int, ...], StackResult]]:
    """:func:`iter_stacks` on a Dask executor: progress summed over the z-stacks in flight.

    With alignment reuse the first z-stack runs alone and its transforms go
    with every other task, exactly as in the serial loop.
    """
    indices = hs.loop_indices()
    total = 2 * hs.size("Z") * len(indices)
    done: dict[str, float] = {}
    lock = threading.Lock()

    def tick(name: str, d: int, _total: int, stage: str) -> None:  # from the client's event thread
        with lock:
            done[name] = d
            so_far = int(sum(done.values()))
        progress(so_far, total, f"{name}: {stage}")

    where = None if path is None else str(Path(path).expanduser().absolute())

    def task(index: tuple[int, ...], transforms: list | None) -> ZStackTask:
        data, sub = (where, index) if where is not None else _slice(hs, index)
        t = _task(settings, hs, index, data, transforms, independent, depth)
        t.index = sub  # in the slice; the report says its place in the hyperstack
        return t

    run = dict(progress=tick if progress is not None else None, is_cancelled=cancel_check(cancel))
    count = 0
    transforms = None
    first = 0
    if reuse_alignment and settings.options.align != "none":
        for entry in executor.iter_ordered([task(indices[0], None)], run_z_stack, window=1, **run):
            result = _result_of(entry)
            transforms = result.transforms
            count += 1
            yield indices[0], result
        first = 1
    if count == first:
        later = (task(index, transforms) for index in indices[first:])
        runs = executor.iter_ordered(later, run_z_stack, **run)
        try:
            for index, entry in zip(indices[first:], runs, strict=False):
                count += 1
                yield index, _result_of(entry)
        finally:
            runs.close()  # cancels what is still queued when the caller stops early
    if count < len(indices):  # the executor stops early only when cancelled
        raise Cancelled("cancelled by the user")


def _result_of(entry: dict) -> StackResult:
    """The entry's StackResult, or its error raised."""
    if entry["status"] == "done":
        return entry["result"]
    if entry.get("exception") is not None:
        raise entry["exception"]
    if entry["status"] == "cancelled":
        raise Cancelled("cancelled by the user")
    if entry.get("traceback"):  # not a user error: a bug or a fault, shown with its traceback
        raise RuntimeError(f"{entry['stack']}: {entry['error']}\nworker traceback:\n{entry['traceback']}")
    raise StackError(f"{entry['stack']}: {entry['error']}")


def _slice(hs: Hyperstack, index: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
    """The z-stack at ``index`` as an array with all axes (loop axes of length 1), and its index there.

    A Dask array stays lazy (its worker computes the planes); anything
    else (NumPy, Zarr) is read here, one z-stack per task.
    """
    loop = dict(zip(hs.loop_axes, index, strict=False))
    key = tuple(slice(loop[a], loop[a] + 1) if a in loop else slice(None) for a in hs.axes)
    part = hs.data[key]
    if not hasattr(part, "__dask_graph__"):
        part = np.asarray(part)
    return part, (0,) * len(index)


def stack_nd(
    settings: StackSettings,
    data: Any,
    axes: str | None = None,
    *,
    backend: Backend | None = None,
    z_step: float | None = None,
    calibration: Calibration | None = None,
    channel: int | str | None = None,
    reuse_alignment: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    executor: Any | None = None,
) -> NDResult:
    """Fuse N-D data along Z for every time point (and position), all in memory.

    See :meth:`FocusStacker.stack_nd <napari_focus_stack.FocusStacker.stack_nd>`
    for the parameters; ``executor`` runs the z-stacks on a Dask cluster
    (see :func:`iter_stacks`).
    """
    hs = as_hyperstack(data, axes, calibration)
    path = data if is_path(data) else None
    try:
        return _collect(settings, hs, z_step, channel, reuse_alignment, progress, cancel, executor, path, backend)
    finally:
        if path is not None:  # opened here
            hs.close()


def _collect(settings, hs: Hyperstack, z_step, channel, reuse_alignment, progress, cancel, executor, path,
             backend) -> NDResult:
    cal = hs.calibration.with_z_step(z_step)
    loop_shape = tuple(hs.size(a) for a in hs.loop_axes)
    image = height = height_raw = confidence = None
    reports: list = []
    first_transforms: list = []
    for index, res in iter_stacks(
        settings, hs, backend=backend, channel=channel, reuse_alignment=reuse_alignment, progress=progress,
        cancel=cancel, executor=executor, path=path,
    ):
        if image is None:
            image = np.empty(loop_shape + image_layout(hs, res.image.shape), dtype=res.image.dtype)
            height = np.empty(loop_shape + res.depth_raw.shape, np.float32)
            height_raw = np.empty_like(height)
            confidence = np.empty_like(height)
            first_transforms = res.transforms
        image[index] = to_layout(hs, res.image)
        height[index] = to_height(res.depth, cal.z_step, cal.z0)
        height_raw[index] = to_height(res.depth_raw, cal.z_step, cal.z0)
        confidence[index] = res.confidence
        reports.append(res.report)
        del res
    if image is None:  # no loop index at all: an axis of length 0
        raise StackError(f"{hs.name} has an empty axis: nothing to fuse")
    return NDResult(image, height, height_raw, confidence, hs.out_axes, cal.height_unit, cal, reports,
                    first_transforms)


def is_path(data: Any) -> bool:
    """Whether ``data`` names a file or folder (rather than being an array)."""
    return isinstance(data, str) or hasattr(data, "__fspath__")


def image_layout(hs: Hyperstack, shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of one fused image in output order (C, Y, X[, S]) from the engine's (Y, X[, C])."""
    if "C" in hs.axes:
        return (shape[2] if len(shape) == 3 else 1,) + tuple(shape[:2])
    return tuple(shape)


def to_layout(hs: Hyperstack, image: np.ndarray) -> np.ndarray:
    """The engine's (Y, X[, C]) image in output order (C, Y, X) when the data has channels."""
    if "C" in hs.axes:
        return np.moveaxis(image, -1, 0) if image.ndim == 3 else image[None]
    return image
