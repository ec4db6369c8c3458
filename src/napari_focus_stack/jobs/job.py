"""One focus-stacking job, planned, run and written the same way for every front end.

A :class:`Job` says what to do: these inputs, these engine options, these
outputs, these limits. :func:`plan_job` decides everything that can be
decided before the first frame is read, once for the command line, each
stack of a batch and the napari widgets:

- the kind of data: photos (a folder, files, a multi-page TIFF, a z-stack
  array: :meth:`FocusStacker.stack`) or microscope data (ImageJ and
  OME-TIFF hyperstacks, OME-Zarr, any z-stack file given a z step, a
  :class:`~napari_focus_stack.io.Hyperstack`: every z-stack fused along Z
  with its calibration);
- the outputs: all checked up front (folder, extension, not an input, not
  another output; calibrated TIFFs for microscope data; a ``"mesh"`` output,
  the height map as a PLY, STL or OBJ surface, one file per time point);
- memory: the tile size that fits the job in its share of the free memory
  and within ``max_memory`` (:func:`.memory.fit_memory`), for both kinds;
- a retouch mask (photos): its size and labels against the stack
  (:func:`napari_focus_stack.retouch.check_mask`).

:func:`run_job` runs the plan and writes the outputs all or none (staged
beside their targets, renamed together), or returns the results in memory
when there are no outputs (the widgets).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._runtime import fit_malloc_to_frames
from ..depth import to_height
from ..errors import AlignmentError, OutputError, ParameterError, StackError
from ..executors import DaskExecutor, check_scheduler_address
from ..io import Calibration, FrameSource, Hyperstack, expand_inputs, is_hyperstack_file, plane_count, read_hyperstack
from ..io.calibrated import CalibratedTiffWriter, collapsed_z
from ..io.mask import read_retouch_mask
from ..io.mesh import series_paths, write_mesh
from ..io.outputs import Output, check_outputs, staged_outputs, write_outputs
from ..nd import NDResult, iter_stacks, stack_nd, to_layout
from ..options import EngineOptions
from ..result import StackReport, StackResult
from ..retouch import check_mask
from ..stacker import FocusStacker, open_executor
from ..surface import MESH_MAX_VERTICES, calibrated_mesh
from .memory import fit_memory

__all__ = ["Job", "JobPlan", "JobResult", "classify_inputs", "fit_tiles", "plan_job", "run_job"]


@dataclass
class Job:
    """One job: inputs, engine options, outputs and limits.

    Attributes
    ----------
    inputs
        File paths (a list, a folder, a glob), a :class:`FrameSource`, a
        (Z, Y, X[, C]) array or list of frames, or a :class:`Hyperstack`.
    options : EngineOptions
    workers : int, optional
        Engine threads (default: the machine's share, see ``default_threads``).
    outputs : sequence of Output
        Files to write; none: the results stay in memory.
    quality : int
        JPEG quality of the image output.
    bit_depth : {8, 16}, optional
        Bit depth of a PNG or TIFF image output (default: the input's).
    z_step : float, optional
        Microscope data: the distance between z planes (sets or overrides
        the file's); for a plain multi-page TIFF it makes it microscope data.
    channel : int or str, optional
        Microscope data: the deciding channel.
    reuse_alignment : bool
        Microscope data: estimate the alignment on the first z-stack and
        reuse it for the others.
    transforms : list, optional
        Photos: a reused alignment (reference->frame matrices).
    scheduler : str or distributed.Client, optional
        Microscope data: run the time points on this Dask cluster.
    max_memory : float, optional
        GiB the job may use at most, besides its share of the free memory.
    share : int
        Jobs running at once on this machine (each gets its share of the memory).
    depth : bool, optional
        Compute the regularised depth map; default: only when an output needs it.
    create_folders : bool
        Create missing output folders (a batch's ``scanNN/stacked/``) instead of refusing.
    name : str
        How messages name the job (default: the first output's or input's name).
    protect : sequence of path-like
        More files never to overwrite (inputs are always protected).
    retouch : path-like or array, optional
        Photos: a retouch mask the size of the fused image (a 2-D integer
        TIFF or PNG, or an array): 0 automatic, k frame k from 1 (see
        :mod:`napari_focus_stack.retouch`); checked by the plan.
    mesh_z_scale : float
        A ``"mesh"`` output: vertical exaggeration (1: true scale).
    mesh_max_vertices : int
        A ``"mesh"`` output: vertices per mesh at most (block means beyond).
    """

    inputs: Any
    options: EngineOptions = field(default_factory=EngineOptions)
    workers: int | None = None
    outputs: Sequence[Output] = ()
    quality: int = 95
    bit_depth: int | None = None
    z_step: float | None = None
    channel: int | str | None = None
    reuse_alignment: bool = True
    transforms: list | None = None
    scheduler: Any = None
    max_memory: float | None = None
    share: int = 1
    depth: bool | None = None
    create_folders: bool = False
    name: str = ""
    protect: Sequence = ()
    retouch: Any = None
    mesh_z_scale: float = 1.0
    mesh_max_vertices: int = MESH_MAX_VERTICES


@dataclass
class JobPlan:
    """What :func:`plan_job` decided; :func:`run_job` carries it out.

    Attributes
    ----------
    job : Job
    kind : {"photos", "hyperstack"}
    stacker : FocusStacker
        With the tile size that fits memory.
    files : list of Path
        The input files (protected from being overwritten).
    source : FrameSource, optional
        Photos: the frames.
    hyperstack : Hyperstack, optional
        Microscope data (opened here when read from a file; :func:`run_job` closes it).
    notes : list of str
        What the plan changed that the user should know ("memory is short: ...").
    retouch : ndarray, optional
        The retouch mask, read and checked.
    outputs : list of Output
        What the run writes: the job's outputs, a mesh of a time series as
        one file per z-stack (``out_t0.ply``...).
    """

    job: Job
    kind: str
    stacker: FocusStacker
    files: list[Path]
    source: FrameSource | None = None
    hyperstack: Hyperstack | None = None
    notes: list[str] = field(default_factory=list)
    opened: bool = False  # the hyperstack was opened by the plan
    retouch: Any = None
    outputs: list[Output] = field(default_factory=list)

    @property
    def wants_depth(self) -> bool:
        job = self.job
        return job.depth if job.depth is not None else any(o.kind in ("depth", "mesh") for o in job.outputs)


@dataclass
class JobResult:
    """What a job produced.

    Attributes
    ----------
    plan : JobPlan
    result : StackResult or NDResult or None
        In memory: a StackResult for photos; an NDResult for microscope
        data without outputs (with outputs, z-stacks are written as they
        come and not kept).
    reports : list of StackReport
        One per z-stack.
    outputs : dict
        Output kind -> path written.
    sizes : dict
        Output kind -> bytes written.
    axes, unit : str
        Microscope data: the fused image's axes and the height unit.
    write_s : float or None
        Seconds spent writing (None when the outputs were written as the
        z-stacks came).
    """

    plan: JobPlan
    result: StackResult | NDResult | None
    reports: list[StackReport]
    outputs: dict[str, Path] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    axes: str = ""
    unit: str = "frame"
    write_s: float | None = 0.0

    @property
    def seconds(self) -> float:
        """Engine time over all z-stacks."""
        return sum(r.timings.total_s for r in self.reports)


# ----------------------------------------------------------------- planning
def classify_inputs(items: Any, z_step: float | None = None) -> tuple[str, list[Path]]:
    """Whether file inputs are photos or microscope data: ``(kind, files)``.

    Folders and globs are expanded (no image is read). One input that is
    microscope data (ImageJ or OME-TIFF hyperstack, OME-Zarr folder), or
    one multi-page TIFF given a ``z_step``, is ``"hyperstack"``; anything
    else ``"photos"``.

    Raises
    ------
    ParameterError
        ``z_step`` was given for inputs that are not one z-stack file.
    """
    listed = [items] if isinstance(items, (str, Path)) else list(items)
    if len(listed) == 1:
        path = Path(listed[0]).expanduser()
        if path.is_dir() and is_hyperstack_file(path):  # an OME-Zarr folder: data, not a folder of frames
            return "hyperstack", [path]
    files = expand_inputs(listed)
    one = len(files) == 1
    if one and is_hyperstack_file(files[0]):
        return "hyperstack", files
    if z_step is not None:
        if one and plane_count(files[0]) > 1:
            return "hyperstack", files
        raise ParameterError(
            "--z-step needs one z-stack file (ImageJ or OME-TIFF, a multi-page TIFF, or an OME-Zarr folder)"
        )
    return "photos", files


def fit_tiles(
    shape: Sequence[int], options: EngineOptions, workers: int, *, share: int = 1,
    max_memory: float | None = None, what: str = "this stack",
) -> tuple[EngineOptions, str | None]:
    """The options with the tile size that fits frames of ``shape`` in memory, and a note when it changed.

    Raises
    ------
    StackError
        Nothing fits; the message says how much is needed and what to change.
    """
    tile = fit_memory(
        shape, options.scale_factor, workers, tile_size=options.tile_size, share=share, max_memory=max_memory,
        what=what,
    )
    if tile == options.tile_size:
        return options, None
    changed = EngineOptions.from_mapping({**options.kwargs(), "tile_size": tile})
    return changed, f"memory is short: fused in tiles of {tile} px"


def plan_job(job: Job) -> JobPlan:
    """Decide what a job does before the first frame is read; see the module's description.

    Raises
    ------
    FocusStackError
        Bad inputs, options or outputs, or a job too large for the memory
        even in tiles: nothing has been read or written.
    """
    if job.max_memory is not None and not job.max_memory > 0:
        raise ParameterError(f"--max-memory must be a number of GiB above 0, got {job.max_memory}")
    if not 1 <= job.quality <= 100:
        raise ParameterError(f"--quality must be between 1 and 100, got {job.quality}")
    if not (job.mesh_z_scale > 0 and job.mesh_max_vertices >= 4):
        raise ParameterError(
            f"a mesh needs a vertical exaggeration above 0 and at least 4 vertices, got {job.mesh_z_scale} "
            f"and {job.mesh_max_vertices}"
        )
    stacker = FocusStacker(**job.options.kwargs(), workers=job.workers)
    inputs = job.inputs
    hyper, source, files = None, None, []
    opened = False
    if isinstance(inputs, Hyperstack):
        kind, hyper = "hyperstack", inputs
    elif isinstance(inputs, FrameSource) or _is_array_input(inputs):
        kind = "photos"
    else:
        kind, files = classify_inputs(inputs, job.z_step)
    if kind == "photos" and job.scheduler:
        raise ParameterError(
            "--scheduler runs the time points of one microscope file on a Dask cluster; "
            "for many stacks use: napari-focus-stack batch FOLDER --scheduler ADDRESS"
        )
    if isinstance(job.scheduler, str):
        check_scheduler_address(job.scheduler)
    outputs = list(job.outputs)
    if kind == "hyperstack":
        for out in outputs:
            if out.kind != "mesh" and out.path.suffix.lower() not in (".tif", ".tiff"):
                raise OutputError(
                    f"cannot write {out.named}: calibrated microscope results are TIFFs (ImageJ, or OME-TIFF "
                    "for .ome.tif); give a .tif name"
                )
    if job.retouch is not None and kind != "photos":
        raise ParameterError(
            "--retouch takes regions from the frames of one stack of photos; microscope data (every time point "
            "fused along Z) cannot be retouched"
        )
    mask_file = [Path(job.retouch).expanduser()] if isinstance(job.retouch, (str, Path)) else []
    if job.create_folders:
        _create_folders(outputs)
    check_outputs(outputs, inputs=files + mask_file)
    if kind == "hyperstack":
        if hyper is None:
            hyper, opened = read_hyperstack(files[0]), True
        shape, frames, stacks = hyper.frame_shape, hyper.size("Z"), len(hyper.loop_indices())
        hyper.calibration.with_z_step(job.z_step)  # refuses a bad z step before any work
    else:
        source = inputs if isinstance(inputs, FrameSource) else FrameSource.from_inputs(files or inputs)
        shape, frames, stacks = source.shape, len(source), 1
    # a decoded frame and the fusion's half-resolution colour maps stay on the heap (up to 16-bit frames)
    itemsize = min(2, np.dtype(source.dtype if source is not None else hyper.dtype).itemsize)
    fit_malloc_to_frames(int(np.prod(shape, dtype=np.int64)) * itemsize)
    what = job.name or (outputs[0].path.name if outputs else (files[0].name if files else "this stack"))
    try:
        options, note = fit_tiles(
            shape, stacker.options, stacker.workers, share=job.share, max_memory=job.max_memory, what=what
        )
    except BaseException:
        if opened:
            hyper.close()
        raise
    plan = JobPlan(job, kind, stacker, files + mask_file, source, hyper, opened=opened,
                   outputs=_mesh_series(outputs, stacks))
    if len(plan.outputs) > len(outputs):
        check_outputs(plan.outputs, inputs=files)  # the numbered mesh files too
    if job.retouch is not None:
        plan.retouch = _retouch_mask(job.retouch, shape, frames, stacker.options)
    if note:
        plan.stacker = stacker.with_options(tile_size=options.tile_size)
        plan.notes.append(note)
    return plan


def _retouch_mask(mask: Any, shape: Sequence[int], frames: int, options: EngineOptions) -> Any:
    """The retouch mask, read when it is a file, checked against the fused image's size and the frames."""
    name = "the retouch mask"
    if isinstance(mask, (str, Path)):
        path = Path(mask).expanduser()
        name = f"--retouch {path}"
        mask = read_retouch_mask(path)
    s = options.scale_factor if options.upscale_output else 1
    return check_mask(mask, (int(shape[0]) * s, int(shape[1]) * s), frames, name=name)
def _mesh_series(outputs: list[Output], stacks: int) -> list[Output]:
    """The outputs with a mesh of several z-stacks (time points) as one numbered file each."""
    out: list[Output] = []
    for o in outputs:
        if o.kind == "mesh" and stacks > 1:
            out += [Output("mesh", p, o.label, index=k) for k, p in enumerate(series_paths(o.path, stacks))]
        else:
            out.append(o)
    return out


def _is_array_input(inputs: Any) -> bool:
    if isinstance(inputs, (list, tuple)):
        return bool(inputs) and all(hasattr(x, "shape") for x in inputs if x is not None)
    return hasattr(inputs, "shape") and hasattr(inputs, "dtype")


def _create_folders(outputs: Sequence[Output]) -> None:
    for out in outputs:
        try:
            out.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the folder {out.path.parent}: {exc.strerror or exc}. "
                "Choose an output folder you can write to."
            ) from exc


# ------------------------------------------------------------------ running
def run_job(
    plan: JobPlan,
    progress: Callable[[int, int, str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
) -> JobResult:
    """Run a planned job and write its outputs, all or none.

    Raises
    ------
    AlignmentError
        Photos: no frame aligned to the reference frame (the frames do not
        look like one focus stack); nothing is written.
    FocusStackError
        Bad frames, cancelled (:class:`~napari_focus_stack.errors.Cancelled`),
        an output that could not be written: no output was changed.
    """
    if plan.kind == "photos":
        return _run_photos(plan, progress, cancel)
    try:
        return _run_hyperstack(plan, progress, cancel)
    finally:
        if plan.opened:
            plan.hyperstack.close()


def _run_photos(plan: JobPlan, progress, cancel) -> JobResult:
    job = plan.job
    result = plan.stacker.stack(
        plan.source, progress=progress, cancel=cancel, transforms=job.transforms, depth=plan.wants_depth,
        retouch=plan.retouch,
    )
    report = result.report
    if sum(m is not None for m in result.transforms) < 2:
        reasons = "; ".join(f"{f.name}: {f.reason}" for f in report.excluded_frames) or "no reason given"
        raise AlignmentError(
            f"{job.name or report.reference_name}: no frame could be aligned to the reference frame "
            f"{report.reference_name} ({reasons}). The frames do not look like one focus stack: check the "
            "grouping, or try --align translation or --align none."
        )
    out = JobResult(plan, result, [report])
    if job.outputs:
        meta = result.meta
        t0 = time.perf_counter()
        data = result.arrays(o.kind for o in job.outputs if o.kind != "mesh")
        if any(o.kind == "mesh" for o in job.outputs):
            data["mesh"] = calibrated_mesh(result.depth, result.image, Calibration(), rgb=result.image.ndim == 3,
                                           z_scale=job.mesh_z_scale, max_vertices=job.mesh_max_vertices)
        out.sizes = write_outputs(
            job.outputs, data, quality=job.quality,
            exif=getattr(meta, "exif", None), icc=getattr(meta, "icc", None), bit_depth=job.bit_depth,
            protect=[*plan.files, *job.protect],
        )
        out.outputs = {o.kind: o.path for o in job.outputs}
        out.write_s = time.perf_counter() - t0
    return out


def _run_hyperstack(plan: JobPlan, progress, cancel) -> JobResult:
    job, hs = plan.job, plan.hyperstack
    executor = None if job.scheduler is None else open_executor(job.scheduler, cancel)
    try:
        if not job.outputs:
            res = stack_nd(
                plan.stacker.settings, hs, backend=plan.stacker.backend, z_step=job.z_step, channel=job.channel,
                reuse_alignment=job.reuse_alignment, progress=progress, cancel=cancel, executor=executor,
            )
            return JobResult(plan, res, list(res.reports), axes=res.axes, unit=res.unit)
        return _write_hyperstack(plan, executor, progress, cancel)
    finally:
        if executor is not None:
            executor.close()


def _write_hyperstack(plan: JobPlan, executor: DaskExecutor | None, progress, cancel) -> JobResult:
    """Fuse every z-stack and write it as it comes: memory stays at one z-stack.

    The fused image goes to the ``image`` output (axes (T, C, Y, X), absent
    ones dropped), the regularised heights to ``depth`` and the confidence
    to ``confidence``: calibrated TIFFs (ImageJ, or OME-TIFF for
    ``*.ome.tif``); the height map of each z-stack to its ``mesh`` file;
    staged and renamed together when all are complete.
    """
    job, hs = plan.job, plan.hyperstack
    cal = hs.calibration.with_z_step(job.z_step)
    lead, z, file_cal = tuple(hs.size(a) for a in hs.loop_axes), "", cal
    if hs.loop_axes and cal.z_step is not None:  # z kept as one plane spanning its range: reopens over the input
        lead, z, file_cal = lead + (1,), "Z", collapsed_z(cal, hs.size("Z"))
    n, nz = len(hs.loop_axes), hs.size("Z")
    image_axes = hs.out_axes[:n] + z + hs.out_axes[n:]
    map_axes = image_axes.replace("C", "").replace("S", "")
    heights = sorted((cal.z0, cal.z0 + (nz - 1) * cal.z_step)) if cal.z_step else (0.0, nz - 1.0)
    named = {"depth": ("height", cal.height_unit, heights), "confidence": ("confidence", None, (0.0, 1.0))}
    writers: dict = {}
    reports: list = []
    tiffs = [out for out in plan.outputs if out.kind != "mesh"]
    meshes = [out for out in plan.outputs if out.kind == "mesh"]
    try:
        with staged_outputs(plan.outputs) as stages:
            for _index, res in iter_stacks(
                plan.stacker.settings, hs, backend=plan.stacker.backend, channel=job.channel,
                reuse_alignment=job.reuse_alignment, progress=progress, cancel=cancel, executor=executor,
                path=plan.files[0] if plan.files else None,
                depth=plan.wants_depth,
            ):
                blocks = {"image": to_layout(hs, res.image), "confidence": res.confidence}
                if plan.wants_depth:
                    blocks["depth"] = to_height(res.depth, cal.z_step, cal.z0)
                if meshes:
                    mesh = meshes[len(reports)]
                    write_mesh(stages[mesh.key], calibrated_mesh(
                        blocks["depth"], res.image, cal, rgb="S" in hs.axes, z_scale=job.mesh_z_scale,
                        max_vertices=job.mesh_max_vertices,
                    ), protect=plan.files)
                if not writers:
                    for out in tiffs:
                        name, unit, shown = named.get(out.kind, (None, None, None))
                        writers[out.kind] = CalibratedTiffWriter(
                            stages[out.kind], lead + blocks[out.kind].shape, blocks[out.kind].dtype,
                            image_axes if out.kind == "image" else map_axes, file_cal, value_unit=unit,
                            value_name=name, display_range=shown,
                            protect=plan.files,
                        )
                for kind, writer in writers.items():
                    writer.write(blocks[kind])
                reports.append(res.report)
                del res, blocks
            if not reports:
                raise StackError(f"{hs.name} has an empty axis: nothing to fuse")
            for writer in writers.values():
                writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    outputs = {out.key: out.path for out in plan.outputs}
    sizes = {kind: path.stat().st_size for kind, path in outputs.items()}
    return JobResult(plan, None, reports, outputs, sizes, hs.out_axes, cal.height_unit, write_s=None)

