"""Where the time of one stack goes, stage by stage, against the floor of decoding and encoding alone.

The stack is fused in this process on one thread (``workers=1``: no
read-ahead, no side thread), with timers around the engine's stage
functions; each timer counts its own time only (a stage called inside
another is counted once, as the inner one). The stages:

* decode: reading and decoding frames (both passes);
* align: registration (the alignment pass's pyramids and fits);
* warp: conversion, exposure and warp of each frame into reference geometry;
* pyramid: Laplacian pyramids of the frames, and the final collapse;
* focus: the depth map's focus measure, the depth tracker and the noise statistics;
* decision: the pyramid's per-level weights (band energies, smoothing, exponents, occlusion order);
* accumulate: the weighted running sums of the bands and the base;
* depth: the regularised depth map (only when a depth map is written);
* finish and encode: the result in the input's dtype, and writing it.

The floor is what any stacker pays on these files: every frame decoded
once and the fused image encoded once. Then the whole run with the default
threads (wall time, in process) for comparison.

    python benchmarks/profile_stages.py [--cases pcb 12mp] [--depth] [--write]
"""
from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PCB, machine, replace_section  # noqa: E402

#: (module, function or Class.method) -> stage. Patched in every module that imported the name.
STAGES = {
    ("napari_focus_stack.io.source", "FrameSource.read"): "decode",
    ("napari_focus_stack.io.source", "FrameSource.read_reduced"): "decode",
    ("napari_focus_stack.align", "estimate_transform"): "align",
    ("napari_focus_stack.pyramid", "gaussian_pyramid"): "align",
    ("napari_focus_stack._backend", "OpenCVBackend.warp_frame"): "warp",
    ("napari_focus_stack.pyramid", "laplacian_pyramid"): "pyramid",
    ("napari_focus_stack.pyramid", "collapse"): "pyramid",
    ("napari_focus_stack.focus", "focus_measure"): "focus",
    ("napari_focus_stack.focus", "local_energy"): "focus",
    ("napari_focus_stack.focus", "DepthTracker.update"): "focus",
    ("napari_focus_stack.fusion_decision", "NoiseAverage.frame_statistics"): "focus",
    ("napari_focus_stack.fusion_decision", "NoiseAverage.add"): "focus",
    ("napari_focus_stack._backend", "OpenCVBackend.block_energy"): "decision",
    ("napari_focus_stack.fusion_decision", "level_log_weights"): "decision",
    ("napari_focus_stack.fusion_decision", "OcclusionOrder.apply"): "decision",
    ("napari_focus_stack.fusion_decision", "WeightedLevels.add"): "accumulate",
    ("napari_focus_stack.fusion_decision", "NoiseAverage.blend"): "accumulate",
    ("napari_focus_stack.pipeline", "regularised_depth"): "depth",
    ("napari_focus_stack.pipeline", "_finish"): "finish",
    ("napari_focus_stack.io.outputs", "write_outputs"): "encode",
}
ORDER = ("decode", "align", "warp", "pyramid", "focus", "decision", "accumulate", "depth", "finish", "encode", "other")


class StageClock:
    """Exclusive time per stage: a timed call inside another is taken out of the outer one."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.main = threading.main_thread()
        self.stack: list[list] = []  # [stage, start, time taken by inner calls]

    def wrap(self, fn, stage: str):
        clock = self

        def timed(*args, **kwargs):
            if threading.current_thread() is not clock.main:
                return fn(*args, **kwargs)
            frame = [stage, time.perf_counter(), 0.0]
            clock.stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                clock.stack.pop()
                took = time.perf_counter() - frame[1]
                clock.totals[stage] += took - frame[2]
                if clock.stack:
                    clock.stack[-1][2] += took

        timed.__wrapped__ = fn
        return timed


def install(clock: StageClock) -> list[tuple]:
    """Put the clock's timers around the stage functions, wherever they were imported; returns what to restore."""
    import importlib

    mods = [m for m in list(sys.modules.values()) if getattr(m, "__name__", "").startswith("napari_focus_stack")]
    patched = []
    for (modname, qual), stage in STAGES.items():
        mod = importlib.import_module(modname)
        if "." in qual:
            cls_name, meth = qual.split(".")
            cls = getattr(mod, cls_name)
            raw = cls.__dict__[meth]
            timed = clock.wrap(raw.__func__, stage) if isinstance(raw, staticmethod) else clock.wrap(raw, stage)
            setattr(cls, meth, staticmethod(timed) if isinstance(raw, staticmethod) else timed)
            patched.append((cls, meth, raw))
            continue
        fn = getattr(mod, qual)
        timed = clock.wrap(fn, stage)
        for m in mods:  # every module that did "from mod import fn"
            if getattr(m, qual, None) is fn:
                setattr(m, qual, timed)
                patched.append((m, qual, fn))
    return patched


