"""``napari-focus-stack batch``: stack every stack of a scan."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..batch import FORMATS, BatchOptions, BatchResult, plan_batch, run_batch
from ..batch.options import NAMINGS
from ..batch.plan import known_outputs
from ..batch.run import CANCELLED_BEFORE, fatal_line
from ..batch.watch import SETTLE_S, watch_batch
from ..errors import ParameterError
from ..grouping import MODES, detect_stacks
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

__all__ = ["add_parser", "options_from_args", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``batch`` command to `subparsers`."""
    p = subparsers.add_parser(
        "batch",
        help=COMMANDS["batch"],
        description=(
            "Find the stacks in INPUT_DIR (an OpenScan3 scan folder scanNN/ of scanNN_PPP_fsKK photos, or a "
            "project folder of such scan folders; classic OpenScan names <name>_<pose>-<frame>; numbered "
            "files with --stack-size; one per subfolder; or a --pattern), stack each, and write one image "
            "per stack with the reference frame's EXIF and ICC profile: for OpenScan3 photos "
            "scanNN/stacked/stacked_scanNN_PPP.jpg as the firmware names them (OUTPUT_DIR is the project "
            "folder, or the scan folder itself), else <stack>.jpg. A rerun skips complete stacks; inputs "
            "are never overwritten. Writes batch-report.json and .csv in OUTPUT_DIR."
        ),
    )
    p.add_argument(
        "input_dir", metavar="INPUT_DIR",
        help="folder with the frames, a folder of one subfolder per stack, or an OpenScan3 project folder",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT_DIR",
        help="output folder (may be INPUT_DIR); for OpenScan3 photos the project folder (or the scanNN folder)",
    )
    g = p.add_argument_group("stack detection")
    g.add_argument("--mode", choices=MODES, default="auto", help="how files are grouped (default: auto)")
    g.add_argument("--stack-size", type=int, metavar="N", help="frames per stack (number mode; checked elsewhere)")
    g.add_argument("--pattern", metavar="REGEX", help="regex with named groups 'stack' and 'frame' (regex mode)")
    g.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    g.add_argument("--strict", action="store_true", help="stop before any work when the plan has problems")
    add_max_pixels(g)
    g = p.add_argument_group("watching a scan as it is shot")
    g.add_argument(
        "--watch", action="store_true",
        help="keep watching INPUT_DIR and stack each stack as soon as it is complete (a later stack's frame has "
        "arrived, or --settle seconds passed without a new frame); Ctrl-C to stop (exit 130)",
    )
    g.add_argument(
        "--settle", type=float, metavar="SECONDS",
        help=f"with --watch: a stack is complete after this long without a new frame (default: {SETTLE_S:g})",
    )
    g.add_argument(
        "--idle-exit", type=float, metavar="SECONDS",
        help="with --watch: stop after this long without new files, once nothing is waiting (default: watch on)",
    )
    g.add_argument(
        "--poll", action="store_true",
        help="with --watch: list the folder every second instead of using file system notifications "
        "(network shares send none)",
    )
    g = p.add_argument_group("output")
    g.add_argument("--format", choices=FORMATS, help="output format (default: that of the frames)")
    g.add_argument("--bit-depth", type=int, choices=(8, 16), help="output bits per sample (16: png or tif)")
    g.add_argument("--quality", type=int, default=95, help="JPEG quality, 1-100 (default: 95)")
    g.add_argument("--depth-maps", action="store_true", help="also write <stack>_depth.tif (float32)")
    g.add_argument("--confidence-maps", action="store_true", help="also write <stack>_confidence.tif (float32)")
    g.add_argument("--overwrite", action="store_true", help="recompute all stacks and replace existing outputs")
    g.add_argument(
        "--naming", choices=NAMINGS, default="openscan",
        help="openscan: OpenScan3 stacks as scanNN/stacked/stacked_scanNN_PPP.jpg (default); "
        "plain: <stack>.jpg in OUTPUT_DIR",
    )
    g = p.add_argument_group("speed")
    g.add_argument(
        "--reuse-alignment",
        action="store_true",
        help="estimate the alignment on a few stacks (median) and reuse it where it fits (one focus sequence)",
    )
    g.add_argument(
        "--calibration-positions", type=int, default=3, metavar="N",
        help="stacks, evenly spaced, the reused alignment is estimated on (default: 3)",
    )
    g.add_argument(
        "--reuse-tolerance", type=float, default=1.0, metavar="PX",
        help="a stack whose end frames move more than PX pixels from the reused alignment is aligned on its own "
        "(default: 1; 0: no check)",
    )
    g.add_argument(
        "--calibration", metavar="PATH",
        help="stack to estimate the reused alignment from (implies --reuse-alignment)",
    )
    g.add_argument(
        "--workers", type=int, default=1, metavar="N", help="local worker processes (default: 1, in-process)"
    )
    add_scheduler(g)
    add_max_memory(g)
    g.add_argument(
        "--retries", type=int, default=2, metavar="N",
        help="retries of a stack that raised an unexpected error (default: 2)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print errors and the summary only")
    add_engine_options(p)
    p.set_defaults(func=run)
    return p


