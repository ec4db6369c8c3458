"""Process tuning in one place: thread counts, the C allocator, the image-size limit.

The engine, the batch workers, the synthetic-data generator and the napari
reader all ask :func:`default_threads` how many threads to use; the command
line and the batch workers call :func:`tune_malloc` once per process and
set the decompression-bomb limit with :func:`pixel_limit`.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

__all__ = [
    "MAX_DEFAULT_THREADS", "default_threads", "pixel_limit", "pixel_limit_hint", "release_free_heap", "tune_malloc",
]

#: Threads used by default. Decoding and per-frame work stop scaling beyond
#: four threads (memory bandwidth), and each thread holds a frame in flight.
MAX_DEFAULT_THREADS = 4

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_MMAP_THRESHOLD = 8 << 20
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

    Arrays of 8 MiB and more (a frame plane from about 2 MP in float32) are
    mapped and unmapped by the kernel, so they go back to the system as soon
    as they are freed and resident memory does not creep up across frames;
    smaller scratch arrays reuse the heap, whose top is kept up to 64 MiB.
    Setting both thresholds also overrides the ``MALLOC_TRIM_THRESHOLD_`` that
    ``dask.distributed`` gives its workers, which otherwise pins the mmap
    threshold at 128 KiB so that every mid-sized array is page-faulted afresh.

    Measured on the 7 x 3.1 MP pcb stack, one process, CPU, 2 cores (minor
    page faults, peak resident set, CPU seconds): glibc defaults 100 k,
    490-530 MiB, 6.5-6.9 s; Dask's worker environment 820 k, 410-450 MiB,
    8.4-8.6 s; a 4 MiB mmap threshold alone (the command line's earlier
    setting) 340-390 k, 425-475 MiB, 6.7-8.0 s; 32 MiB mmap + 64 MiB trim
    (the workers' earlier setting) 70-95 k, 500-540 MiB; this setting 100-120 k,
    445-475 MiB, 6.4-6.8 s: the speed of glibc's defaults with 40-50 MiB
    less memory, where the 4 MiB threshold saves 20-30 MiB more for 5-15 %
    more CPU time.

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
    _tuned = ok
    return ok


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
