"""The job layer: one focus-stacking job planned, run and written the same way for every front end.

The command line (``stack``), each stack of a batch and the napari widgets
describe what they want as a :class:`Job` and call :func:`plan_job` and
:func:`run_job`: the kind of data, the output checks, the memory rule
(:mod:`.memory`) and the all-or-none writing live here once.
"""
from __future__ import annotations

from .job import Job, JobPlan, JobResult, classify_inputs, fit_tiles, plan_job, run_job
from .memory import TILE_SIZES, available_memory, check_memory, estimate_peak_memory, fit_memory

__all__ = [
    "Job", "JobPlan", "JobResult", "TILE_SIZES", "available_memory", "check_memory", "classify_inputs",
    "estimate_peak_memory", "fit_memory", "fit_tiles", "plan_job", "run_job",
]
