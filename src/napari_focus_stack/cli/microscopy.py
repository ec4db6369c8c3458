"""``napari-focus-stack stack`` on microscope data: ImageJ hyperstacks, OME-TIFF, OME-Zarr.

A single input that is microscope data (or any z-stack file given a
``--z-step``) is fused along Z for every time point, all channels by one
decision, into calibrated TIFFs with the axes (T, C, Y, X) that the input
has (see :func:`napari_focus_stack.nd.stack_nd_to_files`).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ParameterError
from ..io.outputs import Output

__all__ = ["is_microscopy_input", "ome_zarr_input", "print_summary", "run_microscopy"]


def ome_zarr_input(items: list[str]) -> list[Path] | None:
    """``[folder]`` when the one input is an OME-Zarr folder (data, not a folder of frames), else None."""
    from ..io import is_hyperstack_file

    if len(items) != 1:
        return None
    path = Path(items[0]).expanduser()
    return [path] if path.is_dir() and is_hyperstack_file(path) else None


def is_microscopy_input(files: list[Path], z_step: float | None) -> bool:
    """Whether ``stack`` takes the microscopy path for these inputs.

    Raises
    ------
    ParameterError
        ``--z-step`` was given for inputs that are not one z-stack file.
    """
    from ..io import is_hyperstack_file, plane_count

    one = len(files) == 1
    if one and is_hyperstack_file(files[0]):
        return True
    if z_step is not None:
        if one and plane_count(files[0]) > 1:
            return True
        raise ParameterError(
            "--z-step needs one z-stack file (ImageJ or OME-TIFF, a multi-page TIFF, or an OME-Zarr folder)"
        )
    return False


def run_microscopy(args: argparse.Namespace, stacker, outputs: list[Output], path: Path, progress) -> str:
    """Fuse the microscope data at `path` into `outputs`; return the summary line."""
    from ..nd import stack_nd_to_files

    paths = {out.kind: out.path for out in outputs}
    info = stack_nd_to_files(
        stacker, path, paths["image"], height=paths.get("depth"), confidence=paths.get("confidence"),
        z_step=args.z_step, progress=progress, scheduler=getattr(args, "scheduler", None),
    )
    reports = info["reports"]
    seconds = sum(r["timings"]["total_s"] for r in reports)
    reused = sum(bool(r.get("reused_alignment")) for r in reports)
    unwarped = len(reports[0].get("unwarped", []))
    frames = len(reports[0]["frames"])
    notes = [f"{len(reports)} z-stack(s) of {frames} planes", f"axes {info['axes']}", f"heights in {info['unit']}"]
    if reused:
        notes.append(f"alignment reused for {reused}")
    notes.append(f"{unwarped} of {frames} planes used unwarped")
    written = ", ".join(str(p) for p in info["outputs"].values())
    return f"wrote {written} ({'; '.join(notes)}; {seconds:.1f} s, {reports[0]['backend']})"


def print_summary(line: str, quiet: bool) -> None:
    """The summary on stderr, unless ``--quiet``."""
    if not quiet:
        print(line, file=sys.stderr)
