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
  shapes the result (engine parameters, output format, the input files'
  names, sizes and dates). A rerun skips stacks whose marker matches, so an
  interrupted batch continues where it stopped; changed parameters or
  inputs make the stack run again;
* a stack that fails (unreadable frame, mixed sizes, memory, disk full...) is
  reported and the other stacks go on.

Stacks run in the calling process (one worker, no scheduler) or as tasks on
``dask.distributed``: a local cluster of worker processes, or an existing
cluster given by its scheduler address (workers must see the same files).
A task whose worker dies is rescheduled by the scheduler; a task that raises
an unexpected error is retried (``retries``).

Examples
--------
>>> from napari_focus_stack.batch import BatchOptions, run_batch
>>> result = run_batch("scan/", "stacked/", BatchOptions(workers=2))  # doctest: +SKIP
>>> result.counts  # doctest: +SKIP
{'done': 48, 'skipped': 0, 'failed': 0, 'cancelled': 0}
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io as _stdio
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .cli import ENGINE_OPTIONS
from .errors import AlignmentError, FocusStackError, InputError, OutputError, StackError
from .grouping import MODES, Plan, Stack, detect_stacks
from .io import remove_stale_temps, write_text
from .stacker import cancel_check

__all__ = [
    "BatchOptions",
    "BatchResult",
    "StackJob",
    "StackTask",
    "STATE_DIR",
    "REPORT_NAME",
    "add_batch_parser",
    "available_memory",
    "check_memory",
    "estimate_peak_memory",
    "main",
    "plan_batch",
    "run_batch",
    "run_batch_cli",
    "run_stack",
]

#: Hidden folder, inside the output folder, that holds the per-stack done-markers.
STATE_DIR = ".napari-focus-stack"
#: Batch reports are ``<REPORT_NAME>.json`` and ``<REPORT_NAME>.csv`` in the output folder.
REPORT_NAME = "batch-report"
FORMATS = ("jpg", "png", "tif")
_MARKER_VERSION = 1
_PROGRESS_TOPIC = "napari-focus-stack-progress"
_FORMAT_OF_EXT = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".tif": "tif", ".tiff": "tif"}

ProgressCallback = Callable[[str, int, int, str], None]


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------


@dataclass
class BatchOptions:
    """Everything that shapes a batch besides the list of stacks.

    Parameters
    ----------
    radius, smoothing, scale_factor, method, align, reference, device, upscale_output, tile_size
        Engine parameters, as for :class:`~napari_focus_stack.stacker.FocusStacker`.
    format : {"jpg", "png", "tif"}, optional
        Output format; default: that of the stacks' frames (BMP/WebP -> PNG).
    bit_depth : {8, 16}, optional
        Output sample depth (16 needs PNG or TIFF); default: the frames'.
    quality : int
        JPEG quality.
    depth_maps, confidence_maps : bool
        Also write ``<stack>_depth.tif`` / ``<stack>_confidence.tif`` (float32).
    reuse_alignment : bool
        Estimate the alignment once and apply it to every stack with the same
        number of frames (turntable scans repeat one focus sequence).
    calibration : str, optional
        Stack (folder or files) to estimate the reused alignment from; default:
        the first stack. Implies `reuse_alignment`.
    overwrite : bool
        Recompute every stack and replace existing files of the same names
        (never the inputs). Without it, complete stacks are skipped and files
        this tool did not write are left alone (the stack fails).
    workers : int
        Worker processes of a local Dask cluster; 1 runs in this process.
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); then
        `workers` is ignored.
    retries : int
        Times a task that raised an unexpected error is retried on Dask.
    """

    radius: int = 8
    smoothing: float = 4
    scale_factor: int = 1
    method: str = "pyramid"
    align: str = "similarity"
    reference: int | None = None
    device: str = "auto"
    upscale_output: bool = False
    tile_size: int | None = None
    format: str | None = None
    bit_depth: int | None = None
    quality: int = 95
    depth_maps: bool = False
    confidence_maps: bool = False
    reuse_alignment: bool = False
    calibration: str | None = None
    overwrite: bool = False
    workers: int = 1
    scheduler: str | None = None
    retries: int = 2

    def engine_kwargs(self) -> dict:
        """Keyword arguments for :class:`FocusStacker`."""
        return {k: getattr(self, k) for k in ENGINE_OPTIONS}

    def validate(self) -> None:
        """Raise ``ValueError`` for options that cannot work together."""
        from .stacker import FocusStacker

        FocusStacker(**self.engine_kwargs())  # checks ranges and names
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.bit_depth not in (None, 8, 16):
            raise ValueError(f"bit depth must be 8 or 16, got {self.bit_depth!r}")
        if self.bit_depth == 16 and self.format == "jpg":
            raise ValueError("JPEG holds 8 bits per sample; use --format tif or png for 16-bit output")
        if not 1 <= int(self.quality) <= 100:
            raise ValueError(f"quality must be 1..100, got {self.quality!r}")
        if int(self.workers) < 1:
            raise ValueError(f"workers must be 1 or more, got {self.workers!r}")
        if int(self.retries) < 0:
            raise ValueError(f"retries must be 0 or more, got {self.retries!r}")

    @property
    def reuse(self) -> bool:
        return bool(self.reuse_alignment or self.calibration)


# ---------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------


