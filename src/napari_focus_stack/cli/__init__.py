"""Command line: ``napari-focus-stack stack|batch|demo|info``.

The command line parses, checks what it was given, and calls the library;
nothing in the library imports it. One module per command (:mod:`.stack`,
:mod:`.batch`, :mod:`.demo`, :mod:`.info`), the parser with the engine
options generated from :data:`napari_focus_stack.options.OPTIONS`
(:mod:`.parser`), and the progress bar (:mod:`.progress`).

Exit codes: 0 success; 1 some stacks of a batch failed, or a bug (with its
traceback); 2 a user error (bad input, options or output), one line on
stderr; 130 interrupted (Ctrl-C); 143 terminated (SIGTERM).
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence

from .._runtime import tune_malloc
from ..errors import FocusStackError, FocusStackWarning
from .parser import build_parser

__all__ = ["build_parser", "main"]


@contextlib.contextmanager
def _terminate_as_interrupt(received: list) -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt while a command runs.

    Python's default for SIGTERM ends the process at once, so the atomic
    writers' cleanup never runs and hidden temporary files stay behind;
    raising KeyboardInterrupt unwinds like Ctrl-C does.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _warning_line() -> Callable:
    """A ``warnings.showwarning`` printing every warning as one plain line.

    The engine's warnings (:class:`FocusStackWarning`) as they are; any
    other (a NumPy RuntimeWarning, a library's deprecation) with its kind
    and where it was raised, instead of Python's two lines with the source.
    """

    def showwarning(message, category, filename, lineno, file=None, line=None):
        from tqdm import tqdm

        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        if not issubclass(category, FocusStackWarning):
            text = f"{text} ({category.__name__}, {os.path.basename(str(filename))}:{lineno})"
        # tqdm.write keeps a progress bar intact below the line
        tqdm.write(f"napari-focus-stack: warning: {text}", file=file or sys.stderr)

    return showwarning


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``napari-focus-stack`` with `argv` (default: ``sys.argv[1:]``); return the exit code.

    Errors of the :class:`~napari_focus_stack.errors.FocusStackError` family
    are printed as one line (exit 2); anything else is a bug and propagates
    with its traceback.
    """
    tune_malloc()
    if argv is None:
        argv = sys.argv[1:]
    args = build_parser(argv).parse_args(argv)
    received: list[int] = []
    try:
        with _terminate_as_interrupt(received), warnings.catch_warnings():
            warnings.showwarning = _warning_line()
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if received:
            print("napari-focus-stack: terminated", file=sys.stderr)
            return 128 + received[0]
        print("napari-focus-stack: interrupted", file=sys.stderr)
        return 130
    except FocusStackError as exc:
        print(f"napari-focus-stack: error: {exc}", file=sys.stderr)
        return 2
