"""Command line: ``napari-focus-stack stack|batch|demo|info``."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import FocusStackError, FocusStackWarning

__all__ = ["main", "build_parser", "add_engine_options", "engine_kwargs_from_args", "stacker_from_args"]


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """The engine's options, shared by ``stack`` and ``batch``."""
    from .align import MODELS
    from .fusion import METHODS

    g = p.add_argument_group("engine")
    g.add_argument("--method", choices=tuple(METHODS), default="pyramid", help="fusion method (default: pyramid)")
    g.add_argument("--radius", type=int, default=8, help="focus-measure window radius in px, 1-20 (default: 8)")
    g.add_argument("--smoothing", type=float, default=4, help="focus-map smoothing sigma in px, 1-10 (default: 4)")
    g.add_argument(
        "--scale-factor", type=int, default=1, help="work at this multiple of the resolution, 1-4 (default: 1)"
    )
    g.add_argument("--align", choices=MODELS, default="similarity", help="alignment model (default: similarity)")
    g.add_argument("--reference", type=int, default=None, help="reference frame index (default: middle frame)")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="compute device (default: auto)")
    g.add_argument(
        "--upscale-output", action="store_true", help="keep the scale-factor times larger result"
    )
    g.add_argument(
        "--tile-size", type=int, metavar="PX", default=None,
        help="fuse in overlapping tiles of PX output pixels a side (less memory; default: whole image)",
    )


ENGINE_OPTIONS = (
    "radius", "smoothing", "scale_factor", "method", "align", "reference", "device", "upscale_output", "tile_size"
)


def engine_kwargs_from_args(args: argparse.Namespace) -> dict:
    """The :class:`FocusStacker` keyword arguments among parsed engine options."""
    return {name: getattr(args, name) for name in ENGINE_OPTIONS}


def stacker_from_args(args: argparse.Namespace, **overrides):
    """Build a :class:`FocusStacker` from parsed engine options."""
    from .stacker import FocusStacker

    return FocusStacker(**{**engine_kwargs_from_args(args), **overrides})


class _Progress:
    """tqdm progress bar on stderr that only appears after one second."""

    def __init__(self, desc: str, enabled: bool = True):
        self.desc, self.enabled, self.bar, self.start = desc, enabled, None, time.monotonic()

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            if time.monotonic() - self.start < 1.0 and done < total:
                return
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="frame", file=sys.stderr, leave=False)
            self.bar.update(done - 1)
        self.bar.set_postfix_str(stage, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_stack(args: argparse.Namespace) -> int:
    from .io import FrameSource

    inputs = args.inputs[0] if len(args.inputs) == 1 else list(args.inputs)
    source = FrameSource.from_inputs(inputs)
    protect = [p for p in source.paths if p is not None]
    out = Path(args.output)
    for extra in (args.depth_map, args.confidence_map):
        if extra is not None and Path(extra).suffix.lower() not in (".tif", ".tiff"):
            raise FocusStackError(f"{extra}: depth and confidence maps are float32 and need a .tif/.tiff name")
    stacker = stacker_from_args(args)
    bar = _Progress(out.name, enabled=not args.quiet)
    try:
        result = stacker.stack(source, progress=bar)
    finally:
        bar.close()
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


def _cmd_demo(args: argparse.Namespace) -> int:
    import numpy as np

    from .io import write_image
    from .synthetic import make_stack, save_stack

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    stack = make_stack(args.scene, shape=(384, 512), n_frames=8, seed=args.seed)
    frame_dir = outdir / "frames"
    frame_dir.mkdir(exist_ok=True)
    paths = save_stack(stack, frame_dir, fmt="png")
    stacker = stacker_from_args(args)
    bar = _Progress("demo", enabled=not args.quiet)
    try:
        result = stacker.stack(paths, progress=bar)
    finally:
        bar.close()
    write_image(outdir / "fused.png", result.image)
    write_image(outdir / "depth.tif", result.depth)
    write_image(outdir / "confidence.tif", result.confidence)
    write_image(outdir / "truth.png", stack.truth)
    err = np.abs(result.image.astype(np.float64) - stack.truth.astype(np.float64))
    psnr = 10 * np.log10(255.0**2 / max(float((err**2).mean()), 1e-12))
    within = float((np.abs(result.depth - stack.depth_index) <= 1)[stack.texture_mask].mean())
    print(
        f"demo: {len(paths)} synthetic frames in {frame_dir}\n"
        f"wrote {outdir / 'fused.png'}, depth.tif, confidence.tif, truth.png\n"
        f"fused vs truth: PSNR {psnr:.1f} dB; depth within one frame on {100 * within:.1f} % of textured pixels"
    )
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import numpy as np

    from ._backend import get_backend, gpu_status

    print(f"napari-focus-stack {__version__}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, cpus {os.cpu_count()}")
    ok, why = gpu_status()
    print(f"gpu: {'available: ' + why if ok else 'not available: ' + why}")
    if ok:
        import cupy

        free, total = cupy.cuda.runtime.memGetInfo()
        print(f"gpu memory: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB")
        try:
            import cucim

            print(f"cucim {cucim.__version__}")
        except Exception:
            print("cucim: not installed (CuPy-only path)")
    bk = get_backend(args.device)
    print(f"backend for device={args.device!r}: {bk.name} ({bk.device_name}); {bk.reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-focus-stack",
        description="Align and fuse focus stacks into one sharp image, with depth and confidence maps.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "stack",
        help="fuse one stack",
        description="Fuse one stack: a folder, several files, or a multi-page TIFF. Inputs are never overwritten.",
    )
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_FOLDER", help="image files, a folder, or a multi-page TIFF")
    p.add_argument("-o", "--output", required=True, help="output image (.jpg, .png, .tif)")
    p.add_argument("--depth-map", metavar="PATH", help="also write the depth map (float32 .tif)")
    p.add_argument("--confidence-map", metavar="PATH", help="also write the confidence map (float32 .tif)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default: 95)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    add_engine_options(p)
    p.set_defaults(func=_cmd_stack)

    p = sub.add_parser(
        "demo", help="fuse a built-in synthetic stack", description="Make a synthetic stack with known truth and fuse it."
    )
    p.add_argument("outdir", help="folder for the frames, fused image, depth and confidence maps")
    p.add_argument("--scene", default="astronaut", help="synthetic scene (default: astronaut)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    add_engine_options(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("info", help="show the compute backend and GPU", description="Print backend, device and memory.")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    p.set_defaults(func=_cmd_info)

    from .batch import add_batch_parser

    add_batch_parser(sub)
    return parser


def _limit_heap_growth() -> None:
    """Have glibc give large arrays back to the system as soon as they are freed.

    The engine allocates and frees frame-sized arrays from several threads;
    glibc's adaptive mmap threshold would otherwise keep them in per-thread
    heaps and the resident size grows by a third for nothing. Process-wide,
    so only the command line does it.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD = 4 MiB
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        pass


def _warning_line(show: Callable) -> Callable:
    """A ``warnings.showwarning`` printing the engine's warnings as one plain line each."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FocusStackWarning):
            from tqdm import tqdm

            # tqdm.write keeps a progress bar intact below the line
            tqdm.write(f"napari-focus-stack: warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def main(argv: Sequence[str] | None = None) -> int:
    _limit_heap_growth()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line(warnings.showwarning)
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("napari-focus-stack: interrupted", file=sys.stderr)
        return 130
    except (FocusStackError, ValueError, OSError) as exc:
        print(f"napari-focus-stack: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