def estimate_peak_memory(
    shape: Sequence[int], scale_factor: int = 1, in_flight: int = 2, tile_size: int | None = None
) -> int:
    """Bytes the engine needs at its peak for frames of ``shape``; see :meth:`FocusStacker.estimate_memory`.

    Examples
    --------
    >>> estimate_peak_memory((3000, 4000, 3)) / 2**30 > 1
    True
    """
    from .stacker import FocusStacker

    stacker = FocusStacker(scale_factor=scale_factor, workers=max(1, int(in_flight) - 1), tile_size=tile_size)
    return stacker.estimate_memory(shape)


def available_memory() -> int | None:
    """Bytes of host memory available to new work."""
    from ._backend import host_available_memory

    return host_available_memory()


def check_memory(
    shape: Sequence[int],
    scale_factor: int,
    engine_threads: int,
    *,
    tile_size: int | None = None,
    share: int = 1,
    what: str = "this stack",
) -> None:
    """Refuse a stack up front when the engine would not fit in memory.

    Parameters
    ----------
    shape : sequence of int
        Frame shape ``(H, W[, C])``.
    scale_factor : int
        Engine ``scale_factor``.
    engine_threads : int
        Engine threads (frames prepared at once).
    tile_size : int, optional
        Engine ``tile_size``.
    share : int
        Stacks running at once on this machine; each gets ``1/share`` of the
        available memory.
    what : str
        Named in the message.

    Raises
    ------
    StackError
        With the memory needed, the memory available and what to change.
    """
    avail = available_memory()
    if avail is None:
        return
    budget = avail / max(1, share)
    in_flight = engine_threads + 1
    need = estimate_peak_memory(shape, scale_factor, in_flight, tile_size)
    if need <= budget:
        return
    h, w = shape[:2]
    gib = 2.0**30
    per = f" per worker ({share} stacks at once)" if share > 1 else ""
    tips = []
    if scale_factor > 1:
        tips.append(f"--scale-factor 1 (scale_factor=1: about {estimate_peak_memory(shape, 1, in_flight, tile_size) / gib:.1f} GiB)")
    if share > 1:
        tips.append("fewer --workers")
    tiles = [t for t in (4096, 2048, 1024, 512) if t < max(h, w) * scale_factor]
    fits = [t for t in tiles if estimate_peak_memory(shape, scale_factor, in_flight, t) <= budget]
    if fits and (not tile_size or fits[0] < tile_size):
        tips.append(f"smaller tiles: --tile-size {fits[0]} (tile_size={fits[0]})")
    elif not fits:
        tips.append("split the frames into smaller images")
    raise StackError(
        f"{what}: {w}x{h}-pixel frames at scale_factor {scale_factor} need about {need / gib:.1f} GiB "
        f"of memory, but only {budget / gib:.1f} GiB is available{per}. Use " + ", or ".join(tips) + "."
    )


def _engine_threads(requested: int | None) -> int:
    if requested:
        return int(requested)
    return max(1, min(4, os.cpu_count() or 1))


# ---------------------------------------------------------------------------
# small file helpers
# ---------------------------------------------------------------------------


def _file_mode() -> int:
    """Permissions of a newly created file (0o666 less the umask), read without changing the umask."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def _json_safe(x: Any) -> Any:
    """Plain JSON values: NaN/inf -> None, numpy -> Python."""
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, Path):
        return str(x)
    return x


def _key(p: str | os.PathLike) -> str:
    return os.path.normcase(os.path.abspath(os.fspath(p)))


def _file_fingerprint(paths: Iterable[Path]) -> list:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append([Path(p).name, st.st_size, int(st.st_mtime)])
        except OSError:
            out.append([Path(p).name, None, None])
    return out


def _hash(payload: Any) -> str:
    text = json.dumps(_json_safe(payload), sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


# ---------------------------------------------------------------------------
# one stack
# ---------------------------------------------------------------------------


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
    reuse_source: str | None = None  # name of the stack the alignment comes from
    warnings: list[str] = field(default_factory=list)
    engine_workers: int | None = None  # engine threads; None: decide where it runs
    threads_on_host: dict | None = None  # Dask: {host: tasks at once} to share the cores
    progress_topic: str | None = None  # Dask: event topic for per-frame progress

    @property
    def marker(self) -> Path:
        return Path(self.output_dir) / STATE_DIR / f"{self.name}.json"


def _entry(task: StackTask, status: str, **extra) -> dict:
    entry = {
        "stack": task.name,
        "status": status,
        "frames": [Path(f).name for f in task.frames],
        "n_frames": len(task.frames),
        "excluded": [],
        "reference": None,
        "alignment": {"reused_from": task.reuse_source, "quality_min": None, "quality_mean": None, "frames": []},
        "timings": {},
        "outputs": {},
        "warnings": list(task.warnings),
        "error": None,
        "backend": None,
        "worker": None,
    }
    entry.update(extra)
    return entry


_MALLOC_TUNED = False


def _tune_malloc() -> None:
    """Undo the effect of Dask's ``MALLOC_TRIM_THRESHOLD_`` on this worker process.

    distributed starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``. Setting
    it turns off glibc's adaptive mmap threshold, so every array over 128 KiB
    is mmapped and page-faulted afresh, which made stacking 2.5 times slower
    in a worker than in a plain process. Restore the thresholds glibc would
    have adapted to (32 MiB mmap, 64 MiB trim). Linux/glibc only; harmless
    elsewhere.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    if not sys.platform.startswith("linux") or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 << 20)
        libc.mallopt(m_trim_threshold, 64 << 20)
    except (OSError, AttributeError):  # not glibc
        pass


