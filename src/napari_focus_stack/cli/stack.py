"""``napari-focus-stack stack``: fuse one stack.

Every output is checked before the first frame is read (folder, extension,
permissions, not an input, not another output), and the outputs are written
all or none (see :mod:`napari_focus_stack.io.outputs`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ParameterError
from ..io.outputs import Output, check_outputs, write_outputs
from .inputs import check_input_paths, reading_inputs
from .microscopy import is_microscopy_input, ome_zarr_input, print_summary, run_microscopy
from .parser import (
    COMMANDS,
    add_engine_options,
    add_max_memory,
    add_max_pixels,
    add_scheduler,
    check_max_pixels,
    stacker_from_args,
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
    p.add_argument("--depth-map", metavar="PATH", help="also write the depth map (float32 .tif)")
    p.add_argument("--confidence-map", metavar="PATH", help="also write the confidence map (float32 .tif)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality, 1-100 (default: 95)")
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
    return outputs


def _summary(outputs: list[Output], n_frames: int, report: dict) -> str:
    t = report["timings"]["total_s"]
    excluded = [f for f in report["frames"] if f.get("excluded")]
    note = f"; {len(excluded)} excluded" if excluded else ""
    if report.get("reference_changed"):
        note = f"; reference changed to {report['frames'][report['reference']]['name']}" + note
    lines = [
        f"wrote {', '.join(str(o.path) for o in outputs)} ({n_frames} frames, {t:.1f} s, {report['backend']}{note})"
    ]
    lines += [f"  excluded {f['name']}: {f.get('reason', 'no reason given')}" for f in excluded]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``stack``; return the exit code."""
    from ..batch.memory import fit_memory
    from ..io import FrameSource, expand_inputs

    if not 1 <= args.quality <= 100:
        raise ParameterError(f"--quality must be between 1 and 100, got {args.quality}")
    if args.max_memory is not None and not args.max_memory > 0:
        raise ParameterError(f"--max-memory must be a number of GiB above 0, got {args.max_memory}")
    check_max_pixels(args.max_pixels)
    stacker = stacker_from_args(args)
    outputs = _outputs(args)
    with reading_inputs(args.max_pixels):
        check_input_paths(args.inputs)
        files = ome_zarr_input(args.inputs) or expand_inputs(args.inputs)  # lists folders; reads no image
        if is_microscopy_input(files, args.z_step):
            with Progress(outputs[0].path.name, enabled=not args.quiet) as bar:
                line = run_microscopy(args, stacker, outputs, files[0], bar)
            print_summary(line, args.quiet)
            return 0
        if args.scheduler:
            raise ParameterError(
                "--scheduler runs the time points of one microscope file on a Dask cluster; "
                "for many stacks use: napari-focus-stack batch FOLDER --scheduler ADDRESS"
            )
        check_outputs(outputs, inputs=files)
        source = FrameSource.from_inputs(files)
        tile = fit_memory(
            source.shape, stacker.scale_factor, stacker.workers, tile_size=stacker.tile_size,
            max_memory=args.max_memory, what=outputs[0].path.name,
        )
        if tile != stacker.tile_size:  # memory is short: fuse in tiles
            args.tile_size = tile
            stacker = stacker_from_args(args)
            if not args.quiet:
                print(f"memory is short: fusing in tiles of {tile} px", file=sys.stderr)
        with Progress(outputs[0].path.name, enabled=not args.quiet) as bar:
            result = stacker.stack(source, progress=bar)
    meta = result.meta
    write_outputs(
        outputs, result.arrays(o.kind for o in outputs),
        quality=args.quality, exif=getattr(meta, "exif", None), icc=getattr(meta, "icc", None), protect=files,
    )
    if not args.quiet:
        print(_summary(outputs, len(source), result.report), file=sys.stderr)
    return 0
