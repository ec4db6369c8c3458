"""``napari-focus-stack stack``: fuse one stack, photos or microscope data.

The command line only turns its arguments into a
:class:`~napari_focus_stack.jobs.Job`; the job layer decides the kind of
data (photos, or ImageJ/OME-TIFF/OME-Zarr microscope data fused for every
time point with its calibration), checks every output before the first
frame is read, fits the memory, and writes the outputs all or none.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..io.outputs import Output
from ..jobs import Job, JobResult, plan_job, run_job
from .inputs import check_input_paths, reading_inputs
from .parser import (
    COMMANDS,
    add_engine_options,
    add_max_memory,
    add_max_pixels,
    add_scheduler,
    check_max_pixels,
    engine_options,
)
from .progress import Progress

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``stack`` command to `subparsers`."""
    p = subparsers.add_parser(
        "stack",
        help=COMMANDS["stack"],
        description="Fuse one stack: a folder, several files, or a multi-page TIFF; microscope data (ImageJ "
        "hyperstacks, OME-TIFF, OME-Zarr) for every time point, with its calibration. Inputs are never overwritten.",
    )
    p.add_argument(
        "inputs", nargs="+", metavar="FILES_OR_FOLDER",
        help="image files, a folder, a multi-page TIFF, or microscope data (ImageJ/OME-TIFF, OME-Zarr folder)",
    )
    p.add_argument("-o", "--output", required=True, help="output image (.jpg, .png, .tif)")
    p.add_argument(
        "--depth-map", metavar="PATH",
        help="also write the depth map (float32 .tif): the sharpest frame's index per pixel, or for microscope data "
        "with a known z step the height z0 + index * step in its unit",
    )
    p.add_argument("--confidence-map", metavar="PATH", help="also write the confidence map (float32 .tif)")
    p.add_argument(
        "--mesh", metavar="PATH",
        help="also write the height map as a 3D surface: .ply (with colours), .stl or .obj, in the data's units "
        "(x right, y up the image, z the height; one file per time point: PATH_t0.ply ...)",
    )
    p.add_argument(
        "--mesh-z-scale", type=float, default=1.0, metavar="F",
        help="vertical exaggeration of the --mesh (default: 1, true scale)",
    )
    p.add_argument("--quality", type=int, default=95, help="JPEG quality, 1-100 (default: 95)")
    p.add_argument(
        "--retouch", metavar="MASK",
        help="retouch mask: a 2-D integer TIFF or PNG the size of the output; where it is k > 0 the output "
        "takes frame k (counted from 1, in input order), blended in at the mask's edges; 0 keeps the automatic result",
    )
    p.add_argument(
        "--z-step", type=float, metavar="UM",
        help="distance between z planes (in the file's unit, else micrometres): sets or overrides the file's; "
        "the depth map is then a height map z0 + index * step",
    )
    add_max_pixels(p)
    add_max_memory(p)
    add_scheduler(p, "time points of microscope data")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_engine_options(p)
    p.set_defaults(func=run)
    return p


def _outputs(args: argparse.Namespace) -> list[Output]:
    outputs = [Output("image", Path(args.output).expanduser(), "-o")]
    if args.depth_map:
        outputs.append(Output("depth", Path(args.depth_map).expanduser(), "--depth-map"))
    if args.confidence_map:
        outputs.append(Output("confidence", Path(args.confidence_map).expanduser(), "--confidence-map"))
    if args.mesh:
        outputs.append(Output("mesh", Path(args.mesh).expanduser(), "--mesh"))
    return outputs


def _summary(done: JobResult) -> str:
    """The one-line summary (and a line per excluded frame) printed after a run."""
    written = ", ".join(str(p) for p in done.outputs.values())
    report = done.reports[0]
    if done.plan.kind == "hyperstack":
        reports = done.reports
        frames = len(report.frames)
        notes = [f"{len(reports)} z-stack(s) of {frames} planes", f"axes {done.axes}", f"heights in {done.unit}"]
        reused = sum(r.reused_alignment for r in reports)
        if reused:
            notes.append(f"alignment reused for {reused}")
        notes.append(f"{len(report.unwarped)} of {frames} planes used unwarped")
        excluded = [f for r in reports for f in r.excluded_frames]
        if excluded:
            notes.append(f"{len(excluded)} planes excluded")
        lines = [f"wrote {written} ({'; '.join(notes)}; {done.seconds:.1f} s, {report.backend})"]
        return "\n".join(lines + _excluded_lines(excluded))
    excluded = report.excluded_frames
    note = f"; {len(excluded)} excluded" if excluded else ""
    if report.reference_changed:
        note = f"; reference changed to {report.reference_name}" + note
    retouched = [f for f in report.frames if f.retouched_pixels]
    if retouched:
        note += "; retouched from frame " + ", ".join(f"{f.index + 1} ({f.retouched_pixels} px)" for f in retouched)
    lines = [f"wrote {written} ({len(report.frames)} frames, {done.seconds:.1f} s, {report.backend}{note})"]
    return "\n".join(lines + _excluded_lines(excluded, limit=None))


def _excluded_lines(frames: list, limit: int | None = 20) -> list[str]:
    """A line per excluded frame or plane (at most `limit`, None: all)."""
    lines = [f"  excluded {f.name}: {f.reason or 'no reason given'}" for f in frames[:limit]]
    if limit is not None and len(frames) > limit:
        lines.append(f"  ... and {len(frames) - limit} more (the report of each z-stack lists them)")
    return lines


def run(args: argparse.Namespace) -> int:
    """Run ``stack``; return the exit code."""
    check_max_pixels(args.max_pixels)
    job = Job(
        args.inputs, engine_options(args), outputs=_outputs(args), quality=args.quality, z_step=args.z_step,
        scheduler=args.scheduler, max_memory=args.max_memory, mesh_z_scale=args.mesh_z_scale,
        retouch=Path(args.retouch).expanduser() if args.retouch else None,
    )
    with reading_inputs(args.max_pixels):
        check_input_paths(args.inputs)
        plan = plan_job(job)  # lists folders and checks every output; decodes no frame
        if not args.quiet:
            for note in plan.notes:
                print(f"{note}", file=sys.stderr)
        with Progress(job.outputs[0].path.name, enabled=not args.quiet) as bar:
            done = run_job(plan, progress=bar)
    if not args.quiet:
        print(_summary(done), file=sys.stderr)
    return 0
