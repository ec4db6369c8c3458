"""Planning a batch: which stacks run, which are complete, which cannot run.

Reads only file headers and resume markers; writes nothing.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._runtime import default_threads
from ..errors import FocusStackError, OutputError, StackError
from ..grouping import Plan, Stack, detect_stacks
from ..io import expand_inputs, read_meta
from ..io.atomic import refuse_write_protected
from ..jobs import fit_tiles
from ..options import EngineOptions
from .calibration import calibration_indices
from .markers import STATE_DIR, file_fingerprint, is_complete, params_hash, read_marker
from .options import FORMATS, BatchOptions
from .report import REPORT_NAME
from .task import StackTask

__all__ = [
    "SourcePicker",
    "StackJob",
    "evenly_spaced_sources",
    "known_outputs",
    "output_stem",
    "plan_batch",
    "reuse_hash",
    "stack_names",
    "stack_outputs",
]

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
        This stack is one of those the reused alignment is estimated on.
    group : str
        Stacks that share one focus sequence and so one reused alignment:
        the scan (``scan01``) for OpenScan3 stacks, ``""`` for the others.
    """

    task: StackTask
    state: str
    error: str | None = None
    marker: dict | None = None
    alignment_source: bool = False
    group: str = ""


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
            found += stack_outputs(output_dir, data["stack"], data.get("outputs", {}).values())
    return found


def stack_outputs(output_dir: Path, name: str, outputs: Collection[str | os.PathLike]) -> list[Path]:
    """A stack's recorded `outputs` (relative to `output_dir` or absolute) and every name its outputs can have."""
    return [output_dir / rel for rel in outputs] + [output_dir / f"{name}{suffix}" for suffix in OUTPUT_SUFFIXES]


def stack_names(plan: Plan) -> list[str]:
    """The name of each stack of `plan` in its outputs and reports: two stacks of one name get ``~2``, ``~3``...

    Examples
    --------
    >>> plan = Plan([Stack("a", (Path("a/1.jpg"),)), Stack("a", (Path("b/1.jpg"),))], "folder", "")
    >>> stack_names(plan)
    ['a', 'a~2']
    """
    taken: set[str] = set()
    names = []
    for stack in plan.stacks:
        name, k = stack.name, 1
        while name in taken:  # two stacks with one name (e.g. folders a/b and a_b)
            k += 1
            name = f"{stack.name}~{k}"
        taken.add(name)
        names.append(name)
    return names


def output_stem(stack: Stack, name: str, out: Path, naming: str) -> Path:
    """Where a stack's outputs go, without extension.

    OpenScan3 stacks under ``naming="openscan"`` go where the firmware puts
    its stacked photos: ``scanNN/stacked/stacked_scanNN_PPP`` with `out` taken
    as the project folder, or ``stacked/stacked_scanNN_PPP`` when `out` is
    that scan's own folder (named ``scanNN``). Everything else: ``<name>``.

    Examples
    --------
    >>> s = Stack("scan01_007", (Path("scan01_007_fs00.jpg"),), scan=1, position=7)
    >>> output_stem(s, s.name, Path("project"), "openscan").as_posix()
    'project/scan01/stacked/stacked_scan01_007'
    >>> output_stem(s, s.name, Path("project/scan01"), "openscan").as_posix()
    'project/scan01/stacked/stacked_scan01_007'
    >>> output_stem(s, s.name, Path("out"), "plain").as_posix()
    'out/scan01_007'
    """
    if naming != "openscan" or stack.scan is None or stack.position is None:
        return out / name
    scan = f"scan{stack.scan:02d}"
    m = re.fullmatch(r"scan(\d+)", out.name, re.IGNORECASE)
    folder = out if m and int(m.group(1)) == stack.scan else out / scan
    return folder / "stacked" / f"stacked_{scan}_{stack.position:03d}"


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


#: Picks the stacks a reused alignment is estimated on, among the jobs of a
#: plan (``job.alignment_source = True``), and gives every stack that reuses
#: it a hash that depends on them (:func:`reuse_hash`).
SourcePicker = Callable[[list[StackJob], BatchOptions], None]


