"""One stack of a batch: the job description and the function that runs it.

:class:`StackTask` is plain data, so that it travels to Dask workers;
:func:`run_stack` turns it into a :class:`~napari_focus_stack.jobs.Job`
(photos or one microscope file: the job layer plans, runs and writes the
outputs all or none) and records the stack's marker and report entry.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._runtime import default_threads, pixel_limit, pixel_limit_hint, task_progress, tune_malloc, worker_context
from ..errors import Cancelled, FocusStackError, StackError
from ..executors import ProgressCallback
from ..io import plane_count
from ..io.outputs import Output
from ..jobs import Job, JobResult, plan_job, run_job
from ..options import EngineOptions
from ..result import StackReport
from .calibration import check_reused_alignment
from .markers import STATE_DIR, json_safe, write_marker

__all__ = ["StackTask", "new_entry", "run_stack"]



@dataclass
class StackTask:
    """One stack job: what a worker needs to produce and record one stack.

    Plain data, so that it travels to Dask workers.
    """

    name: str
    frames: list[str]
    outputs: dict[str, str]  # "image" / "depth" / "confidence" -> absolute path
    output_dir: str
    engine: dict
    bit_depth: int | None
    quality: int
    params_hash: str
    transforms: list | None = None  # reused alignment (lists of 3x3), None: estimate
    reuse_source: str | None = None  # where the reused alignment comes from
    reuse_tolerance: float | None = None  # px: check the reused alignment fits first; None/0: do not check
    warnings: list[str] = field(default_factory=list)
    engine_workers: int | None = None  # engine threads; None: decide where it runs
    threads_on_host: dict | None = None  # Dask: {host: tasks at once} to share the cores
    progress_topic: str | None = None  # Dask: event topic for per-frame progress
    max_pixels: int | None = None  # decompression-bomb limit; None: the reader's default
    max_memory: float | None = None  # GiB this stack may use; None: its share of the available memory

    @property
    def marker(self) -> Path:
        """This stack's resume marker."""
        return Path(self.output_dir) / STATE_DIR / f"{self.name}.json"

    def make_entry(self, status: str, **extra) -> dict:
        """A report entry for this stack with every field present (see :func:`new_entry`)."""
        return new_entry(self, status, **extra)


def new_entry(task: StackTask, status: str, **extra) -> dict:
    """A report entry for `task` with every field present."""
    entry = {
        "stack": task.name,
        "status": status,
        "frames": [Path(f).name for f in task.frames],
        "n_frames": len(task.frames),
        "excluded": [],
        "reference": None,
        "alignment": {
            "reused_from": task.reuse_source,
            "reuse_check": None,
            "quality_min": None,
            "quality_mean": None,
            "frames": [],
        },
        "timings": {},
        "outputs": {},
        "warnings": list(task.warnings),
        "error": None,
        "backend": None,
        "worker": None,
    }
    entry.update(extra)
    return entry


