"""Where and how work runs, in one place: threads, the C allocator, the image-size limit, Dask workers.

The engine, the batch workers, the synthetic-data generator and the napari
reader all ask :func:`default_threads` how many threads to use; the command
line and the batch workers call :func:`tune_malloc` once per process and
set the decompression-bomb limit with :func:`pixel_limit`. A task running
on a Dask worker learns its share of the host with :func:`worker_context`
and reports progress through :func:`task_progress`; every loop that can be
stopped asks :func:`cancel_check`.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "MAX_DEFAULT_THREADS", "cancel_check", "default_threads", "fit_malloc_to_frames", "pixel_limit", "pixel_limit_hint",
    "release_free_heap", "task_progress", "tune_malloc", "worker_context",
]

#: Threads used by default. Decoding and per-frame work stop scaling beyond
#: four threads (memory bandwidth), and each thread holds a frame in flight.
MAX_DEFAULT_THREADS = 4

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 64 << 20

_tuned = False


def default_threads(share: int = 1) -> int:
    """Threads for one stack: the CPU count, at most 4, divided among `share` stacks at once.

    Parameters
    ----------
    share : int
        Stacks running at the same time on this machine (batch workers).

    Examples
    --------
    >>> 1 <= default_threads() <= MAX_DEFAULT_THREADS
    True
    """
    return max(1, min(MAX_DEFAULT_THREADS, (os.cpu_count() or 1) // max(1, int(share))))


def tune_malloc() -> bool:
    """Set glibc's allocator thresholds for frame-sized arrays (once per process).

    Arrays of 32 MiB and more (a float32 RGB frame from about 2.8 MP, a
    plane from 8 MP) are mapped and unmapped by the kernel, so they go back
    to the system as soon as they are freed and resident memory does not
    creep up across frames; smaller arrays reuse the heap, whose top is kept
    up to 64 MiB.
    Setting both thresholds also overrides the ``MALLOC_TRIM_THRESHOLD_`` that
    ``dask.distributed`` gives its workers, which otherwise pins the mmap
    threshold at 128 KiB so that every mid-sized array is page-faulted afresh.

    Measured with the CPU kernels of issue 12 (``benchmarks/malloc_settings.py``,
    2 cores, minor page faults, peak resident set, CPU seconds). The 7 x 3.1
    MP pcb stack: glibc defaults 62-64 k, 294-313 MiB, 1.5-1.6 s; 4 MiB mmap
    222-234 k, 263-264 MiB, 1.7-1.8 s; 8 MiB mmap + 64 MiB trim 67-72 k,
    310-314 MiB, 1.5-1.6 s; this setting 40-43 k, 322-338 MiB, 1.4-1.5 s.
    A 10 x 12 MP stack: defaults 247-279 k, 839-937 MiB, 7.1-7.9 s; 4 MiB
    962-976 k, 740 MiB, 8.4-8.5 s; 8 MiB + 64 MiB 359-371 k, 838-850 MiB,
    7.2-7.5 s; this setting 213-214 k, 856-919 MiB, 6.7-6.8 s. Nothing
    full-size is scratch any more (the kernels work in strips), so what the
    threshold decides is the 12 MiB half-resolution maps of a 12 MP frame:
    kept on the heap they cost 5-8 % less CPU time for 10-70 MiB more peak.

    Before those kernels, on the pcb stack: glibc defaults 100 k,
    490-530 MiB, 6.5-6.9 s; Dask's worker environment 820 k, 410-450 MiB,
    8.4-8.6 s; a 4 MiB mmap threshold alone (the command line's earlier
    setting) 340-390 k, 425-475 MiB, 6.7-8.0 s; 32 MiB mmap + 64 MiB trim
    70-95 k, 500-540 MiB; 8 MiB mmap + 64 MiB trim 100-120 k, 445-475 MiB,
    6.4-6.8 s.

    NumPy's advice to back large arrays with transparent huge pages is
    turned off: where the kernel honours that advice only on request
    (``/sys/kernel/mm/transparent_hugepage/enabled`` is ``madvise``, the
    usual default), a fresh frame-sized array can stall on compacting memory
    for huge pages. A 10 x 12 MP stack, whole process, 5 interleaved pairs:
    5.33-5.50 s wall and 1.3-1.5 s system time without the advice, 5.74-5.85
    s and 2.1-2.2 s with it, same peak; the pcb stack is unchanged (1.35-1.42
    and 1.28-1.50 s).

    The number of heap arenas is capped at the engine's threads (at least 2):
    every stack runs on fresh worker threads, and each new thread could take a
    new arena and keep what it freed, so that memory crept up stack after
    stack (the microscopy benchmark's 10 time points: peak 1.4x that of one;
    the PCB stack: same CPU time, 0-70 MiB less).

    Process-wide, so only the command line and batch workers call it, never
    the library on import. Linux/glibc only; elsewhere it does nothing.

    Returns
    -------
    bool
        True when the thresholds were set (now or by an earlier call).
    """
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return _tuned
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1 and ok
        ok = libc.mallopt(_M_ARENA_MAX, max(2, default_threads())) == 1 and ok
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
    _no_huge_page_advice()
    _tuned = ok
    return ok


def _no_huge_page_advice() -> None:
    """Stop NumPy from advising huge pages for its large arrays (see :func:`tune_malloc`)."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
    if setter is not None:  # a private NumPy switch (NUMPY_MADVISE_HUGEPAGE=0 before import does the same)
        setter(False)


