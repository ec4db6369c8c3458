"""Speed and peak memory, whole process (start-up, read, align, fuse, write).

Each run is a fresh ``napari-focus-stack stack`` process; wall time is taken
around it and peak memory is its VmHWM. Medians of ``--repeats`` runs.

    python benchmarks/speed.py [--repeats 3] [--skip-12mp] [--skip-memory]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from common import PCB, median_runs


def pcb_case(repeats: int, extra: list[str] | None = None) -> dict | None:
    if not PCB.is_dir():
        return None
    frames = sorted(str(p) for p in PCB.glob("pcb_0*.jpg"))
    with tempfile.TemporaryDirectory() as tmp:
        return median_runs([*frames, "-o", str(Path(tmp) / "pcb.jpg"), "-q", *(extra or [])], repeats)


def synthetic_folder(tmp: Path, shape, n_frames: int, name: str) -> Path:
    from napari_focus_stack.synthetic import make_stack, save_stack

    folder = tmp / name
    folder.mkdir()
    stack = make_stack("rocks", shape=shape, n_frames=n_frames, seed=1)
    save_stack(stack, folder, fmt="jpg", quality=95)
    return folder


def synthetic_case(shape, n_frames: int, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = synthetic_folder(Path(tmp), shape, n_frames, "frames")
        return median_runs([str(folder), "-o", str(Path(tmp) / "out.jpg"), "-q"], repeats)


def memory_scaling(shape=(1200, 1600), repeats: int = 1) -> dict:
    """Peak memory of a 30-frame stack against the first 5 frames of it."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = synthetic_folder(Path(tmp), shape, 30, "frames")
        files = sorted(str(p) for p in folder.iterdir())
        five = median_runs([*files[:5], "-o", str(Path(tmp) / "five.jpg"), "-q"], repeats)
        thirty = median_runs([*files, "-o", str(Path(tmp) / "thirty.jpg"), "-q"], repeats)
    return {"five": five, "thirty": thirty, "ratio": thirty["peak_mib"] / five["peak_mib"], "shape": shape}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-12mp", action="store_true")
    p.add_argument("--skip-memory", action="store_true")
    a = p.parse_args()
    pcb = pcb_case(a.repeats)
    if pcb:
        print(f"pcb 7 x 3.1 MP: median {pcb['wall_s']:.2f} s, peak {pcb['peak_mib']:.0f} MiB (runs {pcb['walls']})")
    if not a.skip_12mp:
        big = synthetic_case((3000, 4000), 10, a.repeats)
        print(f"synthetic 10 x 12 MP: median {big['wall_s']:.2f} s, peak {big['peak_mib']:.0f} MiB")
    if not a.skip_memory:
        m = memory_scaling()
        print(
            f"memory 30 vs 5 frames: {m['thirty']['peak_mib']:.0f} / {m['five']['peak_mib']:.0f} MiB "
            f"= {m['ratio']:.2f}x"
        )


if __name__ == "__main__":
    main()
