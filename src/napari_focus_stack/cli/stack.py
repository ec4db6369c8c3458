"""``napari-focus-stack stack``: fuse one stack."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import OutputError, ParameterError
from .parser import add_engine_options, stacker_from_args
from .progress import Progress

__all__ = ["add_parser", "run"]

MAP_SUFFIXES = (".tif", ".tiff")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``stack`` command to `subparsers`."""
    p = subparsers.add_parser(
        "stack",
        help="fuse one stack",
        description="Fuse one stack: a folder, several files, or a multi-page TIFF. Inputs are never overwritten.",
    )
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_FOLDER", help="image files, a folder, or a multi-page TIFF")
    p.add_argument("-o", "--output", required=True, help="output image (.jpg, .png, .tif)")
    p.add_argument("--depth-map", metavar="PATH", help="also write the depth map (float32 .tif)")
    p.add_argument("--confidence-map", metavar="PATH", help="also write the confidence map (float32 .tif)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality, 1-100 (default: 95)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_engine_options(p)
    p.set_defaults(func=run)
    return p


def check_quality(quality: int) -> None:
    """Raise :class:`ParameterError` unless `quality` is a JPEG quality (1-100)."""
    if not 1 <= quality <= 100:
        raise ParameterError(f"--quality must be between 1 and 100, got {quality}")


def run(args: argparse.Namespace) -> int:
    """Run ``stack``; return the exit code."""
    from ..io import FrameSource

    check_quality(args.quality)
    stacker = stacker_from_args(args)
    inputs = args.inputs[0] if len(args.inputs) == 1 else list(args.inputs)
    source = FrameSource.from_inputs(inputs)
    protect = [p for p in source.paths if p is not None]
    out = Path(args.output)
    for extra in (args.depth_map, args.confidence_map):
        if extra is not None and Path(extra).suffix.lower() not in MAP_SUFFIXES:
            raise OutputError(f"{extra}: depth and confidence maps are float32 and need a .tif/.tiff name")
    with Progress(out.name, enabled=not args.quiet) as bar:
        result = stacker.stack(source, progress=bar)
    meta = result.meta
    stacker.save_image(
        result.image, out, quality=args.quality, exif=getattr(meta, "exif", None), icc=getattr(meta, "icc", None),
        protect=protect,
    )
    if args.depth_map:
        stacker.save_image(result.depth, args.depth_map, protect=protect)
    if args.confidence_map:
        stacker.save_image(result.confidence, args.confidence_map, protect=protect)
    if not args.quiet:
        excluded = result.report["excluded"]
        note = f"; excluded: {', '.join(excluded)}" if excluded else ""
        if result.report.get("reference_changed"):
            note = f"; reference changed to {result.report['frames'][result.report['reference']]['name']}" + note
        t = result.report["timings"]["total_s"]
        print(f"wrote {out} ({len(source)} frames, {t:.1f} s, {result.report['backend']}{note})", file=sys.stderr)
    return 0
