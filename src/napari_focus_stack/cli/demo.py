"""``napari-focus-stack demo``: make a synthetic stack with known truth and fuse it."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import OutputError
from .parser import COMMANDS, add_engine_options, engine_options
from .progress import Progress

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``demo`` command to `subparsers`."""
    from ..synthetic import SCENES

    p = subparsers.add_parser(
        "demo",
        help=COMMANDS["demo"],
        description="Make a synthetic stack with known truth and fuse it.",
    )
    p.add_argument("outdir", help="folder for the frames, fused image, depth and confidence maps")
    p.add_argument("--scene", default="astronaut", choices=SCENES, help="synthetic scene (default: astronaut)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    add_engine_options(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``demo``; return the exit code."""
    import numpy as np

    from ..io import write_image
    from ..io.outputs import Output
    from ..jobs import Job, plan_job, run_job
    from ..synthetic import make_stack, save_stack

    options = engine_options(args)
    outdir = Path(args.outdir)
    frame_dir = outdir / "frames"
    stack = make_stack(args.scene, shape=(384, 512), n_frames=8, seed=args.seed)
    try:
        paths = save_stack(stack, frame_dir, fmt="png")  # plain writes: map their OSError here
    except OSError as exc:
        raise OutputError(
            f"cannot write the demo frames to {frame_dir} ({exc.strerror or exc}); choose another folder."
        ) from exc
    outputs = [Output(kind, outdir / name) for kind, name in
               (("image", "fused.png"), ("depth", "depth.tif"), ("confidence", "confidence.tif"))]
    plan = plan_job(Job(paths, options, outputs=outputs))
    with Progress("demo", enabled=not args.quiet) as bar:
        result = run_job(plan, progress=bar).result
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