#: The mmap threshold is raised for big frames up to this (see :func:`fit_malloc_to_frames`).
_MAX_MMAP_THRESHOLD = 256 << 20


def fit_malloc_to_frames(frame_bytes: int) -> int | None:
    """Keep arrays the size of a decoded 8-bit frame on the heap, when :func:`tune_malloc` has run.

    Every frame of a stack is decoded into a fresh array, and the fusion
    makes a few 3-channel float maps at half resolution per frame: both
    ``H * W * C`` bytes. Above the mmap threshold each is mapped afresh and
    its pages faulted in and zeroed by the kernel; on the heap the freed
    ones are reused. A 10 x 12 MP stack (34 MiB each, over the 32 MiB
    threshold): 1.4-1.5 s of system time became 0.9 s, wall 5.70-5.75 ->
    5.46-5.49 s, for 20 MiB more peak (2 cores, whole process). Frame-sized
    float32 arrays (four times that) are still mapped.

    Parameters
    ----------
    frame_bytes : int
        ``H * W * C`` of the stack's frames.

    Returns
    -------
    int or None
        The threshold now in force, or None where nothing was tuned (the
        library never changes a process the command line did not tune).
    """
    global _MMAP_THRESHOLD
    if not _tuned:
        return None
    wanted = min(_MAX_MMAP_THRESHOLD, max(32 << 20, int(frame_bytes) + (1 << 20)))
    if wanted > _MMAP_THRESHOLD:
        try:
            import ctypes

            if ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, wanted) == 1:
                _MMAP_THRESHOLD = wanted
        except (OSError, AttributeError):
            pass
    return _MMAP_THRESHOLD


def release_free_heap() -> None:
    """Hand the heap's free memory back to the system (glibc ``malloc_trim``; elsewhere nothing).

    Called between the z-stacks of a time series, so that what one z-stack
    freed is not counted again while the next one runs.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


@contextlib.contextmanager
def pixel_limit(max_pixels: int | None) -> Iterator[None]:
    """Refuse images of more than `max_pixels` pixels while the block runs.

    Pillow refuses images of more than twice ``PIL.Image.MAX_IMAGE_PIXELS``
    (about 179 million pixels by default) as possible decompression bombs,
    and the TIFF reader follows it. This sets that limit for the block and
    silences Pillow's warning below it, which the user has accepted.

    Parameters
    ----------
    max_pixels : int or None
        None leaves the limit as it is; 0 removes it.
    """
    if max_pixels is None:
        yield
        return
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None if max_pixels == 0 else (int(max_pixels) + 1) // 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = before


def pixel_limit_hint(exc: BaseException, how: str) -> str:
    """Words to add to `exc`'s message when it refused an image for its size, else "".

    Parameters
    ----------
    exc : BaseException
        The error (its cause is Pillow's ``DecompressionBombError``).
    how : str
        How the caller raises the limit (``"--max-pixels N"``).
    """
    from PIL import Image

    if not isinstance(exc.__cause__, Image.DecompressionBombError):
        return ""
    limit = Image.MAX_IMAGE_PIXELS
    now = f" (now {2 * int(limit):,} pixels)" if limit else ""
    return f" If you trust the file, raise the limit with {how}{now}."


def cancel_check(cancel: Callable[[], bool] | threading.Event | None) -> Callable[[], bool]:
    """A ``() -> bool`` from None (never cancelled), a :class:`threading.Event` or a callable."""
    if cancel is None:
        return lambda: False
    if isinstance(cancel, threading.Event):
        return cancel.is_set
    return cancel


def worker_context(threads_on_host: dict | None) -> tuple[Any, str | None, int]:
    """Where a task runs: ``(Dask worker or None, host, tasks at once on this host)``.

    Parameters
    ----------
    threads_on_host : dict, optional
        ``{host: worker threads}`` of the cluster, as the executor saw it
        (the share of the host's cores this task may use); default: the
        worker's own thread count.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # distributed not installed, or not on a Dask worker
        return None, None, 1
    host = worker.address.rsplit(":", 1)[0]
    share = int((threads_on_host or {}).get(host, worker.state.nthreads))
    return worker, host, max(1, share)


def task_progress(
    name: str, worker: Any, topic: str | None, progress: Callable[[str, int, int, str], None] | None = None
) -> Callable[[int, int, str], None]:
    """The engine's ``progress(done, total, stage)`` for the task ``name``.

    It calls ``progress(name, done, total, stage)`` in this process and,
    on a Dask worker with a ``topic``, sends the same as an event that the
    executor's client turns into calls there.
    """

    def report(done: int, total: int, stage: str) -> None:
        if progress is not None:
            progress(name, done, total, stage)
        if worker is not None and topic:
            worker.log_event(topic, {"stack": name, "done": done, "total": total, "stage": stage})

    return report
