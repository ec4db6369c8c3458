"""Planning a batch: which stacks run, which are complete, which cannot run.

Reads only file headers and resume markers; writes nothing.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._runtime import default_threads
from ..errors import FocusStackError, StackError
from ..grouping import Plan, Stack, detect_stacks
from .markers import STATE_DIR, file_fingerprint, is_complete, params_hash, read_marker
from .memory import check_memory
from .options import FORMATS, BatchOptions
from .report import REPORT_NAME
from .task import StackTask

__all__ = ["StackJob", "known_outputs", "plan_batch"]

_FORMAT_OF_EXT = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".tif": "tif", ".tiff": "tif"}


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


#: The names a stack's outputs can have: ``<stack><suffix>``.
OUTPUT_SUFFIXES = tuple(f".{fmt}" for fmt in FORMATS) + ("_depth.tif", "_confidence.tif")


def known_outputs(output_dir: Path) -> list[Path]:
    """Files this tool wrote, or may have written, in `output_dir`: never taken for frames.

    The reports, and for every stack with a marker (finished or not) the
    outputs it recorded and every name its outputs can have in any run
    (another format, the depth and confidence maps of an earlier run with
    ``--depth-maps``).
    """
    found = [output_dir / f"{REPORT_NAME}.json", output_dir / f"{REPORT_NAME}.csv"]
    state = output_dir / STATE_DIR
    if state.is_dir():
        for marker in state.glob("*.json"):
            data = read_marker(marker)
            if not data or not isinstance(data.get("stack"), str):
                continue  # another kind of state file (calibration.json)
            found += [output_dir / rel for rel in data.get("outputs", {}).values()]
            found += [output_dir / f"{data['stack']}{suffix}" for suffix in OUTPUT_SUFFIXES]
    return found


def _real_key(path: str | os.PathLike) -> str:
    """A file's identity through symbolic links and other spellings."""
    return os.path.normcase(os.path.realpath(path))


def _output_format(options: BatchOptions, stack: Stack) -> str:
    if options.format:
        return options.format
    of_frames = _FORMAT_OF_EXT.get(stack.frames[0].suffix.lower(), "png")
    if options.bit_depth == 16 and of_frames == "jpg":
        return "tif"
    return of_frames


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
        plan = detect_stacks(
            inputs, mode=mode, stack_size=stack_size, pattern=pattern, exclude=known_outputs(out) + [out]
        )
    input_keys = {_real_key(f) for f in plan.files}
    input_keys |= {_real_key(f) for p in plan.problems for f in p.files}
    claimed: dict[str, str] = {}  # output -> the stack that writes it
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
        payload["frames"] = file_fingerprint(stack.frames)
        task = StackTask(
            name=name,
            frames=[str(f) for f in stack.frames],
            outputs=outputs,
            output_dir=str(out),
            engine=engine,
            bit_depth=options.bit_depth,
            quality=int(options.quality),
            params_hash=params_hash(payload),
            warnings=[p.message for p in plan.problems_for(stack.name)],
            max_pixels=options.max_pixels,
        )
        job = StackJob(task, "run", marker=read_marker(task.marker))
        jobs.append(job)
        clash = [p for p in outputs.values() if _real_key(p) in input_keys]
        taken_by = next(((p, claimed[_real_key(p)]) for p in outputs.values() if _real_key(p) in claimed), None)
        if len(stack) < 2 and plan.mode != "file":  # in file mode a stack is one file of planes
            job.state, job.error = "fail", (
                f"{name} has {len(stack)} frame ({stack.frames[0].name}); a stack needs at least 2 frames"
            )
        elif clash:
            job.state, job.error = "fail", (
                f"{name}: the output {clash[0]} is an input file; it is never overwritten. "
                "Choose another output folder or --format."
            )
        elif taken_by is not None:
            job.state, job.error = "fail", (
                f"{name}: the output {taken_by[0]} is also an output of the stack {taken_by[1]}; "
                "rename one of the stacks or choose another --format."
            )
        if job.state != "fail":
            claimed.update({_real_key(p): name for p in outputs.values()})
    if options.reuse:
        _reuse_hashes(jobs, options)
    if share is None:
        share = 1 if options.scheduler else int(options.workers)
    _finish_planning(jobs, options, share)
    return plan, jobs


def calibration_key(options: BatchOptions) -> tuple[list[Path], str]:
    """The calibration stack's files and a hash of them and the engine options."""
    from ..io import expand_inputs

    files = expand_inputs(options.calibration)
    return files, params_hash(["calibration", file_fingerprint(files), options.engine_kwargs()])


def _reuse_hashes(jobs: list[StackJob], options: BatchOptions) -> None:
    """Make each reusing stack's hash depend on where its alignment comes from."""
    if options.calibration:
        _, source_hash = calibration_key(options)
    else:
        first = next((j for j in jobs if j.state != "fail"), None)
        if first is None:
            return
        first.alignment_source = True
        source_hash = first.task.params_hash
    for job in jobs:
        if not job.alignment_source:
            job.task.params_hash = params_hash([job.task.params_hash, "reuse", source_hash])


def _finish_planning(jobs: list[StackJob], options: BatchOptions, share: int) -> None:
    """Skip complete stacks, refuse foreign files and stacks too large for memory."""
    from ..io import read_meta

    threads = 1 if share > 1 else default_threads()
    for job in jobs:
        if job.state != "run":
            continue
        task = job.task
        ours = job.marker is not None
        if not options.overwrite and is_complete(task, job.marker):
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
