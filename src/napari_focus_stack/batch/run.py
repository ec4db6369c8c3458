"""run_batch: plan, run every stack on an executor, write the reports."""
from __future__ import annotations

import functools
import json
import os
import socket
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .._runtime import cancel_check
from ..align import corner_error, relative_to
from ..errors import AlignmentError, FocusStackWarning, InputError, OutputError
from ..executors import DaskExecutor, InProcess, ProgressCallback
from ..grouping import Plan
from ..io import read_meta, write_text
from ..io.atomic import FileLock, Locked
from ..stacker import FocusStacker
from .calibration import combine_transforms
from .markers import MARKER_VERSION, STATE_DIR, is_complete, read_marker
from .options import BatchOptions
from .plan import StackJob, calibration_key, plan_batch
from .report import BatchResult, write_reports
from .task import new_entry, run_stack

__all__ = [
    "CANCELLED_BEFORE",
    "BatchResult",
    "Recorder",
    "calibration_transforms",
    "capped_workers",
    "check_output_dir",
    "fatal_line",
    "make_executor",
    "output_folder_lock",
    "reuse_alignment",
    "run_batch",
    "split_sources",
]

#: The error of a stack that a cancelled or interrupted batch never started.
CANCELLED_BEFORE = "cancelled before it ran"


def check_output_dir(out: Path) -> None:
    """Create the output folder and its state folder; raise :class:`OutputError` when it cannot be written."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"the output path {out} exists and is not a folder; give a folder.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}.") from exc
    try:
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test.", delete=True):
            pass
        (out / STATE_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"the output folder {out} is not writable ({exc.strerror or exc}). Choose a folder you can write to."
        ) from exc


def run_batch(
    inputs: str | os.PathLike | Sequence | Plan,
    output_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    *,
    mode: str = "auto",
    stack_size: int | None = None,
    pattern: str | None = None,
    progress: ProgressCallback | None = None,
    on_stack: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    runner: Callable[..., dict] | None = None,
) -> BatchResult:
    """Stack every stack of a scan and write a report.

    Parameters
    ----------
    inputs : path-like, list of path-like or Plan
        Scan folder, file list, or a plan from
        :func:`~napari_focus_stack.grouping.detect_stacks`.
    output_dir : path-like
        Created if needed. May be the input folder: inputs are never written.
    options : BatchOptions, optional
    mode, stack_size, pattern
        Grouping, see :func:`~napari_focus_stack.grouping.detect_stacks`.
    progress : callable(stack, done, total, stage), optional
        Per-frame progress of each stack (from a Dask worker, via events).
    on_stack : callable(entry), optional
        Called with each stack's report entry as soon as it is known.
    cancel : callable or threading.Event, optional
        Stops the batch: running stacks stop between frames (in-process) or
        are abandoned (Dask); nothing partial is left.
    runner : callable(StackTask) -> dict, optional
        Replaces :func:`run_stack` (tests, instrumentation). Must be
        importable or picklable by value for Dask.

    Returns
    -------
    BatchResult

    Raises
    ------
    InputError
        No stacks found, or the plan has a fatal problem (frames of several
        stacks grouped as one, see :attr:`Plan.fatal`); nothing is written.
    OutputError
        The output folder cannot be created or written.
    ParameterError
        Invalid options.
    """
    options = options or BatchOptions()
    options.validate()
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = Path(output_dir).expanduser().absolute()
    plan, jobs = plan_batch(inputs, out, options, mode=mode, stack_size=stack_size, pattern=pattern)
    if not plan.stacks:
        why = "; ".join(p.message for p in plan.problems) or "no stacks found"
        raise InputError(f"nothing to stack: {why}")
    if plan.fatal:
        raise InputError(fatal_line(plan))
    check_output_dir(out)
    lock = output_folder_lock(out)
    try:
        return _run_jobs(plan, jobs, out, options, progress, on_stack, cancel, runner, t0, started)
    finally:
        lock.release()


def output_folder_lock(out: Path) -> FileLock:
    """This batch's lock on its output folder: two batches never write into one folder at once.

    Each would take the other's temporary files for what a killed run left
    and remove them (and both would write the same stacks).

    Raises
    ------
    OutputError
        Another batch holds it; the message says which process, since when.
    """
    holder = f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}"
    lock = FileLock(out / STATE_DIR / "batch.lock", holder)
    try:
        lock.acquire()
    except Locked as exc:
        raise OutputError(
            f"another batch is writing into {out} ({exc.holder or 'a running process'}); "
            "wait for it to finish, or choose another output folder"
        ) from None
    except OSError as exc:
        raise OutputError(f"cannot lock the output folder {out}: {exc.strerror or exc}.") from exc
    return lock


class Recorder:
    """The report entries of a batch as they come, by stack, each passed on to ``on_stack``."""

    def __init__(self, on_stack: Callable[[dict], None] | None = None):
        self.entries: dict[str, dict] = {}
        self.on_stack = on_stack

    def record(self, entry: dict) -> None:
        """Keep `entry` (without the transforms a calibration stack carries) and pass it on."""
        entry = {k: v for k, v in entry.items() if k != "_transforms"}
        self.entries[entry["stack"]] = entry
        if self.on_stack is not None:
            self.on_stack(entry)

    def record_planned(self, jobs: list[StackJob]) -> None:
        """Entries of the jobs decided at planning: complete from an earlier run, or cannot run."""
        for job in jobs:
            if job.state == "skip":
                stored = dict((job.marker or {}).get("entry") or new_entry(job.task, "done"))
                stored["status"] = "skipped"
                stored["note"] = "complete from an earlier run (resumed)"
                self.record(stored)
            elif job.state == "fail":
                self.record(new_entry(job.task, "failed", error=job.error))

    def record_unfinished(self, jobs: list[StackJob]) -> None:
        """Stopped early: for each job without an entry, what finished anyway (its marker), or that it did not run."""
        for job in jobs:
            if job.task.name not in self.entries:
                marker = read_marker(job.task.marker)
                if is_complete(job.task, marker) and marker.get("entry"):
                    self.record(dict(marker["entry"]))
                else:
                    self.record(new_entry(job.task, "cancelled", error=CANCELLED_BEFORE))


def split_sources(jobs: list[StackJob]) -> tuple[dict[str, list], list[StackJob]]:
    """The transforms of the calibration stacks complete from an earlier run, and those to run first.

    A calibration stack complete from an earlier run whose marker lacks the
    alignment runs again (its state becomes ``"run"``).
    """
    known: dict[str, list] = {}  # calibration stack -> its transforms
    first_wave: list[StackJob] = []  # calibration stacks to run before the others
    for job in jobs:
        if not job.alignment_source:
            continue
        if job.state == "skip" and (job.marker or {}).get("transforms") is not None:
            known[job.task.name] = job.marker["transforms"]
        elif job.state in ("skip", "run"):
            job.state = "run"  # (again, when an old marker lacks the alignment)
            first_wave.append(job)
    return known, first_wave


def make_executor(
    options: BatchOptions, progress: ProgressCallback | None, is_cancelled: Callable[[], bool],
    runner: Callable[..., dict] | None = None,
) -> tuple[InProcess | DaskExecutor, Callable[..., dict]]:
    """The batch's executor (in-process, or Dask with workers or a scheduler) and the runner of its stacks."""
    if options.scheduler or options.workers > 1:
        executor = DaskExecutor(
            options.scheduler, options.workers, retries=options.retries, progress=progress,
            is_cancelled=is_cancelled,
        )
        return executor, runner or run_stack  # progress comes back as the workers' events
    executor = InProcess(options.retries, is_cancelled)
    return executor, runner or functools.partial(run_stack, progress=progress, cancel=is_cancelled)


