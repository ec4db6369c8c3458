"""``napari-focus-stack info``: the compute backend, the GPU and its memory, how ``batch --watch`` watches."""
from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..options import option
from .parser import COMMANDS

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``info`` command to `subparsers`."""
    device = option("device")
    p = subparsers.add_parser(
        "info", help=COMMANDS["info"], description="Print backend, device and memory."
    )
    p.add_argument("--device", choices=device.choices, default=device.default, help=device.help)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``info``; return the exit code."""
    import cv2
    import numpy as np

    from .._backend import get_backend, gpu_status
    from ..batch.watch import watcher_kind

    print(f"napari-focus-stack {__version__}")
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, cpus {os.cpu_count()}")
    print(f"opencv {cv2.__version__} (the CPU kernels, {cv2.getNumThreads()} threads)")
    ok, why = gpu_status()
    print(f"gpu: {'available: ' + why if ok else 'not available: ' + why}")
    if ok:
        import cupy

        free, total = cupy.cuda.runtime.memGetInfo()
        print(f"gpu memory: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB")
    bk = get_backend(args.device)
    print(f"backend for device={args.device!r}: {bk.name} ({bk.device_name}); {bk.reason}")
    print(f"batch --watch: {watcher_kind()}")
    return 0
