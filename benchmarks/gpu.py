"""GPU benchmark: parity with the CPU, then alignment, fusion and end-to-end timings.

Fits a 10-minute run on one H100/H200:

1. builds a 12 MP (4000 x 3000) RGB synthetic stack of 10 frames;
2. parity: GPU vs CPU on a 2 MP crop (fused PSNR, share of depth pixels
   within half a frame);
3. timings with CUDA events after a warm-up, median of ``--repeats``:
   alignment + fusion of frames already in memory, and end to end from JPEG
   files on disk (decoding on the machine's CPU cores, writing the result);
4. peak GPU memory (high-water mark of a dedicated CuPy memory pool), MP/s
   of input frames, and the same in-memory run on the CPU for the ratio.

    python benchmarks/gpu.py                       # on a GPU machine
    python benchmarks/gpu.py --device cpu --shape 600 800 --frames 4 --repeats 1   # smoke test anywhere

Prints a short markdown table last.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from napari_focus_stack import FocusStacker
from napari_focus_stack._backend import get_backend
from napari_focus_stack.synthetic import make_stack, save_stack


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


class Timer:
    """Wall-clock timer that uses CUDA events on the GPU (so queued work is counted)."""

    def __init__(self, bk):
        self.bk = bk

    def __enter__(self):
        if self.bk.is_gpu:
            self.start = self.bk.xp.cuda.Event()
            self.end = self.bk.xp.cuda.Event()
            self.start.record()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.bk.is_gpu:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.bk.xp.cuda.get_elapsed_time(self.start, self.end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self.t0


def median_time(fn, bk, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: kernels compiled, pools filled
    times, out = [], None
    for _ in range(repeats):
        with Timer(bk) as t:
            out = fn()
        times.append(t.seconds)
    return statistics.median(times), out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="gpu", choices=("gpu", "cpu", "auto"))
    p.add_argument("--shape", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--skip-cpu", action="store_true", help="skip the CPU comparison run")
    a = p.parse_args()

    bk = get_backend(a.device)
    pool = None
    if bk.is_gpu:
        pool = bk.xp.cuda.MemoryPool()
        bk.xp.cuda.set_allocator(pool.malloc)
    print(f"device: {bk.name} ({bk.device_name}); {bk.reason}", flush=True)
    t = time.perf_counter()
    stack = make_stack("rocks", shape=tuple(a.shape), n_frames=a.frames, seed=4)
    h, w = a.shape
    mp = h * w / 1e6
    print(f"built {a.frames} x {w}x{h} ({mp:.1f} MP) synthetic frames in {time.perf_counter() - t:.1f} s", flush=True)

    # 1. parity on a 2 MP crop
    ch, cw = min(h, 1200), min(w, 1600)
    crop = [f[:ch, :cw] for f in stack.frames]
    cpu_res = FocusStacker(device="cpu").stack(crop)
    dev_res = FocusStacker(device=bk).stack(crop)
    parity_psnr = psnr(dev_res.image, cpu_res.image)
    depth_agree = float((np.abs(dev_res.depth - cpu_res.depth) < 0.5).mean())
    print(f"parity on {cw}x{ch}: PSNR {parity_psnr:.1f} dB, depth agreement {100 * depth_agree:.2f} %", flush=True)

    # 2. in memory: alignment + fusion
    stacker = FocusStacker(device=bk, workers=min(8, os.cpu_count() or 1))
    mem_s, res = median_time(lambda: stacker.stack(stack.frames), bk, a.repeats)
    align_s = res.report.timings.align_s
    fuse_s = res.report.timings.fuse_s
    peak = pool.total_bytes() if pool is not None else float("nan")
    print(f"in memory: {mem_s:.3f} s (align {align_s:.3f} s, fuse {fuse_s:.3f} s)", flush=True)

    # 3. end to end from JPEG files
    with tempfile.TemporaryDirectory() as tmp:
        paths = save_stack(stack, Path(tmp), fmt="jpg", quality=95)
        out = Path(tmp) / "fused.jpg"

        def end_to_end():
            r = stacker.stack(paths)
            stacker.save_image(r.image, out, exif=r.meta.exif if r.meta else None)
            return r

        e2e_s, _ = median_time(end_to_end, bk, a.repeats)
    print(f"end to end from JPEG: {e2e_s:.3f} s", flush=True)

    cpu_s = float("nan")
    if not a.skip_cpu and bk.is_gpu:
        t = time.perf_counter()
        FocusStacker(device="cpu").stack(stack.frames)
        cpu_s = time.perf_counter() - t
        print(f"same stack on this machine's CPU: {cpu_s:.2f} s", flush=True)

    total_mp = a.frames * mp
    print()
    print(f"| {bk.device_name} | value |")
    print("|---|---|")
    print(f"| parity PSNR vs CPU (2 MP crop) | {parity_psnr:.1f} dB |")
    print(f"| depth agreement vs CPU | {100 * depth_agree:.2f} % |")
    print(f"| align + fuse, {a.frames} x {mp:.0f} MP in memory (median of {a.repeats}) | {1000 * mem_s:.0f} ms |")
    print(f"| of which alignment / fusion | {1000 * align_s:.0f} / {1000 * fuse_s:.0f} ms |")
    print(f"| throughput | {total_mp / mem_s:.0f} MP/s |")
    print(f"| end to end from JPEG files | {1000 * e2e_s:.0f} ms |")
    print(f"| peak GPU memory (pool high-water mark) | {peak / 2**30:.2f} GiB |")
    if cpu_s == cpu_s:
        print(f"| CPU, same code, in memory | {cpu_s:.2f} s ({cpu_s / mem_s:.0f}x slower) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