def _run_jobs(plan, jobs, out, options, progress, on_stack, cancel, runner, t0, started) -> BatchResult:
    """Run the planned jobs of :func:`run_batch` (its output folder locked) and write the reports."""
    explicit = explicit_calibration(options, out)
    known, first_wave = split_sources(jobs)
    recorder = Recorder(on_stack)
    record = recorder.record
    is_cancelled = cancel_check(cancel)
    recorder.record_planned(jobs)

    first_ids = {id(j) for j in first_wave}
    todo = [j for j in jobs if j.state == "run" and id(j) not in first_ids]
    options = capped_workers(options, len(todo) + len(first_wave))
    executor = None
    interrupted = False
    calibration: list[dict] = []
    try:
        executor, runner = make_executor(options, progress, is_cancelled, runner)
        if first_wave:
            for got in executor.run([j.task for j in first_wave], runner, record):
                if got.get("status") == "done" and got.get("_transforms") is not None:
                    known[got["stack"]] = got["_transforms"]
        if options.reuse:
            calibration = reuse_alignment(jobs, todo, known, explicit, options)
        if todo and not is_cancelled():
            executor.run([j.task for j in todo], runner, record)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if executor is not None:
            executor.close()
    recorder.record_unfinished(jobs)  # stopped early: what finished anyway, and what did not run

    ordered = [recorder.entries[j.task.name] for j in jobs]
    elapsed = time.perf_counter() - t0
    result = BatchResult(plan, ordered, None, None, elapsed, getattr(executor, "startup_s", 0.0), calibration)
    result.report_json, result.report_csv = write_reports(out, plan, options, result, started)
    if interrupted:
        raise KeyboardInterrupt
    return result