def plan_batch(
    inputs: str | os.PathLike | Sequence | Plan,
    output_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    *,
    mode: str = "auto",
    stack_size: int | None = None,
    pattern: str | None = None,
    share: int | None = None,
    select: Collection[Stack] | None = None,
    pick_sources: SourcePicker | None = None,
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
        default: ``options.workers`` (at most the CPU count) without a scheduler, else 1.
    select : collection of Stack, optional
        Plan only these stacks of the plan (``batch --watch``: those complete
        so far); names, and outputs that clash with inputs or with each
        other, are still decided over the whole plan. Default: every stack.
    pick_sources : callable(jobs, options), optional
        With a reused alignment, picks the stacks it is estimated on
        (default: :func:`evenly_spaced_sources`).

    Returns
    -------
    (Plan, list of StackJob)
        One job per stack (per selected stack), in plan order.
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
    chosen: list[StackJob] = []
    for stack, name in zip(plan.stacks, stack_names(plan), strict=True):
        fmt = _output_format(options, stack)
        stem = output_stem(stack, name, out, options.naming)
        outputs = {"image": str(stem.with_name(f"{stem.name}.{fmt}"))}
        if options.depth_maps:
            outputs["depth"] = str(stem.with_name(f"{stem.name}_depth.tif"))
        if options.confidence_maps:
            outputs["confidence"] = str(stem.with_name(f"{stem.name}_confidence.tif"))
        payload = _params_payload(options, fmt)
        payload["frames"] = file_fingerprint(stack.frames) if select is None or stack in select else None
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
            max_memory=options.max_memory,
        )
        group = "" if stack.scan is None else f"scan{stack.scan:02d}"
        job = StackJob(task, "run", group=group)
        jobs.append(job)
        if select is None or stack in select:
            chosen.append(job)
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
    jobs = chosen
    for job in jobs:
        job.marker = read_marker(job.task.marker)
    if options.reuse:
        _reuse_hashes(jobs, options, pick_sources or evenly_spaced_sources)
    if share is None:  # more workers than cores never run at once (run_batch caps them)
        share = 1 if options.scheduler else min(int(options.workers), os.cpu_count() or 1)
    _finish_planning(jobs, options, share)
    return plan, jobs


def calibration_key(options: BatchOptions) -> tuple[list[Path], str]:
    """The calibration stack's files and a hash of them and the engine options."""
    files = expand_inputs(options.calibration)
    return files, params_hash(["calibration", file_fingerprint(files), options.engine_kwargs()])


def _reuse_hashes(jobs: list[StackJob], options: BatchOptions, pick: SourcePicker) -> None:
    """Pick the calibration stacks; make each reusing stack's hash depend on where its alignment comes from."""
    if options.calibration:
        _, key = calibration_key(options)
        for job in jobs:
            reuse_hash(job, key, options)
    else:
        pick(jobs, options)


def reuse_hash(job: StackJob, source_key: str, options: BatchOptions) -> None:
    """Make `job`'s hash depend on where its reused alignment comes from (`source_key`) and the fit check."""
    job.task.params_hash = params_hash([job.task.params_hash, "reuse", source_key, options.reuse_tolerance])


def evenly_spaced_sources(jobs: list[StackJob], options: BatchOptions) -> None:
    """The batch's :data:`SourcePicker`: ``calibration_positions`` stacks evenly spaced over each group.

    Among the stacks of the group's most common number of frames (its focus
    sequence), first and last included.
    """
    source_hash: dict[str, str] = {}
    groups: dict[str, list[StackJob]] = {}
    for j in jobs:
        if j.state != "fail":
            groups.setdefault(j.group, []).append(j)
    for group, members in groups.items():
        # the focus sequence is that of most stacks of the group; calibrate on those only
        sizes = Counter(len(j.task.frames) for j in members)
        common = max(sizes, key=lambda k: (sizes[k], k))
        alike = [j for j in members if len(j.task.frames) == common]
        for i in calibration_indices(len(alike), options.calibration_positions):
            alike[i].alignment_source = True
        source_hash[group] = params_hash([j.task.params_hash for j in alike if j.alignment_source])
    for job in jobs:
        if not job.alignment_source and job.group in source_hash:
            reuse_hash(job, source_hash[job.group], options)


def _finish_planning(jobs: list[StackJob], options: BatchOptions, share: int) -> None:
    """Skip complete stacks, refuse foreign files and stacks too large for memory."""
    threads = 1 if share > 1 else default_threads()
    for job in jobs:
        if job.state != "run":
            continue
        task = job.task
        ours = job.marker is not None
        if not options.overwrite and is_complete(task, job.marker):
            job.state = "skip"
            continue
        try:
            for path in task.outputs.values():
                refuse_write_protected(path)
        except OutputError as exc:
            job.state, job.error = "fail", f"{task.name}: {exc}"
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
            fitted, note = fit_tiles(
                read_meta(task.frames[0]).shape, EngineOptions.from_mapping(task.engine), threads, share=share,
                max_memory=options.max_memory, what=task.name,
            )
            if note:
                task.engine = fitted.kwargs()
                task.warnings.append(note)
        except StackError as exc:
            job.state, job.error = "fail", str(exc)
        except FocusStackError:
            pass  # the job reports unreadable frames itself