def uninstall(patched: list[tuple]) -> None:
    """Take the timers out again."""
    for owner, name, original in reversed(patched):
        setattr(owner, name, original)


def case_frames(name: str, tmp: Path) -> list[str]:
    if name == "pcb":
        return sorted(str(p) for p in PCB.glob("pcb_0*.jpg"))
    from peers import synthetic_folder

    folder = synthetic_folder(tmp)
    return sorted(str(p) for p in folder.iterdir())


def floor(frames: list[str], out: Path) -> float:
    """Decode every frame once and encode one JPEG: what no stacker can skip."""
    from napari_focus_stack.io import read_image, write_image

    t0 = time.perf_counter()
    image = None
    for f in frames:
        image = read_image(f)[0]
    write_image(out, image, quality=95)
    return time.perf_counter() - t0


def profile(frames: list[str], tmp: Path, depth: bool) -> dict:
    from napari_focus_stack._runtime import tune_malloc
    from napari_focus_stack.io.outputs import Output
    from napari_focus_stack.jobs import Job, plan_job, run_job
    from napari_focus_stack.options import EngineOptions

    tune_malloc()
    outputs = [Output("image", tmp / "fused.jpg")] + ([Output("depth", tmp / "depth.tif")] if depth else [])

    def run(workers: int | None) -> float:
        t0 = time.perf_counter()
        run_job(plan_job(Job(frames, EngineOptions(device="cpu"), workers=workers, outputs=outputs)))
        return time.perf_counter() - t0

    run(None)  # warm: imports, page cache
    threaded = min(run(None) for _ in range(2))
    floor_s = min(floor(frames, tmp / "floor.jpg") for _ in range(2))
    clock = StageClock()
    patched = install(clock)
    try:
        serial = run(1)
    finally:
        uninstall(patched)
    stages = dict(clock.totals)
    stages["other"] = max(0.0, serial - sum(stages.values()))
    return {"stages": stages, "serial_s": serial, "threaded_s": threaded, "floor_s": floor_s}


def table(results: dict) -> str:
    names = list(results)
    lines = ["| stage | " + " | ".join(f"{n}: s (share)" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for stage in ORDER:
        cells = []
        for n in names:
            r = results[n]
            s = r["stages"].get(stage, 0.0)
            cells.append(f"{s:.2f} ({100 * s / r['serial_s']:.0f} %)")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    lines.append("| **one thread, total** | " + " | ".join(f"**{results[n]['serial_s']:.2f}**" for n in names) + " |")
    lines.append("| default threads, wall (in process) | "
                 + " | ".join(f"{results[n]['threaded_s']:.2f}" for n in names) + " |")
    lines.append("| floor: decode every frame once, encode one JPEG | "
                 + " | ".join(f"{results[n]['floor_s']:.2f}" for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", nargs="+", default=["pcb", "12mp"], choices=["pcb", "12mp"])
    p.add_argument("--depth", action="store_true", help="also write the depth map")
    p.add_argument("--write", action="store_true", help="update the profile section of docs/benchmarks.md")
    a = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.cases:
            work = Path(tmp) / name
            work.mkdir()
            frames = case_frames(name, work)
            label = "pcb 7 x 3.1 MP" if name == "pcb" else "10 x 12 MP"
            results[label] = profile(frames, work, a.depth)
    text = table(results)
    print(text)
    if a.write:
        head = (f"Machine: {machine()}. Date: {datetime.date.today()}. Produced by "
                f"`python benchmarks/profile_stages.py{' --depth' if a.depth else ''}` (in process, default "
                "settings, writing the fused JPEG" + (" and the depth map" if a.depth else "") + ").\n")
        replace_section("profile", head + "\n" + text)


if __name__ == "__main__":
    main()
