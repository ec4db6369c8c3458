"""Microscopy: a calibrated (T, C, Z, Y, X) 16-bit hyperstack, fused for every time point.

Writes a synthetic ImageJ hyperstack (default T 10, C 2, Z 30, 1024 x 1024,
uint16: 1.2 GB; pixel 0.1 um, z step 0.5 um) to a temporary folder, plane by
plane, and a second file holding its first time point only. Each run is a
fresh process, with the allocator tuned as the command line tunes it, that
reads the file a plane at a time, fuses every z-stack and streams the fused
image and height map to calibrated TIFFs
(the job layer, :mod:`napari_focus_stack.jobs`, as ``stack FILE.tif`` runs it):

* ``1 time point``: the single z-stack, the memory reference;
* ``T time points, alignment reused``: estimated on the first z-stack;
* ``T time points, aligned each``: ``reuse_alignment=False``.

Reported: wall time per time point, peak resident memory (``VmHWM``) against
the single z-stack's, and what reusing the alignment saves. Runs are
interleaved over ``--repeats`` rounds and the median kept.

    python benchmarks/microscopy.py                    # the full 1.2 GB case
    python benchmarks/microscopy.py --t 4 --write      # fewer time points, into docs/benchmarks.md
    python benchmarks/microscopy.py --t 2 --z 6 --size 256 --repeats 1   # smoke test
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import ROOT, machine  # noqa: E402

PIXEL_UM, Z_STEP_UM = 0.1, 0.5


def write_hyperstack(path: Path, t: int, c: int, z: int, size: int, seed: int = 0) -> int:
    """Render one z-stack with known relief and write ``t`` noisy, drifting time points of it (ImageJ TZCYX)."""
    import tifffile

    from napari_focus_stack.synthetic import make_hyperstack

    base = make_hyperstack("rocks", shape=(size, size), n_z=z, n_t=1, n_c=c, seed=seed, noise=0.0).data[0]
    rng = np.random.default_rng(seed)

    def planes():
        for _k in range(t):
            for zi in range(z):
                for ci in range(c):
                    plane = base[ci, zi].astype(np.float32)
                    plane += rng.standard_normal(plane.shape, dtype=np.float32) * np.float32(300)
                    yield np.clip(plane, 0, 65535).astype(np.uint16)

    tifffile.imwrite(
        path, data=planes(), shape=(t, z, c, size, size), dtype=np.uint16, imagej=True,
        resolution=(1 / PIXEL_UM, 1 / PIXEL_UM),
        metadata={"axes": "TZCYX", "unit": "micron", "spacing": Z_STEP_UM, "mode": "composite"},
    )
    return path.stat().st_size


def child(args: argparse.Namespace) -> None:
    """One measured run, in a fresh process: prints wall seconds and peak MiB as JSON."""
    t0 = time.perf_counter()
    from napari_focus_stack._runtime import tune_malloc
    from napari_focus_stack.io.outputs import Output
    from napari_focus_stack.jobs import Job, plan_job, run_job
    from napari_focus_stack.options import EngineOptions

    tune_malloc()  # as the command line does

    out = Path(args.out)
    outputs = [Output("image", out / "fused.tif"), Output("depth", out / "height.tif")]
    job = Job(args.child, EngineOptions(device="cpu"), outputs=outputs, reuse_alignment=not args.no_reuse)
    done = run_job(plan_job(job))  # what ``stack FILE.tif -o fused.tif --depth-map height.tif`` runs
    wall = time.perf_counter() - t0
    align = [r.timings.align_s for r in done.reports]
    fuse = [r.timings.fuse_s for r in done.reports]
    unwarped = len(done.reports[0].unwarped)
    print(json.dumps({"wall_s": wall, "peak_mib": _peak_mib(), "align_s": align, "fuse_s": fuse,
                      "unwarped": unwarped, "cpu_s": _cpu_s()}))


def _cpu_s() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def baseline() -> None:
    """The process alone: Python and the modules a run imports, no data (prints peak MiB as JSON)."""
    import napari_focus_stack.jobs  # noqa: F401
    from napari_focus_stack import FocusStacker

    FocusStacker(device="cpu").backend  # noqa: B018  (imports the CPU kernels)
    print(json.dumps({"peak_mib": _peak_mib()}))


def _peak_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _run(path: Path, out: Path, reuse: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--child", str(path), "--out", str(out)] + ([] if reuse else ["--no-reuse"])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--t", type=int, default=10)
    p.add_argument("--c", type=int, default=2)
    p.add_argument("--z", type=int, default=30)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--write", action="store_true", help="write the table into docs/benchmarks.md")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--no-reuse", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    if args.baseline:
        baseline()
        return

    zstack_mib = args.c * args.z * args.size**2 * 2 / 2**20
    need = (args.t + 1) * zstack_mib * 1.1 * 2**20
    with tempfile.TemporaryDirectory(prefix="micro-bench-") as tmp:
        tmp = Path(tmp)
        free = shutil.disk_usage(tmp).free
        if free < need:
            raise SystemExit(f"{tmp}: {free / 2**30:.1f} GiB free, {need / 2**30:.1f} GiB needed; lower --t")
        t0 = time.perf_counter()
        full, one = tmp / "series.tif", tmp / "one.tif"
        size_b = write_hyperstack(full, args.t, args.c, args.z, args.size)
        write_hyperstack(one, 1, args.c, args.z, args.size)
        print(f"wrote {full.name}: {size_b / 2**30:.2f} GiB in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        cases = {"1 time point": (one, True), f"{args.t} time points, alignment reused": (full, True),
                 f"{args.t} time points, aligned each": (full, False)}
        runs: dict[str, list] = {k: [] for k in cases}
        for r in range(args.repeats):
            for name, (path, reuse) in cases.items():
                runs[name].append(_run(path, tmp / f"out-{r}-{len(runs[name])}-{reuse}", reuse))
                print(f"{name}: {runs[name][-1]['wall_s']:.1f} s, {runs[name][-1]['peak_mib']:.0f} MiB",
                      file=sys.stderr)
        load = _loadavg()
    proc = subprocess.run([sys.executable, __file__, "--baseline"], capture_output=True, text=True, check=True)
    base_mib = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]
    table = _table(args, runs, zstack_mib, size_b, load, base_mib)
    print(table)
    if args.write:
        _write_docs(table)


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def _table(args, runs: dict, zstack_mib: float, size_b: int, load: str, base_mib: float) -> str:
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "peak_mib")} for k, v in runs.items()}
    for k, v in runs.items():
        for m in ("align_s", "fuse_s"):
            med[k][m] = statistics.median(sum(r[m]) for r in v)
        med[k]["cpu_s"] = statistics.median(r["cpu_s"] for r in v)
    names = list(runs)
    one = med[names[0]]
    lines = [
        "## Microscopy hyperstacks",
        "",
        f"ImageJ hyperstack T {args.t}, C {args.c}, Z {args.z}, {args.size} x {args.size}, uint16 "
        f"({size_b / 2**30:.2f} GiB; one z-stack {zstack_mib:.0f} MiB), pixel 0.1 um, z step 0.5 um; read a plane "
        f"at a time, fused image and height map streamed to calibrated TIFFs; whole process, CPU, "
        f"median of {args.repeats}; load average {load}; {machine()}. "
        f"`python benchmarks/microscopy.py --t {args.t}`",
        "",
        "| run | wall s | CPU s | align s | fuse s | s per time point | peak MiB | peak vs 1 time point |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in names:
        n = 1 if k == names[0] else args.t
        m = med[k]
        lines.append(f"| {k} | {m['wall_s']:.1f} | {m['cpu_s']:.1f} | {m['align_s']:.1f} | {m['fuse_s']:.1f} "
                     f"| {(m['align_s'] + m['fuse_s']) / n:.1f} | {m['peak_mib']:.0f} "
                     f"| {m['peak_mib'] / one['peak_mib']:.2f}x |")
    reused, each = med[names[1]]["cpu_s"], med[names[2]]["cpu_s"]
    align_each = statistics.median(sum(r["align_s"][1:]) for r in runs[names[2]])
    align_reused = statistics.median(sum(r["align_s"][1:]) for r in runs[names[1]])
    unwarped = runs[names[0]][0]["unwarped"]
    lines += [
        "",
        f"Reusing the alignment saves {each - reused:.1f} CPU s of {each:.1f} ({100 * (each - reused) / each:.0f} %): "
        f"the later z-stacks are read once instead of twice and not registered (alignment stage of time points "
        f"2-{args.t}: {align_each:.1f} s aligned each, {align_reused:.1f} s reused). "
        f"{unwarped} of {args.z} planes moved less than 0.1 px and were fused unwarped. Wall times on this shared "
        "machine vary with its load; CPU seconds less so.",
        "",
        f"Memory: the process alone (Python and the modules, no data) peaks at {base_mib:.0f} MiB; the work adds "
        f"{one['peak_mib'] - base_mib:.0f} MiB for one time point ({(one['peak_mib'] - base_mib) / zstack_mib:.2f}x "
        f"one z-stack's {zstack_mib:.0f} MiB: fusion state and planes in flight), and "
        f"{med[names[1]]['peak_mib'] - one['peak_mib']:+.0f} MiB over it for {args.t} time points.",
    ]
    return "\n".join(lines) + "\n"


def _write_docs(table: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text(encoding="utf-8")
    block = f"<!-- microscopy -->\n{table}<!-- /microscopy -->\n"
    if "<!-- microscopy -->" in text:
        text = re.sub(r"<!-- microscopy -->.*?<!-- /microscopy -->\n", block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
