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
(which stacks run, are complete or cannot run), :mod:`.task` (one stack, a
:class:`~napari_focus_stack.jobs.Job` of the job layer), :mod:`.markers`
(resume state), :mod:`.calibration` (reused alignment), :mod:`.report`
(the result, JSON and CSV), :mod:`.run` (:func:`run_batch`, which ties
them together on an executor of :mod:`napari_focus_stack.executors`) and
:mod:`.watch` (:func:`watch_batch`: the same while the frames arrive,
each stack as soon as it is complete). The command line
``napari-focus-stack batch`` (``--watch``) lives in :mod:`napari_focus_stack.cli`.

Examples
--------
>>> from napari_focus_stack.batch import BatchOptions, run_batch
>>> result = run_batch("scan/", "stacked/", BatchOptions(workers=2))  # doctest: +SKIP
>>> result.counts  # doctest: +SKIP
{'done': 48, 'skipped': 0, 'failed': 0, 'cancelled': 0}
"""
from __future__ import annotations

from .markers import STATE_DIR
from .options import FORMATS, BatchOptions
from .plan import StackJob, plan_batch
from .report import REPORT_NAME, BatchResult
from .run import run_batch
from .task import StackTask, run_stack
from .watch import watch_batch

__all__ = [
    "BatchOptions",
    "BatchResult",
    "FORMATS",
    "REPORT_NAME",
    "STATE_DIR",
    "StackJob",
    "StackTask",
    "plan_batch",
    "run_batch",
    "run_stack",
    "watch_batch",
]
