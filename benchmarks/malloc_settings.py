"""glibc allocator settings side by side: page faults, peak memory and CPU time of one stack.

The figures behind ``napari_focus_stack._runtime.tune_malloc``. Each setting
runs in a fresh process (the thresholds are process-wide), interleaved::

    python benchmarks/malloc_settings.py              # the pcb stack from ../shared, 3 rounds
    python benchmarks/malloc_settings.py --rounds 5 --dask-env
    python benchmarks/malloc_settings.py --folder FOLDER_OF_JPEGS   # e.g. a 10 x 12 MP stack

``--dask-env`` also runs each setting with ``MALLOC_TRIM_THRESHOLD_=65536``,
the environment ``dask.distributed`` gives its workers.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from common import PCB, ROOT

# name -> (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD in MiB, NumPy's huge-page advice); None: glibc's default
SETTINGS = {
    "glibc defaults": (None, None, True),
    "mmap 4 MiB": (4, None, True),
    "mmap 8 + trim 64 MiB": (8, 64, True),
    "mmap 32 + trim 64 MiB (tune_malloc)": (32, 64, True),
    "mmap 32 + trim 64 MiB, no huge-page advice": (32, 64, False),
    "mmap 32 + trim 256 MiB, no huge-page advice": (32, 256, False),
}

_CHILD = """
import ctypes, glob, resource, sys, time
import numpy as np
mmap, trim = (None if a == "-" else int(a) for a in sys.argv[1:3])
libc = ctypes.CDLL("libc.so.6")
if mmap is not None:
    libc.mallopt(-3, mmap << 20)
if trim is not None:
    libc.mallopt(-1, trim << 20)
np._core.multiarray._set_madvise_hugepage(sys.argv[3] == "1")
from napari_focus_stack import FocusStacker
paths = sorted(glob.glob(sys.argv[4] + "/*.jpg"))
t = time.perf_counter()
FocusStacker(device="cpu").stack(paths)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_SELF)
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(ru.ru_minflt, hwm // 1024, ru.ru_utime + ru.ru_stime, wall)
"""


def run(mmap, trim, huge, folder, dask_env: bool) -> tuple[int, int, float, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    if dask_env:
        env["MALLOC_TRIM_THRESHOLD_"] = "65536"
    args = ["-" if mmap is None else str(mmap), "-" if trim is None else str(trim), "1" if huge else "0", str(folder)]
    out = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, capture_output=True, text=True, check=True)
    faults, mib, cpu, wall = out.stdout.split()
    return int(faults), int(mib), float(cpu), float(wall)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--folder", default=str(PCB))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dask-env", action="store_true")
    args = p.parse_args()
    envs = (False, True) if args.dask_env else (False,)
    results: dict = {}
    for _ in range(args.rounds):
        for name, (mmap, trim, huge) in SETTINGS.items():
            for dask_env in envs:
                results.setdefault((name, dask_env), []).append(run(mmap, trim, huge, args.folder, dask_env))
    print("| setting | Dask env | minor faults (k) | peak MiB | CPU s | wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (name, dask_env), rows in results.items():
        cols = list(zip(*rows, strict=True))
        fmt = ("{:.0f}", "{:.0f}", "{:.1f}", "{:.1f}")
        scale = (1e-3, 1, 1, 1)  # faults in thousands
        span = [
            f"{f.format(min(c) * k)}-{f.format(max(c) * k)}" for c, f, k in zip(cols, fmt, scale, strict=True)
        ]
        print(f"| {name} | {'yes' if dask_env else 'no'} | " + " | ".join(span) + " |")


if __name__ == "__main__":
    main()