def capped_workers(options: BatchOptions, stacks: int | None) -> BatchOptions:
    """`options` with no more local workers than stacks to run and cores, saying so when it lowers them.

    A worker is a process that stacks one stack at a time on its own core:
    more workers than stacks start for nothing, more than cores only share
    the cores (and memory) and start slowly; 100000 would never start.
    `stacks` None: not known yet (``--watch``), capped by the cores only.
    """
    cores = os.cpu_count() or 1
    workers = max(1, min(int(options.workers), stacks if stacks is not None else cores, cores))
    if options.scheduler or workers == options.workers:
        return options
    what = f"{stacks} stack(s) to run on {cores} core(s)" if stacks is not None else f"{cores} core(s)"
    warnings.warn(
        f"{options.workers} workers asked for, {what}: running {workers} worker(s)", FocusStackWarning, stacklevel=3,
    )
    return replace(options, workers=workers)


def fatal_line(plan: Plan) -> str:
    """One line saying why `plan` must not run (it has fatal problems)."""
    fatal = plan.fatal
    more = f" (and {len(fatal) - 1} more fatal problem(s))" if len(fatal) > 1 else ""
    return f"nothing was done: {fatal[0].message}{more}"


def _reference_index(reference: int | None, n: int) -> int:
    return n // 2 if reference is None else int(reference) % n


def reuse_alignment(
    jobs: list[StackJob], todo: list[StackJob], known: dict[str, list], explicit: tuple | None, options: BatchOptions
) -> list[dict]:
    """Give every stack of `todo` the alignment of its group; describe each group's calibration.

    Parameters
    ----------
    jobs : list of StackJob
        Among them, the calibration stacks (``alignment_source``) of the groups of `todo`.
    todo : list of StackJob
        The stacks that reuse an alignment.
    known : dict
        The transforms of the calibration stacks that were aligned, by stack name.
    explicit : (transforms, source name) or None
        The alignment of ``--calibration PATH``, for every group.
    options : BatchOptions
    """
    reports = []
    for group in dict.fromkeys(j.group for j in todo):
        members = [j for j in todo if j.group == group]
        if explicit is not None:
            _apply_transforms(members, *explicit, options.reuse_tolerance)
            continue
        sources = [j for j in jobs if j.alignment_source and j.group == group]
        names = [j.task.name for j in sources]
        sets = [(j, known[j.task.name]) for j in sources if j.task.name in known]
        report = {"group": group, "stacks": names, "failed": [j.task.name for j in sources if j.task.name not in known]}
        if not sets:
            _apply_transforms(members, None, ", ".join(names), options.reuse_tolerance)
            reports.append(report)
            continue
        n = len(sets[0][1])
        ref = _reference_index(options.engine.reference, n)
        combined = combine_transforms([t for _, t in sets], ref)
        shape = read_meta(sets[0][0].task.frames[0]).shape
        report["deviation_px"] = {}
        for job, mats in sets:
            errors = [
                corner_error(m, c, shape)
                for m, c in zip(relative_to(mats, ref), combined, strict=False) if m is not None and c is not None
            ]
            report["deviation_px"][job.task.name] = max(errors, default=0.0)
        report["combined"] = "median" if len(sets) > 2 else "mean" if len(sets) == 2 else "single"
        label = sets[0][0].task.name if len(sets) == 1 else f"median of {', '.join(j.task.name for j, _ in sets)}"
        transforms = [None if m is None else m.tolist() for m in combined]
        _apply_transforms(members, transforms, label, options.reuse_tolerance)
        reports.append(report)
    return reports


def _apply_transforms(
    jobs: list[StackJob], transforms: list | None, source: str | None, tolerance: float | None = None
) -> None:
    for job in jobs:
        task = job.task
        task.reuse_source = source
        task.reuse_tolerance = tolerance or None
        if transforms is None:
            task.warnings.append(f"the alignment of {source} could not be reused (it failed); estimated for this stack")
            task.reuse_source = None
        elif len(transforms) != len(task.frames):
            task.warnings.append(
                f"{len(task.frames)} frames but the reused alignment of {source} has {len(transforms)}: "
                "alignment estimated for this stack"
            )
            task.reuse_source = None
        else:
            task.transforms = transforms


def explicit_calibration(options: BatchOptions, out: Path) -> tuple[list, str] | None:
    """``--calibration``'s transforms and the name of its stack, or None without one."""
    if not options.calibration:
        return None
    return calibration_transforms(options, out), Path(options.calibration).name


def calibration_transforms(options: BatchOptions, out: Path) -> list:
    """Transforms of the calibration stack, cached in the output folder."""
    files, key = calibration_key(options)
    cache = out / STATE_DIR / "calibration.json"
    data = read_marker(cache)
    if data and data.get("params") == key and data.get("transforms") is not None:
        return data["transforms"]
    mats, report = FocusStacker(**options.engine_kwargs()).estimate_transforms(files)
    transforms = [None if m is None else np.asarray(m).tolist() for m in mats]
    if sum(m is not None for m in transforms) < 2:
        raise AlignmentError(
            f"the calibration stack {options.calibration} could not be aligned "
            f"(excluded: {', '.join(report.excluded)}); choose another calibration stack."
        )
    text = json.dumps(
        {"version": MARKER_VERSION, "params": key, "source": str(options.calibration), "transforms": transforms}
    )
    write_text(cache, text)
    return transforms
