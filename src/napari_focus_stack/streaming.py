"""What the two streaming passes over a stack share.

The engine reads every frame twice (alignment, then fusion) and keeps only
running state between frames. Both passes report progress and check for
cancellation through :class:`RunProgress`, may take decoded frames from a
:class:`FrameCache` (a GPU keeps them on the device between the passes),
and read ahead with :func:`prefetched`.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import Cancelled
from .io import FrameSource

__all__ = ["FrameCache", "RunProgress", "prefetched", "read_frame"]


class RunProgress:
    """Progress and cancellation for one stack: ``total`` is two passes of ``n`` frames.

    Parameters
    ----------
    n : int
        Frames in the stack.
    progress : callable(done, total, stage), optional
        Called with whole frames done, at most once per frame.
    is_cancelled : callable
        Checked at every tick; :class:`Cancelled` is raised when it says so.
    """

    def __init__(self, n: int, progress: Callable[[int, int, str], None] | None, is_cancelled: Callable[[], bool]):
        self.n, self.progress, self.is_cancelled = n, progress, is_cancelled
        self.done = 0.0
        self.reported = 0
        self.cancelled = False

    def tick(self, stage: str, frames: float = 1.0) -> None:
        """Count ``frames`` more done (tiles count fractions of a frame) in ``stage``."""
        self.done += frames
        whole = int(self.done + 1e-6)
        if self.progress is not None and whole > self.reported:
            self.reported = whole
            self.progress(whole, 2 * self.n, stage)
        if self.cancelled or self.is_cancelled():
            self.cancelled = True
            raise Cancelled("cancelled by the user")

    def restart_fusion(self) -> None:
        """The fusion starts over (smaller tiles after running out of device memory)."""
        self.done = float(self.n)

    def quiet(self) -> RunProgress:
        """The same cancellation without progress (a pass done again)."""
        return RunProgress(self.n, None, self.is_cancelled)


class FrameCache:
    """Decoded frames kept between the passes, up to a byte budget (0: none)."""

    def __init__(self, budget: int):
        self.budget, self.used, self.frames, self.hits = budget, 0, {}, 0
        self.lock = threading.Lock()

    def put(self, i: int, frame: Any) -> None:
        with self.lock:
            if self.used + frame.nbytes <= self.budget:
                self.frames[i] = frame
                self.used += frame.nbytes

    def get(self, i: int) -> Any | None:
        with self.lock:
            frame = self.frames.get(i)
            self.hits += frame is not None
            return frame

    def clear(self) -> None:
        with self.lock:
            self.frames.clear()
            self.used = 0


def read_frame(source: FrameSource, cache: FrameCache, i: int) -> Any:
    """Frame ``i`` as stored: from the cache (maybe on the device), else decoded on the host."""
    frame = cache.get(i)
    return source.read(i) if frame is None else frame


def prefetched(fn: Callable, items: list, ahead: int) -> Iterator:
    """``map(fn, items)`` in order, the next ``ahead`` items computed on one background thread.

    While the consumer works on result ``k``, result ``k + 1`` is being
    computed: at most ``ahead + 1`` results are alive. ``fn`` runs on one
    thread at a time, in order, so it may consume an iterator.
    """
    if ahead <= 0:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(1) as pool:
        pending = [pool.submit(fn, item) for item in items[:ahead]]
        try:
            for k in range(len(items)):
                if k + ahead < len(items):  # queued now, it starts as soon as the one before is done
                    pending.append(pool.submit(fn, items[k + ahead]))
                # no name for the result (nor its future) here: the consumer alone decides when it dies
                yield pending.pop(0).result()
        finally:
            for fut in pending:
                fut.cancel()
