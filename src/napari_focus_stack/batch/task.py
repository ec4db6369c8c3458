"""One stack of a batch: the job description and the function that runs it.

:class:`StackTask` is plain data, so that it travels to Dask workers;
:func:`run_stack` reads the frames, runs the engine, writes the outputs
atomically and records the stack's marker and report entry.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._runtime import default_threads, pixel_limit, pixel_limit_hint, tune_malloc
from ..errors import AlignmentError, FocusStackError, OutputError, StackError
from ..io.outputs import Output, write_outputs
from .calibration import check_reused_alignment
from .markers import STATE_DIR, json_safe, write_marker
from .memory import fit_memory

__all__ = ["ProgressCallback", "StackTask", "new_entry", "run_stack"]

ProgressCallback = Callable[[str, int, int, str], None]


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


def _dask_context(task: StackTask) -> tuple[Any, str | None, int]:
    """(worker or None, host, tasks at once on this host)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # distributed not installed, or not on a Dask worker
        return None, None, 1
    host = worker.address.rsplit(":", 1)[0]
    share = int((task.threads_on_host or {}).get(host, worker.state.nthreads))
    return worker, host, max(1, share)


def progress_reporter(task: Any, worker: Any, progress: ProgressCallback | None) -> Callable[[int, int, str], None]:
    """The engine's ``progress(done, total, stage)`` for `task`: to `progress`, and as an event from a Dask worker."""

    def report(done: int, total: int, stage: str) -> None:
        if progress is not None:
            progress(task.name, done, total, stage)
        if worker is not None and task.progress_topic:
            worker.log_event(task.progress_topic, {"stack": task.name, "done": done, "total": total, "stage": stage})

    return report


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
    from ..io import is_hyperstack_file, plane_count, read_meta
    from ..stacker import Cancelled, FocusStacker

    t0 = time.perf_counter()
    worker, host, share = _dask_context(task)
    if worker is not None:
        tune_malloc()
    threads = int(task.engine_workers) if task.engine_workers else default_threads(share)
    entry_extra = {"worker": host or "local"}

    report = progress_reporter(task, worker, progress)
    try:
        if len(task.frames) == 1 and is_hyperstack_file(task.frames[0]):
            return _run_hyperstack(task, threads, share, report, cancel, t0, entry_extra)
        if len(task.frames) < 2 and not (task.frames and plane_count(task.frames[0]) > 1):
            raise StackError(f"{task.name} has {len(task.frames)} frame; a stack needs at least 2 frames")
        meta = read_meta(task.frames[0])
        engine = dict(task.engine)
        engine["tile_size"] = fit_memory(
            meta.shape, engine["scale_factor"], threads, tile_size=engine.get("tile_size"),
            share=share, max_memory=task.max_memory, what=task.name,
        )
        write_marker(task, "started")
        stacker = FocusStacker(**engine, workers=threads)
        transforms, fit, check_s = None, None, None
        if task.transforms is not None:
            transforms = [None if m is None else np.asarray(m) for m in task.transforms]
            if task.reuse_tolerance:
                t_check = time.perf_counter()
                fit = check_reused_alignment(
                    task.frames, transforms, reference=task.engine.get("reference"), model=task.engine["align"],
                    backend=stacker.backend, tolerance_px=task.reuse_tolerance,
                )
                check_s = time.perf_counter() - t_check
                if not fit["fits"]:
                    transforms = None  # this stack moved on its own: align it on its own
        result = stacker.stack(list(task.frames), progress=report, cancel=cancel, transforms=transforms)
        entry = _result_entry(task, result.report)
        entry.update(entry_extra)
        entry["tile_size"] = engine["tile_size"]
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
        used = sum(m is not None for m in result.transforms)
        if used < 2:
            reasons = "; ".join(f"{e['name']}: {e['reason']}" for e in entry["excluded"]) or "no reason given"
            raise AlignmentError(
                f"{task.name}: no frame could be aligned to the reference frame {entry['reference']} "
                f"({reasons}). The frames do not look like one focus stack: check the grouping, "
                "or try --align translation or --align none."
            )
        t1 = time.perf_counter()
        meta = result.meta
        for path in task.outputs.values():  # OpenScan naming writes into scanNN/stacked/
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"cannot create the folder {Path(path).parent}: {exc.strerror or exc}. "
                    "Choose an output folder you can write to."
                ) from exc
        sizes = write_outputs(
            [Output(kind, Path(path)) for kind, path in task.outputs.items()],
            result.arrays(task.outputs),
            quality=task.quality, exif=getattr(meta, "exif", None), icc=getattr(meta, "icc", None),
            bit_depth=task.bit_depth, protect=task.frames,
        )
        entry["timings"]["write_s"] = time.perf_counter() - t1
        entry["timings"]["wall_s"] = time.perf_counter() - t0
        entry["outputs"] = {k: str(v) for k, v in task.outputs.items()}
        write_marker(task, "done", sizes=sizes, entry=entry, transforms=result.transforms)
        entry["_transforms"] = [None if m is None else np.asarray(m).tolist() for m in result.transforms]
        return entry
    except Cancelled:
        return new_entry(task, "cancelled", error="cancelled", **entry_extra)
    except FocusStackError as exc:  # the user's data or options: retrying cannot help
        hint = pixel_limit_hint(exc, "max_pixels=N (--max-pixels N on the command line)")
        entry = new_entry(task, "failed", error=f"{exc}{hint}", **entry_extra)
        entry["timings"]["wall_s"] = time.perf_counter() - t0
        return entry


