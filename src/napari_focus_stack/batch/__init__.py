"""Many stacks at once: an OpenScan scan, in-process or on a Dask cluster.

A batch is a :class:`~napari_focus_stack.grouping.Plan` (which files form
which stacks) turned into independent stack jobs. Each job reads its frames,
runs :class:`~napari_focus_stack.stacker.FocusStacker`, and writes one image
named after the stack (``Ella_0_12.jpg``) with the reference frame's EXIF
(orientation normalised) and ICC profile, optionally with depth and confidence
maps beside it.

Nothing is lost:

* inputs are never written to, even when the output folder is the input
  folder;
* every output is written to a temporary name and renamed when complete;
* a small done-marker per stack (``.napari-focus-stack/<stack>.json`` in the
  output folder) records the output sizes and a hash of everything that
  shapes the result; a rerun skips stacks whose marker matches, so an
  interrupted batch continues where it stopped (:mod:`.markers`);
* a stack that fails (unreadable frame, mixed sizes, memory, disk full...) is
  reported and the other stacks go on; a stack that raises anything else (a
  bug) is retried, then reported with its traceback.

The package is split by job: :mod:`.options` (BatchOptions), :mod:`.plan`
(which stacks run, are complete or cannot run), :mod:`.task` (one stack),
:mod:`.markers` (resume state), :mod:`.memory` (up-front memory checks),
:mod:`.executors` (in-process and Dask), :mod:`.report` (JSON and CSV) and
:mod:`.run` (:func:`run_batch`, which ties them together). The command line
``napari-focus-stack batch`` lives in :mod:`napari_focus_stack.cli`.

Examples
--------
>>> from napari_focus_stack.batch import BatchOptions, run_batch
>>> result = run_batch("scan/", "stacked/", BatchOptions(workers=2))  # doctest: +SKIP
>>> result.counts  # doctest: +SKIP
{'done': 48, 'skipped': 0, 'failed': 0, 'cancelled': 0}
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

#: public name -> the submodule defining it. Loaded on first use (PEP 562), so
#: that ``batch.memory``, which the ``stack`` command uses, does not bring the
#: planner and the grouping modes (a few hundredths of a second) with it.
_WHERE = {
    "BatchOptions": "options",
    "BatchResult": "run",
    "FORMATS": "options",
    "REPORT_NAME": "report",
    "STATE_DIR": "markers",
    "StackJob": "plan",
    "StackTask": "task",
    "available_memory": "memory",
    "check_memory": "memory",
    "estimate_peak_memory": "memory",
    "fit_memory": "memory",
    "plan_batch": "plan",
    "run_batch": "run",
    "run_stack": "task",
}

__all__ = [
    "BatchOptions",
    "BatchResult",
    "FORMATS",
    "REPORT_NAME",
    "STATE_DIR",
    "StackJob",
    "StackTask",
    "available_memory",
    "check_memory",
    "estimate_peak_memory",
    "fit_memory",
    "plan_batch",
    "run_batch",
    "run_stack",
]

if TYPE_CHECKING:  # for type checkers and editors: the eager imports
    from .markers import STATE_DIR
    from .memory import available_memory, check_memory, estimate_peak_memory, fit_memory
    from .options import FORMATS, BatchOptions
    from .plan import StackJob, plan_batch
    from .report import REPORT_NAME
    from .run import BatchResult, run_batch
    from .task import StackTask, run_stack


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # next time a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