def run_stack(
    task: StackTask,
    progress: ProgressCallback | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> dict:
    """Stack one job and record it; the unit of work of a batch.

    Parameters
    ----------
    task : StackTask
        The job (frames, outputs, engine parameters, reused alignment).
    progress : callable(stack, done, total, stage), optional
        Per-frame progress. On a Dask worker, progress is also sent as an
        event on ``task.progress_topic``.
    cancel : callable or threading.Event, optional
        Checked between frames.

    Returns
    -------
    dict
        The stack's report entry; ``status`` is ``"done"``, ``"failed"`` or
        ``"cancelled"``. Errors of the :class:`FocusStackError` family (bad
        frames, memory, disk full...) give a failed entry; any other
        exception (a bug, or something unexpected) propagates, so that the
        executor retries it. Outputs are written all or none.
    """
    with pixel_limit(task.max_pixels):
        return _run_stack(task, progress, cancel)


def _run_stack(task: StackTask, progress: ProgressCallback | None, cancel) -> dict:
    t0 = time.perf_counter()
    worker, host, share = worker_context(task.threads_on_host)
    if worker is not None:
        tune_malloc()
    threads = int(task.engine_workers) if task.engine_workers else default_threads(share)
    extra = {"worker": host or "local"}
    report = task_progress(task.name, worker, task.progress_topic, progress)
    try:
        if len(task.frames) < 2 and not (task.frames and plane_count(task.frames[0]) > 1):
            raise StackError(f"{task.name} has {len(task.frames)} frame; a stack needs at least 2 frames")
        job = Job(
            list(task.frames), EngineOptions.from_mapping(task.engine), workers=threads,
            outputs=[Output(kind, Path(path)) for kind, path in task.outputs.items()], quality=task.quality,
            bit_depth=task.bit_depth, max_memory=task.max_memory, share=share, create_folders=True, name=task.name,
        )
        plan = plan_job(job)
        write_marker(task, "started")
        fit, check_s = None, None
        if plan.kind == "photos" and task.transforms is not None:
            job.transforms = [None if m is None else np.asarray(m) for m in task.transforms]
            if task.reuse_tolerance:
                t_check = time.perf_counter()
                fit = check_reused_alignment(
                    plan.source, job.transforms, reference=plan.stacker.reference, model=plan.stacker.align,
                    backend=plan.stacker.backend, tolerance_px=task.reuse_tolerance,
                )
                check_s = time.perf_counter() - t_check
                if not fit["fits"]:
                    job.transforms = None  # this stack moved on its own: align it on its own
        done = run_job(plan, progress=report, cancel=cancel)
        entry = _result_entry(task, done)
        entry.update(extra)
        entry["tile_size"] = plan.stacker.tile_size
        entry["warnings"] += plan.notes
        if plan.kind == "hyperstack" and task.transforms is not None:
            entry["warnings"].append(
                "microscope data reuses its own alignment across its time points, not another stack's"
            )
        if fit is not None:
            entry["alignment"]["reuse_check"] = json_safe(fit)
            entry["timings"]["check_s"] = check_s
            if not fit["fits"]:
                worst = max(fit["frames"], key=lambda f: f["error_px"])
                entry["alignment"]["reused_from"] = None
                entry["warnings"].append(
                    f"the reused alignment ({task.reuse_source}) does not fit this stack: {worst['name']} is off "
                    f"by {worst['error_px']:.1f} px (tolerance {fit['tolerance_px']:g} px); aligned on its own"
                )
        entry["timings"]["wall_s"] = time.perf_counter() - t0
        entry["outputs"] = {k: str(v) for k, v in task.outputs.items()}
        transforms = done.result.transforms if plan.kind == "photos" else None
        write_marker(task, "done", sizes=done.sizes, entry=entry, transforms=transforms)
        if transforms is not None:
            entry["_transforms"] = [None if m is None else np.asarray(m).tolist() for m in transforms]
        return entry
    except Cancelled:
        return new_entry(task, "cancelled", error="cancelled", **extra)
    except FocusStackError as exc:  # the user's data or options: retrying cannot help
        hint = pixel_limit_hint(exc, "max_pixels=N (--max-pixels N on the command line)")
        entry = new_entry(task, "failed", error=f"{exc}{hint}", **extra)
        entry["timings"]["wall_s"] = time.perf_counter() - t0
        return entry


def _result_entry(task: StackTask, done: JobResult) -> dict:
    """The report entry of a finished stack, from its first (or only) z-stack's report and the timings of all."""
    rep: StackReport = done.reports[0]
    excluded = [{"name": f.name, "reason": f.reason or "excluded"} for f in rep.excluded_frames]
    quality_min, quality_mean = rep.quality_range
    warnings = list(task.warnings) + list(rep.warnings)
    warnings += [f"frame {e['name']} excluded: {e['reason']}" for e in excluded]
    entry = new_entry(
        task,
        "done",
        excluded=excluded,
        reference=rep.reference_name,
        warnings=warnings,
        backend=rep.backend,
        timings={
            "align_s": sum(r.timings.align_s for r in done.reports),
            "fuse_s": sum(r.timings.fuse_s for r in done.reports),
            "total_s": sum(r.timings.total_s for r in done.reports),
            "write_s": done.write_s,
        },
    )
    entry["alignment"].update(
        quality_min=quality_min, quality_mean=quality_mean, frames=[f.to_dict() for f in rep.frames]
    )
    if done.plan.kind == "hyperstack":
        entry.update(z_stacks=len(done.reports), axes=done.axes, height_unit=done.unit)
    return json_safe(entry)