def options_from_args(args: argparse.Namespace) -> BatchOptions:
    """:class:`BatchOptions` from parsed ``batch`` arguments.

    Raises
    ------
    ParameterError
        An option out of range, or options that cannot work together.
    """
    return BatchOptions(
        engine_options(args),
        format=args.format,
        bit_depth=args.bit_depth,
        quality=args.quality,
        depth_maps=args.depth_maps,
        confidence_maps=args.confidence_maps,
        naming=args.naming,
        reuse_alignment=args.reuse_alignment,
        calibration_positions=args.calibration_positions,
        reuse_tolerance=args.reuse_tolerance,
        calibration=args.calibration,
        overwrite=args.overwrite,
        workers=args.workers,
        scheduler=args.scheduler,
        retries=args.retries,
        max_pixels=args.max_pixels,
        max_memory=args.max_memory,
    )


def _dry_run(args: argparse.Namespace, options: BatchOptions) -> int:
    plan, jobs = plan_batch(
        args.input_dir, Path(args.output), options, mode=args.mode, stack_size=args.stack_size, pattern=args.pattern
    )
    print(plan.summary(limit=None))
    print("\nplan:")
    for job in jobs:
        outs = ", ".join(os.path.relpath(p, job.task.output_dir) for p in job.task.outputs.values())
        what = {"run": "will run", "skip": "complete, skipped", "fail": "cannot run"}[job.state]
        line = f"  {job.task.name}: {what} -> {outs}"
        if job.error:
            line += f"\n      {job.error}"
        print(line)
    if plan.fatal:
        print(f"napari-focus-stack: {fatal_line(plan)}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``batch``; return the exit code.

    0: every stack done or already complete; 1: some stacks failed (see the
    report); 2: nothing could run (bad options, no stacks, a fatal plan
    problem such as repeated frame numbers, output folder not writable,
    ``--strict`` with problems). With ``--watch``: the same when
    ``--idle-exit`` ends it (no stacks is not an error then); Ctrl-C gives 130
    once the stack in progress is abandoned and the reports are written.
    """
    check_max_pixels(args.max_pixels)
    _check_watch_args(args)
    options = options_from_args(args)
    check_input_paths([args.input_dir])
    with reading_inputs(args.max_pixels):
        if args.dry_run:
            return _dry_run(args, options)
        if args.watch:
            return _watch(args, options)
        return _run(args, options)


def _check_watch_args(args: argparse.Namespace) -> None:
    """Raise :class:`ParameterError` for watch options without ``--watch``, or with options it cannot take."""
    if not args.watch:
        given = [flag for flag, value in (("--settle", args.settle), ("--idle-exit", args.idle_exit),
                                          ("--poll", args.poll or None)) if value is not None]
        if given:
            raise ParameterError(f"{', '.join(given)} only work(s) with --watch")
        return
    for flag in ("dry_run", "strict"):
        if getattr(args, flag):
            raise ParameterError(
                f"--{flag.replace('_', '-')} and --watch do not go together: the stacks are not all there yet"
            )
    for flag, value in (("--settle", args.settle), ("--idle-exit", args.idle_exit)):
        if value is not None and not 0 < value < float("inf"):
            raise ParameterError(f"{flag} must be a number of seconds above 0, got {value:g}")


def _run(args: argparse.Namespace, options: BatchOptions) -> int:
    err = sys.stderr
    out = Path(args.output)
    out_abs = out.expanduser().absolute()
    plan = detect_stacks(
        args.input_dir, mode=args.mode, stack_size=args.stack_size, pattern=args.pattern,
        exclude=known_outputs(out_abs) + [out_abs],
    )
    if not args.quiet or plan.problems:
        print(plan.summary(limit=None if args.quiet or len(plan.stacks) <= 60 else 40), file=err)
    if not plan.stacks:
        return 2
    if plan.fatal:
        print(f"napari-focus-stack: {fatal_line(plan)}", file=err)
        return 2
    if args.strict and any(p.kind != "ignored" for p in plan.problems):
        print("napari-focus-stack: --strict: the plan has problems (listed above); nothing was done", file=err)
        return 2
    result = run_batch(plan, out, options, on_stack=_stack_printer(args.quiet, len(plan.stacks)))
    return _summary(result, options)


def _watch(args: argparse.Namespace, options: BatchOptions) -> int:
    err = sys.stderr

    def notify(line: str) -> None:
        if not args.quiet:
            print(line, file=err, flush=True)

    result = watch_batch(
        args.input_dir, Path(args.output), options, mode=args.mode, stack_size=args.stack_size, pattern=args.pattern,
        settle=SETTLE_S if args.settle is None else args.settle, idle_exit=args.idle_exit, poll=args.poll,
        on_stack=_stack_printer(args.quiet, None), notify=notify,
    )
    return _summary(result, options)


def _summary(result: BatchResult, options: BatchOptions) -> int:
    """Print the calibration lines and the summary line of a batch; return its exit code."""
    err = sys.stderr
    for cal in result.calibration:
        print(_calibration_line(cal, options.reuse_tolerance), file=err)
    c = result.counts
    print(
        f"{c['done']} done, {c['skipped']} skipped (complete), {c['failed']} failed, {c['cancelled']} cancelled "
        f"in {result.elapsed_s:.1f} s ({result.stacks_per_minute:.1f} stacks/min); report: {result.report_json}",
        file=err,
    )
    return 0 if result.ok else 1


def _stack_printer(quiet: bool, total: int | None):
    """An ``on_stack`` callback printing one line per stack (``[k/total]``, or ``[k]`` while watching)."""
    err = sys.stderr
    count = [0]

    def on_stack(e: dict) -> None:
        count[0] += 1
        status = e["status"]
        if quiet and status in ("done", "skipped"):
            return
        if status == "cancelled" and e.get("error") == CANCELLED_BEFORE:
            return  # interrupted: a line per stack that never ran says nothing the report does not

        t = (e.get("timings") or {}).get("wall_s")
        where = f"{count[0]}/{total}" if total is not None else f"{count[0]}"
        bits = [f"[{where}] {e['stack']}: {status}"]
        if status == "done":
            bits.append(f"in {t:.1f} s" if t is not None else "")
            bits.append(f"-> {Path(e['outputs'].get('image', '')).name}")
            if e.get("excluded"):
                bits.append(f"({len(e['excluded'])} frame(s) excluded)")
            check = (e.get("alignment") or {}).get("reuse_check")
            if check:
                bits.append(
                    f"(reused alignment fits: {check['error_px']:.2f} px)" if check["fits"]
                    else f"(reused alignment off by {check['error_px']:.1f} px: aligned on its own)"
                )
        elif e.get("error"):
            bits.append(f"- {e['error']}")
        lines = [" ".join(b for b in bits if b)]
        if status == "done":
            lines += [f"    excluded {x['name']}: {x['reason']}" for x in e.get("excluded") or []]
        print("\n".join(lines), file=err, flush=True)

    return on_stack


def _calibration_line(cal: dict, tolerance: float) -> str:
    """One line on where a reused alignment came from and which calibration stack disagreed."""
    where = f"{cal['group']}: " if cal["group"] else ""
    deviation = cal.get("deviation_px") or {}
    if not deviation:
        return f"{where}reused alignment: no calibration stack could be aligned ({', '.join(cal['stacks'])})"
    how = "median" if len(deviation) > 1 else "alone"
    line = f"{where}reused alignment estimated on {', '.join(deviation)} ({how})"
    odd = [f"{name} differs from it by {px:.1f} px" for name, px in deviation.items() if px > max(tolerance, 0.5)]
    if odd:
        line += "; " + "; ".join(odd) + " (outvoted by the median)" * (len(deviation) > 2)
    if cal.get("failed"):
        line += f"; failed: {', '.join(cal['failed'])}"
    return line
