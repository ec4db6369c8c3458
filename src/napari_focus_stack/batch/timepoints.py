"""The time points of one hyperstack on a Dask cluster, through the batch's executor.

:func:`iter_stacks_on_cluster` turns every z-stack of a
:class:`~napari_focus_stack.io.hyperstack.Hyperstack` (one per time point
or position) into a :class:`ZStackTask` and runs it with
:meth:`DaskExecutor.iter_ordered <.executors.DaskExecutor.iter_ordered>`,
the executor ``batch`` uses for its stacks (retries, progress events,
cancellation). What stays bounded:

- inputs: a task carries the file's path (the worker opens the file and
  reads the planes of its z-stack) or a lazy slice of a Dask array; a
  NumPy array's z-stack is sliced out when its task is submitted. Tasks are
  made only when a slot is free, so at most ``window`` z-stacks are in
  flight whatever the number of time points;
- results: handed over in time order, each fetched from its worker when
  its turn comes, so the caller holds one at a time.

With alignment reuse the first z-stack runs alone and its transforms go
with every other task, exactly as in the serial loop, so the results are
the same as :func:`napari_focus_stack.nd.iter_stacks` without a scheduler.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._runtime import default_threads, tune_malloc
from ..errors import FocusStackError, InputError, StackError
from .options import BatchOptions
from .task import _dask_context, progress_reporter

if TYPE_CHECKING:
    from ..io.hyperstack import Calibration, Hyperstack
    from ..stacker import FocusStacker, StackResult

__all__ = ["ZStackTask", "iter_stacks_on_cluster", "run_z_stack"]


@dataclass
class ZStackTask:
    """One z-stack of a hyperstack: what a Dask worker needs to fuse it (plain data).

    ``data`` is a path (opened on the worker) or an array with the axes
    ``axes`` that holds this z-stack at ``index``.
    """

    name: str  # "T 2/10": progress and messages
    index: tuple[int, ...]  # where the z-stack is in `data`
    data: Any
    axes: str
    calibration: Calibration
    frame_names: list[str]  # as the serial loop names the planes
    engine: dict  # FocusStacker keywords, workers excepted
    transforms: list | None = None  # reused alignment, None: estimate
    normalise_channels: bool = False
    depth: bool = True  # also regularise the depth map (on the worker)
    threads_on_host: dict | None = None  # set by the executor
    progress_topic: str | None = None  # set by the executor

    def make_entry(self, status: str, **extra: Any) -> dict:
        """The result entry the executor hands back (``result``: the StackResult when done)."""
        entry = {"stack": self.name, "index": self.index, "status": status, "error": None, "result": None}
        entry.update(extra)
        return entry


def run_z_stack(task: ZStackTask) -> dict:
    """Fuse one z-stack (on a Dask worker); the entry holds the :class:`StackResult` or the user error.

    Errors of the :class:`FocusStackError` family are returned in the entry
    (``exception``), to be raised by the caller; anything else propagates,
    so that the executor retries it.
    """
    from ..io.hyperstack import Hyperstack, read_hyperstack
    from ..stacker import FocusStacker

    worker, _host, share = _dask_context(task)
    if worker is not None:
        tune_malloc()
    try:
        is_path = isinstance(task.data, str)
        hs = read_hyperstack(task.data) if is_path else Hyperstack(task.data, task.axes, task.calibration)
        try:
            source = hs.z_stack(task.index)
            source.names = list(task.frame_names)
            stacker = FocusStacker(**task.engine, workers=default_threads(share))
            result = stacker.stack(
                source, progress=progress_reporter(task, worker, None), transforms=task.transforms,
                channel_names=task.calibration.channel_names, normalise_channels=task.normalise_channels,
                match_exposure=False,
            )
        finally:
            if is_path:
                hs.close()
        if task.depth:
            result.depth  # noqa: B018 - regularise here, on the worker, not in the caller
        result.meta = None  # the reference frame's metadata: nothing for a plane of a hyperstack
    except FocusStackError as exc:
        return task.make_entry("failed", error=str(exc), exception=exc)
    return task.make_entry("done", result=result)


def iter_stacks_on_cluster(
    stacker: FocusStacker,
    hs: Hyperstack,
    scheduler: Any,
    *,
    path: str | None = None,
    reuse_alignment: bool = True,
    depth: bool = True,
    progress: Callable[[str, int, int, str], None] | None = None,
    is_cancelled: Callable[[], bool] = lambda: False,
    frame_names: Callable[[tuple[int, ...]], list[str]],
    retries: int = 2,
) -> Iterator[tuple[tuple[int, ...], StackResult]]:
    """Fuse every z-stack of ``hs`` on a Dask cluster; yield ``(loop index, StackResult)`` in order.

    Parameters
    ----------
    stacker : FocusStacker
        Its options go to the workers (its threads: their share of each host).
    hs : Hyperstack
    scheduler : str or distributed.Client
        A scheduler's address (``tcp://host:8786``) or a connected client
        (left open).
    path : str, optional
        The file ``hs`` was read from: the workers open it themselves.
    reuse_alignment : bool
        Estimate the alignment on the first z-stack, then send it to the others.
    depth : bool
        Regularise the depth maps (on the workers).
    progress : callable(name, done, total, stage), optional
        Per-plane progress of each z-stack, named by :attr:`ZStackTask.name`.
    is_cancelled : callable
        Checked four times a second; when true the unfinished z-stacks are
        cancelled and the iteration stops (the caller raises).
    frame_names : callable(index) -> list of str
        The planes' names for messages and reports.
    retries : int
        Times a z-stack that raised an unexpected error is tried again.

    Raises
    ------
    FocusStackError
        As raised by the z-stack's worker (the first in time order).
    InputError
        No dask.distributed, or the scheduler cannot be reached.
    """
    from .executors import DaskExecutor

    client = None if isinstance(scheduler, str) else scheduler
    if client is not None and not hasattr(client, "submit"):
        raise InputError(
            f"scheduler must be a Dask scheduler's address or a distributed.Client, got {type(scheduler).__name__}"
        )
    options = BatchOptions(scheduler=scheduler if client is None else None, retries=retries)
    engine = dict(stacker.options.kwargs(), channel=stacker.channel)
    engine.update(min_quality=stacker.min_quality, cache_bytes=stacker.cache_bytes)
    independent = "C" in hs.axes and hs.n_channels > 1
    indices = hs.loop_indices()

    def task(index: tuple[int, ...], transforms: list | None) -> ZStackTask:
        data, sub = (path, index) if path is not None else _slice(hs, index)
        name = ", ".join(f"{a} {i + 1}/{hs.size(a)}" for a, i in zip(hs.loop_axes, index, strict=False)) or hs.name
        return ZStackTask(
            name, sub, data, hs.axes, hs.calibration, frame_names(index), engine, transforms, independent, depth,
        )

    executor = DaskExecutor(options, progress, is_cancelled, client=client)
    try:
        transforms = None
        first = 0
        if reuse_alignment and stacker.align != "none":
            for entry in executor.iter_ordered([task(indices[0], None)], run_z_stack, window=1):
                result = _result_of(entry)
                transforms = result.transforms
                result.report["reused_alignment"] = False
                yield indices[0], result
            first = 1
            if transforms is None:  # cancelled
                return
        later = (task(index, transforms) for index in indices[first:])
        runs = executor.iter_ordered(later, run_z_stack)
        try:
            for index, entry in zip(indices[first:], runs, strict=False):
                result = _result_of(entry)
                result.report["reused_alignment"] = transforms is not None
                yield index, result
        finally:
            runs.close()  # cancels what is still queued when the caller stops early
    finally:
        executor.close()


def _result_of(entry: dict) -> StackResult:
    """The entry's StackResult, or its error raised."""
    if entry["status"] == "done":
        return entry["result"]
    if entry.get("exception") is not None:
        raise entry["exception"]
    if entry["status"] == "cancelled":
        from ..stacker import Cancelled

        raise Cancelled("cancelled by the user")
    if entry.get("traceback"):  # not a user error: a bug or a fault, shown with its traceback
        raise RuntimeError(f"{entry['stack']}: {entry['error']}\nworker traceback:\n{entry['traceback']}")
    raise StackError(f"{entry['stack']}: {entry['error']}")


def _slice(hs: Hyperstack, index: tuple[int, ...]) -> tuple[Any, tuple[int, ...]]:
    """The z-stack at ``index`` as an array with all axes (loop axes of length 1), and its index there.

    A Dask array stays lazy (its worker computes the planes); anything
    else (NumPy, Zarr) is read here, one z-stack per task.
    """
    import numpy as np

    loop = dict(zip(hs.loop_axes, index, strict=False))
    key = tuple(slice(loop[a], loop[a] + 1) if a in loop else slice(None) for a in hs.axes)
    part = hs.data[key]
    if not hasattr(part, "__dask_graph__"):
        part = np.asarray(part)
    return part, (0,) * len(index)
