"""The background run of a dock widget: one napari worker at a time, and its cancel flag.

Both dock widgets (:mod:`.stack_widget`, :mod:`.batch_widget`) run their job
on napari's worker thread the same way: the run starts only when none is
going, Cancel sets a flag the engine checks between frames, closing the dock
cancels too, and the worker's ``returned``, ``errored`` and ``finished``
signals come back to the widget on the GUI thread.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["BackgroundRun", "start_worker"]


class BackgroundRun:
    """Mixin for a ``QWidget`` running one job at a time.

    The widget calls :meth:`_init_run` in its ``__init__`` and provides
    ``cancel_button``, ``_on_returned(outcome)``, ``_on_finished()`` and
    ``_show_cancelling()``; ``_on_errored(exc)`` is connected when it has one
    (else napari re-raises a worker's unexpected exception with its traceback).
    """

    worker: Any = None

    def _init_run(self) -> None:
        self.worker = None
        self._cancel = threading.Event()
        cancel = self._cancel  # not self: the slot must outlive the widget
        self.destroyed.connect(lambda *_: cancel.set())  # the dock closed mid-run: stop the worker

    def _start(self, fn: Callable, *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on napari's worker thread, its signals wired to this widget."""
        self._cancel.clear()
        self.worker = start_worker(fn, *args, returned=self._on_returned, finished=self._on_finished,
                                   errored=getattr(self, "_on_errored", None), **kwargs)

    def cancel(self) -> None:
        """Ask the running job to stop; it does so after the frame in progress."""
        if self.worker is not None:
            self._cancel.set()
            self.cancel_button.setEnabled(False)
            self._show_cancelling()


def start_worker(fn: Callable, *args: Any, returned: Callable, finished: Callable,
                 errored: Callable | None = None, **kwargs: Any) -> Any:
    """Run ``fn(*args, **kwargs)`` on napari's worker thread; its signals go to the given slots. The worker.

    Without ``errored`` napari re-raises an exception of ``fn`` with its traceback.
    """
    from napari.qt.threading import create_worker

    worker = create_worker(fn, *args, _start_thread=False, **kwargs)
    worker.returned.connect(returned)
    if errored is not None:
        worker.errored.connect(errored)
    worker.finished.connect(finished)
    worker.start()
    return worker