def _run_hyperstack(task: StackTask, threads: int, share: int, report, cancel, t0: float, extra: dict) -> dict:
    """One file of microscope data: every time point fused, calibrated TIFFs written all or none."""
    from ..io import read_hyperstack
    from ..nd import stack_nd_to_files
    from ..stacker import FocusStacker

    path = task.frames[0]
    with read_hyperstack(path) as hs:
        frame_shape = hs.frame_shape
    engine = dict(task.engine)
    engine["tile_size"] = fit_memory(
        frame_shape, engine["scale_factor"], threads, tile_size=engine.get("tile_size"),
        share=share, max_memory=task.max_memory, what=task.name,
    )
    write_marker(task, "started")
    stacker = FocusStacker(**engine, workers=threads)
    outs = task.outputs
    info = stack_nd_to_files(
        stacker, path, outs["image"], height=outs.get("depth"), confidence=outs.get("confidence"),
        progress=report, cancel=cancel,
    )
    reports = info["reports"]
    entry = _result_entry(task, reports[0])
    entry.update(extra)
    if task.transforms is not None:
        entry["warnings"].append("microscope data reuses its own alignment across its time points, not another stack's")
    entry["timings"] = {
        "align_s": sum(r["timings"]["align_s"] for r in reports),
        "fuse_s": sum(r["timings"]["fuse_s"] for r in reports),
        "wall_s": time.perf_counter() - t0,
    }
    entry.update(z_stacks=len(reports), axes=info["axes"], height_unit=info["unit"])
    entry["outputs"] = {k: str(v) for k, v in outs.items()}
    write_marker(task, "done", sizes=info["sizes"], entry=entry, transforms=None)
    return json_safe(entry)


def _result_entry(task: StackTask, rep: dict) -> dict:
    frames = rep.get("frames", [])
    excluded = [{"name": f["name"], "reason": f.get("reason", "excluded")} for f in frames if f.get("excluded")]
    ref = rep.get("reference")
    qualities = [
        f["quality"]
        for f in frames
        if not f.get("excluded") and f.get("index") != ref
        and f.get("quality") is not None and math.isfinite(f["quality"])
    ]
    warnings = list(task.warnings) + list(rep.get("warnings", []))
    warnings += [f"frame {e['name']} excluded: {e['reason']}" for e in excluded]
    entry = new_entry(
        task,
        "done",
        excluded=excluded,
        reference=frames[ref]["name"] if ref is not None and ref < len(frames) else None,
        warnings=warnings,
        backend=rep.get("backend"),
        timings=dict(rep.get("timings", {})),
    )
    entry["alignment"].update(
        quality_min=min(qualities) if qualities else None,
        quality_mean=sum(qualities) / len(qualities) if qualities else None,
        frames=frames,
    )
    return json_safe(entry)