def _dask_context(task: StackTask) -> tuple[Any, str | None, int]:
    """(worker or None, host, tasks at once on this host)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except Exception:  # not on a Dask worker (or distributed not installed)
        return None, None, 1
    host = worker.address.rsplit(":", 1)[0]
    share = int((task.threads_on_host or {}).get(host, worker.state.nthreads))
    return worker, host, max(1, share)


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
        frames, memory, disk full...) and ``ValueError`` give a failed entry;
        other exceptions propagate, so that Dask can retry the task.
    """
    from .io import read_meta, write_image
    from .stacker import Cancelled, FocusStacker

    t0 = time.perf_counter()
    worker, host, share = _dask_context(task)
    if worker is not None:
        _tune_malloc()
    if task.engine_workers:
        threads = int(task.engine_workers)
    elif worker is not None:
        threads = max(1, min(4, (os.cpu_count() or 1) // share))
    else:
        threads = _engine_threads(None)
    entry_extra = {"worker": host or "local"}

    def report(done: int, total: int, stage: str) -> None:
        if progress is not None:
            progress(task.name, done, total, stage)
        if worker is not None and task.progress_topic:
            worker.log_event(task.progress_topic, {"stack": task.name, "done": done, "total": total, "stage": stage})

    written: list[Path] = []
    try:
        if len(task.frames) < 2:
            raise StackError(f"{task.name} has {len(task.frames)} frame; a stack needs at least 2 frames")
        meta = read_meta(task.frames[0])
        check_memory(
            meta.shape, task.engine["scale_factor"], threads, tile_size=task.engine.get("tile_size"),
            share=share, what=task.name,
        )
        _write_marker(task, "started")
        stacker = FocusStacker(**task.engine, workers=threads)
        transforms = None if task.transforms is None else [None if m is None else np.asarray(m) for m in task.transforms]
        result = stacker.stack(list(task.frames), progress=report, cancel=cancel, transforms=transforms)
        entry = _result_entry(task, result)
        entry.update(entry_extra)
        used = sum(m is not None for m in result.transforms)
        if used < 2:
            reasons = "; ".join(f"{e['name']}: {e['reason']}" for e in entry["excluded"]) or "no reason given"
            raise AlignmentError(
                f"{task.name}: no frame could be aligned to the reference frame {entry['reference']} "
                f"({reasons}). The frames do not look like one focus stack: check the grouping, "
                "or try --align translation or --align none."
            )
        t1 = time.perf_counter()
        sizes = {}
        meta = result.meta
        for kind, path in task.outputs.items():
            target = Path(path)
            remove_stale_temps(target)
            if kind == "image":
                exif, icc = getattr(meta, "exif", None), getattr(meta, "icc", None)
                bits = None if target.suffix.lower() == ".jpg" else task.bit_depth
                write_image(target, result.image, quality=task.quality, exif=exif, icc=icc, protect=task.frames, bit_depth=bits)
            else:  # float32 maps
                write_image(target, result.depth if kind == "depth" else result.confidence, protect=task.frames)
            written.append(target)
            sizes[kind] = target.stat().st_size
        entry["timings"]["write_s"] = time.perf_counter() - t1
        entry["timings"]["wall_s"] = time.perf_counter() - t0
        entry["outputs"] = {k: str(v) for k, v in task.outputs.items()}
        _write_marker(task, "done", sizes=sizes, entry=entry, transforms=result.transforms)
        entry["_transforms"] = [None if m is None else np.asarray(m).tolist() for m in result.transforms]
        return entry
    except Cancelled:
        _remove(written)
        return _entry(task, "cancelled", error="cancelled", **entry_extra)
    except (FocusStackError, ValueError) as exc:  # deterministic: retrying cannot help
        _remove(written)
        entry = _entry(task, "failed", error=str(exc), **entry_extra)
        entry["timings"]["wall_s"] = time.perf_counter() - t0
        return entry
    except BaseException:
        _remove(written)
        raise


def _remove(paths: list[Path]) -> None:
    for p in paths:
        try:
            p.unlink()
        except OSError:
            pass


def _result_entry(task: StackTask, result) -> dict:
    rep = result.report
    frames = rep.get("frames", [])
    excluded = [{"name": f["name"], "reason": f.get("reason", "excluded")} for f in frames if f.get("excluded")]
    ref = rep.get("reference")
    qualities = [
        f["quality"]
        for f in frames
        if not f.get("excluded") and f.get("index") != ref and f.get("quality") is not None and math.isfinite(f["quality"])
    ]
    warnings = list(task.warnings) + list(rep.get("warnings", []))
    warnings += [f"frame {e['name']} excluded: {e['reason']}" for e in excluded]
    entry = _entry(
        task,
        "done",
        excluded=excluded,
        reference=frames[ref]["name"] if ref is not None and ref < len(frames) else None,
        warnings=warnings,
        backend=rep.get("backend"),
        timings={k: v for k, v in rep.get("timings", {}).items()},
    )
    entry["alignment"].update(
        quality_min=min(qualities) if qualities else None,
        quality_mean=sum(qualities) / len(qualities) if qualities else None,
        frames=frames,
    )
    return _json_safe(entry)


def _write_marker(task: StackTask, state: str, sizes: dict | None = None, entry: dict | None = None, transforms=None) -> None:
    out = Path(task.output_dir)
    data: dict[str, Any] = {
        "version": _MARKER_VERSION,
        "stack": task.name,
        "state": state,
        "params": task.params_hash,
        "outputs": {k: os.path.relpath(v, out) for k, v in task.outputs.items()},
    }
    if sizes is not None:
        data["sizes"] = sizes
    if entry is not None:
        data["entry"] = entry
    if transforms is not None:
        data["transforms"] = [None if m is None else np.asarray(m).tolist() for m in transforms]
    task.marker.parent.mkdir(exist_ok=True)
    write_text(task.marker, json.dumps(_json_safe(data), indent=1))


def _read_marker(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) and data.get("version") == _MARKER_VERSION else None
    except (OSError, ValueError):
        return None


def _is_complete(task: StackTask, marker: dict | None) -> bool:
    if not marker or marker.get("state") != "done" or marker.get("params") != task.params_hash:
        return False
    sizes = marker.get("sizes", {})
    if set(sizes) != set(task.outputs):
        return False
    for kind, path in task.outputs.items():
        try:
            if os.stat(path).st_size != sizes[kind]:
                return False
        except OSError:
            return False
    return True


# ---------------------------------------------------------------------------
# planning
# ---------------------------------------------------------------------------


@dataclass
class StackJob:
    """A stack of a planned batch and what will happen to it.

    Attributes
    ----------
    task : StackTask
    state : {"run", "skip", "fail"}
        Runs; is complete from an earlier run; cannot run (see `error`).
    error : str or None
    marker : dict or None
        The stack's done-marker from an earlier run.
    alignment_source : bool
        This stack provides the alignment reused by the others.
    """

    task: StackTask
    state: str
    error: str | None = None
    marker: dict | None = None
    alignment_source: bool = False


def _known_outputs(output_dir: Path) -> list[Path]:
    """Files this tool wrote (or started writing) in `output_dir`, from the markers."""
    found = [output_dir / f"{REPORT_NAME}.json", output_dir / f"{REPORT_NAME}.csv"]
    state = output_dir / STATE_DIR
    if state.is_dir():
        for marker in state.glob("*.json"):
            data = _read_marker(marker)
            if data:
                found += [output_dir / rel for rel in data.get("outputs", {}).values()]
    return found


def _output_format(options: BatchOptions, stack: Stack) -> str:
    if options.format:
        return options.format
    if options.bit_depth == 16 and _FORMAT_OF_EXT.get(stack.frames[0].suffix.lower(), "png") == "jpg":
        return "tif"
    return _FORMAT_OF_EXT.get(stack.frames[0].suffix.lower(), "png")


def _params_payload(options: BatchOptions, fmt: str) -> dict:
    engine = options.engine_kwargs()
    engine.pop("device")  # CPU and GPU results are interchangeable
    return {
        "engine": engine,
        "format": fmt,
        "bit_depth": options.bit_depth,
        "quality": options.quality if fmt == "jpg" else None,
        "maps": [options.depth_maps, options.confidence_maps],
    }


def plan_batch(
    inputs: str | os.PathLike | Sequence | Plan,
    output_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    *,
    mode: str = "auto",
    stack_size: int | None = None,
    pattern: str | None = None,
    share: int | None = None,
) -> tuple[Plan, list[StackJob]]:
    """Group the files and decide, per stack, whether it runs, is skipped or cannot run.

    Reads only file headers and done-markers; writes nothing.

    Parameters
    ----------
    inputs : path-like, list of path-like or Plan
        The scan folder, its files, or a plan from :func:`detect_stacks`.
    output_dir : path-like
    options : BatchOptions, optional
    mode, stack_size, pattern
        As for :func:`~napari_focus_stack.grouping.detect_stacks`.
    share : int, optional
        Stacks that will run at once on this machine (for the memory check);
        default: ``options.workers`` without a scheduler, else 1.

    Returns
    -------
    (Plan, list of StackJob)
        One job per stack, in plan order.
    """
    options = options or BatchOptions()
    out = Path(output_dir).expanduser().absolute()
    if isinstance(inputs, Plan):
        plan = inputs
    else:
        plan = detect_stacks(inputs, mode=mode, stack_size=stack_size, pattern=pattern, exclude=_known_outputs(out) + [out])
    input_keys = {_key(f) for f in plan.files}
    input_keys |= {_key(f) for p in plan.problems for f in p.files}
    engine = options.engine_kwargs()
    jobs: list[StackJob] = []
    taken: set[str] = set()
    for stack in plan.stacks:
        name, k = stack.name, 1
        while name in taken:  # two stacks with one name (e.g. folders a/b and a_b)
            k += 1
            name = f"{stack.name}~{k}"
        taken.add(name)
        fmt = _output_format(options, stack)
        outputs = {"image": str(out / f"{name}.{fmt}")}
        if options.depth_maps:
            outputs["depth"] = str(out / f"{name}_depth.tif")
        if options.confidence_maps:
            outputs["confidence"] = str(out / f"{name}_confidence.tif")
        payload = _params_payload(options, fmt)
        payload["frames"] = _file_fingerprint(stack.frames)
        task = StackTask(
            name=name,
            frames=[str(f) for f in stack.frames],
            outputs=outputs,
            output_dir=str(out),
            engine=engine,
            bit_depth=options.bit_depth,
            quality=int(options.quality),
            params_hash=_hash(payload),
            warnings=[p.message for p in plan.problems_for(stack.name)],
        )
        job = StackJob(task, "run", marker=_read_marker(task.marker))
        jobs.append(job)
        clash = [p for p in outputs.values() if _key(p) in input_keys]
        if len(stack) < 2:
            job.state, job.error = "fail", f"{name} has {len(stack)} frame ({stack.frames[0].name}); a stack needs at least 2 frames"
        elif clash:
            job.state, job.error = "fail", (
                f"{name}: the output {clash[0]} is an input file; it is never overwritten. "
                "Choose another output folder or --format."
            )
    if options.reuse:
        _reuse_hashes(jobs, options)
    if share is None:
        share = 1 if options.scheduler else int(options.workers)
    _finish_planning(jobs, options, share)
    return plan, jobs


def _calibration_key(options: BatchOptions) -> tuple[list[Path], str]:
    from .io import expand_inputs

    files = expand_inputs(options.calibration)
    return files, _hash(["calibration", _file_fingerprint(files), options.engine_kwargs()])


def _reuse_hashes(jobs: list[StackJob], options: BatchOptions) -> None:
    """Make each reusing stack's hash depend on where its alignment comes from."""
    if options.calibration:
        _, source_hash = _calibration_key(options)
    else:
        first = next((j for j in jobs if j.state != "fail"), None)
        if first is None:
            return
        first.alignment_source = True
        source_hash = first.task.params_hash
    for job in jobs:
        if not job.alignment_source:
            job.task.params_hash = _hash([job.task.params_hash, "reuse", source_hash])


def _finish_planning(jobs: list[StackJob], options: BatchOptions, share: int) -> None:
    """Skip complete stacks, refuse foreign files and stacks too large for memory."""
    from .io import read_meta

    threads = 1 if share > 1 else _engine_threads(None)
    for job in jobs:
        if job.state != "run":
            continue
        task = job.task
        ours = job.marker is not None
        if not options.overwrite and _is_complete(task, job.marker):
            job.state = "skip"
            continue
        if not options.overwrite and not ours:
            existing = [p for p in task.outputs.values() if os.path.lexists(p)]
            if existing:
                job.state, job.error = "fail", (
                    f"{task.name}: {existing[0]} already exists and was not written by this batch; "
                    "use --overwrite to replace it, or choose another output folder."
                )
                continue
        try:
            meta = read_meta(task.frames[0])
            check_memory(
            meta.shape, task.engine["scale_factor"], threads, tile_size=task.engine.get("tile_size"),
            share=share, what=task.name,
        )
        except StackError as exc:
            job.state, job.error = "fail", str(exc)
        except FocusStackError:
            pass  # the job reports unreadable frames itself


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------


@dataclass
class BatchResult:
    """What a batch did.

    Attributes
    ----------
    plan : Plan
    stacks : list of dict
        One report entry per stack, in plan order.
    report_json, report_csv : Path or None
        The written reports.
    elapsed_s : float
        Wall time of the whole batch.
    startup_s : float
        Of which starting (or connecting to) the Dask cluster.
    """

    plan: Plan
    stacks: list[dict]
    report_json: Path | None
    report_csv: Path | None
    elapsed_s: float
    startup_s: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        out = {"done": 0, "skipped": 0, "failed": 0, "cancelled": 0}
        for e in self.stacks:
            out[e["status"]] = out.get(e["status"], 0) + 1
        return out

    @property
    def ok(self) -> bool:
        """True when no stack failed or was cancelled."""
        c = self.counts
        return c["failed"] == 0 and c["cancelled"] == 0

    @property
    def stacks_per_minute(self) -> float:
        done = self.counts["done"]
        return 60.0 * done / self.elapsed_s if self.elapsed_s > 0 else float("nan")


def _check_output_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {out}: {exc.strerror or exc}.") from exc
    if not out.is_dir():
        raise OutputError(f"the output path {out} exists and is not a folder.")
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
        No stacks found.
    OutputError
        The output folder cannot be created or written.
    ValueError
        Invalid options.
    """
    options = options or BatchOptions()
    options.validate()
    t0 = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = Path(output_dir).expanduser().absolute()
    _check_output_dir(out)
    plan, jobs = plan_batch(inputs, out, options, mode=mode, stack_size=stack_size, pattern=pattern)
    if not plan.stacks:
        why = "; ".join(p.message for p in plan.problems) or "no stacks found"
        raise InputError(f"nothing to stack: {why}")
    first_to_run = None
    transforms = source = None
    if options.calibration:
        transforms = _calibration_transforms(options, out)
        source = Path(options.calibration).name
    first = next((j for j in jobs if j.alignment_source), None)
    if first is not None:
        source = first.task.name
        if first.state == "skip" and (first.marker or {}).get("transforms") is not None:
            transforms = first.marker["transforms"]
        elif first.state in ("skip", "run"):
            first.state, first_to_run = "run", first  # (again, when an old marker lacks the alignment)

    entries: dict[str, dict] = {}
    is_cancelled = cancel_check(cancel)

    def record(entry: dict) -> None:
        entry = {k: v for k, v in entry.items() if k != "_transforms"}
        entries[entry["stack"]] = entry
        if on_stack is not None:
            on_stack(entry)

    for job in jobs:
        if job.state == "skip":
            stored = dict((job.marker or {}).get("entry") or _entry(job.task, "done"))
            stored["status"] = "skipped"
            stored["note"] = "complete from an earlier run (resumed)"
            record(stored)
        elif job.state == "fail":
            record(_entry(job.task, "failed", error=job.error))

    todo = [j for j in jobs if j.state == "run" and j is not first_to_run]
    if options.reuse and first_to_run is None:
        _apply_transforms(todo, transforms, source)
    runner = runner or run_stack
    executor = None
    interrupted = False
    try:
        if options.scheduler or options.workers > 1:
            executor = _DaskExecutor(options, progress, is_cancelled)
        else:
            executor = _InProcess(progress, is_cancelled)
        if first_to_run is not None:
            got = executor.run([first_to_run.task], runner, record)
            ok = bool(got) and got[0].get("status") == "done"
            _apply_transforms(todo, got[0].get("_transforms") if ok else None, first_to_run.task.name)
        if todo and not is_cancelled():
            executor.run([j.task for j in todo], runner, record)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if executor is not None:
            executor.close()
    for job in jobs:  # stopped early: what finished anyway, and what did not run
        if job.task.name not in entries:
            marker = _read_marker(job.task.marker)
            if _is_complete(job.task, marker) and marker.get("entry"):
                record(dict(marker["entry"]))
            else:
                record(_entry(job.task, "cancelled", error="cancelled before it ran"))

    ordered = [entries[j.task.name] for j in jobs]
    elapsed = time.perf_counter() - t0
    result = BatchResult(plan, ordered, None, None, elapsed, getattr(executor, "startup_s", 0.0))
    result.report_json, result.report_csv = _write_reports(out, plan, options, result, started)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _apply_transforms(jobs: list[StackJob], transforms: list | None, source: str | None) -> None:
    for job in jobs:
        task = job.task
        task.reuse_source = source
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


def _calibration_transforms(options: BatchOptions, out: Path) -> list:
    """Transforms of the calibration stack, cached in the output folder."""
    from .stacker import FocusStacker

    files, key = _calibration_key(options)
    cache = out / STATE_DIR / "calibration.json"
    data = _read_marker(cache)
    if data and data.get("params") == key and data.get("transforms") is not None:
        return data["transforms"]
    mats, report = FocusStacker(**options.engine_kwargs()).estimate_transforms(files)
    transforms = [None if m is None else np.asarray(m).tolist() for m in mats]
    if sum(m is not None for m in transforms) < 2:
        raise AlignmentError(
            f"the calibration stack {options.calibration} could not be aligned "
            f"(excluded: {', '.join(report.get('excluded', []))}); choose another calibration stack."
        )
    text = json.dumps({"version": _MARKER_VERSION, "params": key, "source": str(options.calibration), "transforms": transforms})
    write_text(cache, text)
    return transforms


class _InProcess:
    """Runs stacks one after the other in this process."""

    def __init__(self, progress, is_cancelled):
        self.progress, self.is_cancelled = progress, is_cancelled

    def run(self, tasks: list[StackTask], runner, record) -> list[dict]:
        results = []
        for task in tasks:
            if self.is_cancelled():
                break
            try:
                if runner is run_stack:
                    entry = run_stack(task, self.progress, self.is_cancelled)
                else:
                    entry = runner(task)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # a bug or an unexpected error: report it, go on
                entry = _entry(task, "failed", error=f"{type(exc).__name__}: {exc}")
            record(entry)
            results.append(entry)
        return results

    def close(self) -> None:
        pass


def _warm_up() -> None:
    """Import the engine in a Dask worker."""
    from . import io, stacker  # noqa: F401


class _DaskExecutor:
    """Runs stacks as tasks on a local or remote ``dask.distributed`` cluster."""

    def __init__(self, options: BatchOptions, progress, is_cancelled):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InputError(
                "running on several workers needs dask.distributed: pip install 'napari-focus-stack[batch]'"
            ) from exc
        t0 = time.perf_counter()
        self.progress, self.is_cancelled = progress, is_cancelled
        self.retries = int(options.retries)
        self.cluster = None
        self.topic = f"{_PROGRESS_TOPIC}-{uuid.uuid4().hex[:8]}"
        if options.scheduler:
            try:
                self.client = Client(options.scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"cannot reach the Dask scheduler at {options.scheduler}: {exc}") from exc
        else:
            self.cluster = LocalCluster(
                n_workers=int(options.workers),
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",  # any free port: never clash with a running dashboard
                memory_limit=0,  # memory is checked per stack, up front
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
        if progress is not None:
            self.client.subscribe_topic(self.topic, self._on_progress)
        try:
            self.client.run(_warm_up)  # imports in every worker now, not inside the first stacks' timings
        except Exception as exc:
            self.close()
            raise InputError(
                f"the Dask workers cannot load napari-focus-stack ({type(exc).__name__}: {exc}); "
                "install the same version on every worker"
            ) from exc
        self.startup_s = time.perf_counter() - t0

    def _on_progress(self, event) -> None:
        _, msg = event
        try:
            self.progress(msg["stack"], msg["done"], msg["total"], msg["stage"])
        except Exception:  # a progress display must not stop the batch
            pass

    def _threads_on_host(self) -> dict:
        hosts: dict[str, int] = {}
        for addr, info in self.client.scheduler_info().get("workers", {}).items():
            host = addr.rsplit(":", 1)[0]
            hosts[host] = hosts.get(host, 0) + int(info.get("nthreads", 1))
        return hosts

    def run(self, tasks: list[StackTask], runner, record) -> list[dict]:
        from distributed import wait

        hosts = self._threads_on_host()
        futures = {}
        for i, task in enumerate(tasks):
            task.threads_on_host = hosts
            task.progress_topic = self.topic if self.progress is not None else None
            key = f"focus-stack-{_safe_key(task.name)}-{uuid.uuid4().hex[:8]}"
            fut = self.client.submit(runner, task, key=key, pure=False, retries=self.retries)
            futures[fut] = task
        pending = set(futures)
        results = []
        while pending:
            if self.is_cancelled():
                self.client.cancel(list(pending), force=True)
                break
            try:
                done, pending = wait(pending, timeout=0.25, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            for fut in done:
                task = futures[fut]
                entry = self._entry_of(fut, task)
                record(entry)
                results.append(entry)
        return results

    @staticmethod
    def _entry_of(fut, task: StackTask) -> dict:
        if fut.status == "finished":
            try:
                return fut.result()
            except Exception as exc:  # pragma: no cover - finished futures do not raise
                return _entry(task, "failed", error=f"{type(exc).__name__}: {exc}")
        if fut.status == "cancelled":
            return _entry(task, "cancelled", error="cancelled")
        exc = fut.exception()
        text = f"{type(exc).__name__}: {exc}"
        if type(exc).__name__ == "KilledWorker":
            text = f"the stack killed its worker repeatedly (out of memory, or a crash in a decoder): {exc}"
        return _entry(task, "failed", error=text)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def _safe_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]


# ---------------------------------------------------------------------------
# reports
# ---------------------------------------------------------------------------

_CSV_COLUMNS = (
    "stack",
    "status",
    "n_frames",
    "n_excluded",
    "excluded",
    "reference",
    "quality_min",
    "quality_mean",
    "alignment_from",
    "align_s",
    "fuse_s",
    "write_s",
    "total_s",
    "output",
    "warnings",
    "error",
)


def _csv_row(e: dict) -> dict:
    t = e.get("timings") or {}
    a = e.get("alignment") or {}

    def num(x):
        return "" if x is None else f"{x:.4g}"

    return {
        "stack": e["stack"],
        "status": e["status"],
        "n_frames": e.get("n_frames", ""),
        "n_excluded": len(e.get("excluded") or []),
        "excluded": "; ".join(f"{x['name']}: {x['reason']}" for x in e.get("excluded") or []),
        "reference": e.get("reference") or "",
        "quality_min": num(a.get("quality_min")),
        "quality_mean": num(a.get("quality_mean")),
        "alignment_from": a.get("reused_from") or "",
        "align_s": num(t.get("align_s")),
        "fuse_s": num(t.get("fuse_s")),
        "write_s": num(t.get("write_s")),
        "total_s": num(t.get("wall_s", t.get("total_s"))),
        "output": (e.get("outputs") or {}).get("image", ""),
        "warnings": " | ".join(e.get("warnings") or []),
        "error": e.get("error") or "",
    }


def _write_reports(out: Path, plan: Plan, options: BatchOptions, result: BatchResult, started: str) -> tuple[Path, Path]:
    from . import __version__

    counts = result.counts
    report = {
        "tool": f"napari-focus-stack {__version__}",
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": result.elapsed_s,
        "input": str(plan.root) if plan.root is not None else None,
        "output": str(out),
        "grouping": {
            "mode": plan.mode,
            "reason": plan.reason,
            "problems": [
                {"kind": p.kind, "stack": p.stack, "message": p.message, "files": [f.name for f in p.files]}
                for p in plan.problems
            ],
        },
        "options": dataclasses.asdict(options),
        "summary": {
            **counts,
            "stacks": len(result.stacks),
            "stacks_per_minute": result.stacks_per_minute,
            "cluster_start_s": result.startup_s,
        },
        "stacks": result.stacks,
    }
    json_path = out / f"{REPORT_NAME}.json"
    csv_path = out / f"{REPORT_NAME}.csv"
    for path in (json_path, csv_path):
        remove_stale_temps(path)
    write_text(json_path, json.dumps(_json_safe(report), indent=2, ensure_ascii=False))
    buf = _stdio.StringIO()
    writer = csv.DictWriter(buf, fieldnames=_CSV_COLUMNS)
    writer.writeheader()
    for e in result.stacks:
        writer.writerow(_csv_row(e))
    write_text(csv_path, buf.getvalue())
    return json_path, csv_path


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def add_batch_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``batch`` subcommand to an argparse subparsers object.

    Parameters
    ----------
    subparsers
        What ``ArgumentParser.add_subparsers()`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``batch`` parser; its ``func`` default is :func:`run_batch_cli`.
    """
    p = subparsers.add_parser(
        "batch",
        help="stack every stack of a scan (OpenScan and others)",
        description=(
            "Find the stacks in INPUT_DIR (OpenScan names <name>_<pose>-<frame>, numbered files with "
            "--stack-size, one per subfolder, or a --pattern), stack each, and write one image per stack "
            "named after it, with the reference frame's EXIF and ICC profile. A rerun skips complete "
            "stacks; inputs are never overwritten. Writes batch-report.json and .csv in OUTPUT_DIR."
        ),
    )
    p.add_argument("input_dir", metavar="INPUT_DIR", help="folder with the frames (or one subfolder per stack)")
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR", help="output folder (may be INPUT_DIR)")
    g = p.add_argument_group("stack detection")
    g.add_argument("--mode", choices=MODES, default="auto", help="how files are grouped (default: auto)")
    g.add_argument("--stack-size", type=int, metavar="N", help="frames per stack (number mode; checked elsewhere)")
    g.add_argument("--pattern", metavar="REGEX", help="regex with named groups 'stack' and 'frame' (regex mode)")
    g.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    g.add_argument("--strict", action="store_true", help="stop before any work when the plan has problems")
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=FORMATS, help="output format (default: that of the frames)")
    g.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bits per sample (16: png or tif)")
    g.add_argument("--quality", type=int, default=95, help="JPEG quality (default: 95)")
    g.add_argument("--depth-maps", action="store_true", help="also write <stack>_depth.tif (float32)")
    g.add_argument("--confidence-maps", action="store_true", help="also write <stack>_confidence.tif (float32)")
    g.add_argument("--overwrite", action="store_true", help="recompute all stacks and replace existing outputs")
    g = p.add_argument_group("speed")
    g.add_argument(
        "--reuse-alignment",
        action="store_true",
        help="estimate the alignment once (first stack) and apply it to every stack",
    )
    g.add_argument("--calibration", metavar="PATH", help="stack to estimate the reused alignment from (implies --reuse-alignment)")
    g.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default: 1, in-process)")
    g.add_argument("--scheduler", metavar="ADDRESS", help="existing Dask scheduler, e.g. tcp://host:8786")
    g.add_argument("--retries", type=int, default=2, help="retries of a task that raised an unexpected error (default: 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors and the summary only")
    from .cli import add_engine_options

    add_engine_options(p)
    p.set_defaults(func=run_batch_cli)
    return p


