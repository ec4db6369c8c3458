"""Batch throughput: stacks per minute with 1 and 2 workers, with and without alignment reuse.

Builds an OpenScan-like scan (default 12 poses x 6 frames of about 1 MP,
JPEG with EXIF) in a temporary folder, then runs :func:`run_batch` on it in
several configurations, each into a fresh output folder:

* ``1 worker, 1 thread``: in this process, the engine on one thread (the
  single-core baseline the speed-ups are given against);
* ``1 worker``: in this process, the engine on its default threads;
* ``2 workers``: a local Dask cluster of 2 processes (engine on 1 thread each);
* ``1 worker + reuse`` and ``2 workers + reuse``: ``--reuse-alignment``.

Wall time is the whole :func:`run_batch` call, cluster start-up included;
the last columns leave the start-up out (it is paid once per batch, so it
matters less the more stacks a scan has).
Configurations are interleaved over ``--repeats`` rounds and the median is
reported, so that a load spike does not favour one of them.

    python benchmarks/batch.py                      # 12 x 6 frames, 864 x 1152, scale factor 1
    python benchmarks/batch.py --scale-factor 2     # the engine default
    python benchmarks/batch.py --stacks 4 --shape 240 320 --repeats 1   # smoke test

Prints a markdown table last (``--write``: also into the batch section of
docs/benchmarks.md). The CPU seconds per stack (this process and
the worker processes) tell the cost of each way of running whatever else
the machine is doing; wall times need an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402
from napari_focus_stack.batch import BatchOptions, run_batch, run_stack  # noqa: E402
from napari_focus_stack.synthetic import make_stack  # noqa: E402


def single_thread_runner(task):
    """:func:`run_stack` with the engine on one thread."""
    task.engine_workers = 1
    return run_stack(task)


def make_scan(folder: Path, stacks: int, frames: int, shape: tuple[int, int], distinct: int = 3) -> None:
    """``Ella_0_<pose>-<frame>.jpg``; `distinct` synthetic stacks are cycled over the poses."""
    folder.mkdir(parents=True, exist_ok=True)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "OpenScan", "Arducam IMX519"
    renders = [make_stack("pcb", shape=shape, n_frames=frames, seed=s).frames for s in range(min(distinct, stacks))]
    for pose in range(stacks):
        for i, frame in enumerate(renders[pose % len(renders)], start=1):
            path = folder / f"Ella_0_{pose}-{i}.jpg"
            if pose < len(renders):
                Image.fromarray(frame).save(path, quality=92, exif=exif.tobytes())
            else:
                shutil.copyfile(folder / f"Ella_0_{pose % len(renders)}-{i}.jpg", path)


CONFIGS = {
    "1 worker, 1 thread": dict(workers=1, runner=single_thread_runner),
    "1 worker": dict(workers=1),
    "2 workers": dict(workers=2),
    "1 worker + reuse": dict(workers=1, reuse_alignment=True),
    "2 workers + reuse": dict(workers=2, reuse_alignment=True),
}


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (the Dask workers)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


def run_config(scan: Path, work: Path, name: str, engine: dict) -> tuple[float, float, float]:
    """(wall seconds, of which cluster start-up, CPU seconds) of one batch run."""
    cfg = dict(CONFIGS[name])
    runner = cfg.pop("runner", None)
    out = Path(tempfile.mkdtemp(dir=work, prefix="out-"))
    c0, t0 = cpu_seconds(), time.perf_counter()
    result = run_batch(scan, out, BatchOptions(**engine, **cfg), runner=runner)
    wall = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    if not result.ok or result.counts["done"] != len(result.stacks):
        raise RuntimeError(f"{name}: {result.counts}")
    shutil.rmtree(out)
    return wall, result.startup_s, cpu


def _burn(n: int) -> int:
    total = 0
    for i in range(n):
        total += i
    return total


def parallel_headroom(n: int = 20_000_000) -> float:
    """Speed-up two processes get on a pure CPU loop right now (2.0 on an idle 2-core machine)."""
    import multiprocessing as mp

    t0 = time.perf_counter()
    _burn(n)
    one = time.perf_counter() - t0
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_burn, [1000, 1000])  # start-up
        t0 = time.perf_counter()
        pool.map(_burn, [n, n])
        two = time.perf_counter() - t0
    return 2 * one / two


def load() -> float:
    """1-minute load average (other processes compete for the cores)."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stacks", type=int, default=12)
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--shape", type=int, nargs=2, default=(864, 1152), metavar=("H", "W"))
    p.add_argument("--scale-factor", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--write", action="store_true", help="also write the table into docs/benchmarks.md (batch section)")
    args = p.parse_args(argv)
    engine = dict(scale_factor=args.scale_factor, device="cpu")

    with tempfile.TemporaryDirectory(prefix="nfs-batch-bench-") as tmp:
        work = Path(tmp)
        scan = work / "scan"
        t0 = time.perf_counter()
        make_scan(scan, args.stacks, args.frames, tuple(args.shape))
        print(f"scan: {args.stacks} stacks x {args.frames} frames of {args.shape[1]}x{args.shape[0]} "
              f"({args.shape[0] * args.shape[1] / 1e6:.2f} MP) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        headroom = [parallel_headroom()]
        walls: dict[str, list[float]] = {name: [] for name in args.configs}
        starts: dict[str, list[float]] = {name: [] for name in args.configs}
        cpus: dict[str, list[float]] = {name: [] for name in args.configs}
        loads = []
        for r in range(args.repeats):
            for name in args.configs:
                w, s, c = run_config(scan, work, name, engine)
                walls[name].append(w)
                starts[name].append(s)
                cpus[name].append(c)
                loads.append(load())
                print(f"round {r + 1}: {name}: {w:.1f} s (start-up {s:.1f} s), CPU {c:.1f} s, "
                      f"load {loads[-1]:.2f}", file=sys.stderr, flush=True)
            headroom.append(parallel_headroom())

    text = table(args, walls, starts, cpus, loads, headroom)
    print("\n" + text)
    if args.write:
        from run import replace_section

        replace_section("batch", "## Batch throughput\n\n" + text)
    return 0


def table(args, walls, starts, cpus, loads, headroom) -> str:
    """The results as a markdown paragraph and table."""
    n = args.stacks
    med = {name: statistics.median(walls[name]) for name in args.configs}
    steady = {
        name: statistics.median(w - s for w, s in zip(walls[name], starts[name], strict=True)) for name in args.configs
    }
    base = args.configs[0]
    lines = [
        f"{n} stacks x {args.frames} frames, {args.shape[1]}x{args.shape[0]} JPEG, scale factor "
        f"{args.scale_factor}, CPU; median of {args.repeats} interleaved rounds; load average "
        f"{min(loads):.1f}-{max(loads):.1f}; two busy-loop processes ran {min(headroom):.2f}-{max(headroom):.2f}x "
        f"as fast as one (2.00 when idle); {machine()}. `python benchmarks/batch.py`",
        "",
        f"| configuration | wall s | stacks/min | vs {base} | cluster start s | stacks/min after start "
        f"| vs {base} | CPU s per stack |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in args.configs:
        lines.append(
            f"| {name} | {med[name]:.1f} | {60 * n / med[name]:.1f} | {med[base] / med[name]:.2f}x "
            f"| {statistics.median(starts[name]):.1f} | {60 * n / steady[name]:.1f} "
            f"| {steady[base] / steady[name]:.2f}x "
            f"| {statistics.median(cpus[name]) / n:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