def options_from_args(args: argparse.Namespace) -> BatchOptions:
    """:class:`BatchOptions` from parsed ``batch`` arguments."""
    from .cli import engine_kwargs_from_args

    return BatchOptions(
        **engine_kwargs_from_args(args),
        format=args.format,
        bit_depth=args.bit_depth,
        quality=args.quality,
        depth_maps=args.depth_maps,
        confidence_maps=args.confidence_maps,
        reuse_alignment=args.reuse_alignment,
        calibration=args.calibration,
        overwrite=args.overwrite,
        workers=args.workers,
        scheduler=args.scheduler,
        retries=args.retries,
    )


def run_batch_cli(args: argparse.Namespace) -> int:
    """Run the ``batch`` subcommand; return the exit code.

    0: every stack done or already complete; 1: some stacks failed (see the
    report); 2: nothing could run (bad options, no stacks, output folder not
    writable, ``--strict`` with problems); 130: interrupted.
    """
    options = options_from_args(args)
    options.validate()
    out = Path(args.output)
    err = sys.stderr
    if args.dry_run:
        plan, jobs = plan_batch(args.input_dir, out, options, mode=args.mode, stack_size=args.stack_size, pattern=args.pattern)
        print(plan.summary(limit=None))
        print("\nplan:")
        for job in jobs:
            outs = ", ".join(Path(p).name for p in job.task.outputs.values())
            what = {"run": "will run", "skip": "complete, skipped", "fail": "cannot run"}[job.state]
            line = f"  {job.task.name}: {what} -> {outs}"
            if job.error:
                line += f"\n      {job.error}"
            print(line)
        return 0
    out_abs = out.expanduser().absolute()
    plan = detect_stacks(
        args.input_dir, mode=args.mode, stack_size=args.stack_size, pattern=args.pattern,
        exclude=_known_outputs(out_abs) + [out_abs],
    )
    if not args.quiet or plan.problems:
        print(plan.summary(limit=None if args.quiet or len(plan.stacks) <= 60 else 40), file=err)
    if not plan.stacks:
        return 2
    if args.strict and any(p.kind != "ignored" for p in plan.problems):
        print("napari-focus-stack: --strict: the plan has problems (listed above); nothing was done", file=err)
        return 2
    total = len(plan.stacks)
    count = [0]

    def on_stack(e: dict) -> None:
        count[0] += 1
        status = e["status"]
        if args.quiet and status in ("done", "skipped"):
            return
        t = (e.get("timings") or {}).get("wall_s")
        bits = [f"[{count[0]}/{total}] {e['stack']}: {status}"]
        if status == "done":
            bits.append(f"in {t:.1f} s" if t is not None else "")
            bits.append(f"-> {Path(e['outputs'].get('image', '')).name}")
            if e.get("excluded"):
                bits.append(f"({len(e['excluded'])} frame(s) excluded)")
        elif e.get("error"):
            bits.append(f"- {e['error']}")
        print(" ".join(b for b in bits if b), file=err, flush=True)

    result = run_batch(plan, out, options, on_stack=on_stack)
    c = result.counts
    print(
        f"{c['done']} done, {c['skipped']} skipped (complete), {c['failed']} failed, {c['cancelled']} cancelled "
        f"in {result.elapsed_s:.1f} s ({result.stacks_per_minute:.1f} stacks/min); report: {result.report_json}",
        file=err,
    )
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``napari-focus-stack batch`` on its own: ``python -m napari_focus_stack.batch INPUT_DIR -o OUT``."""
    from .cli import main as cli_main

    return cli_main(["batch", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
