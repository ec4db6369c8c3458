"""Run the command line in this process and print its peak memory as JSON.

Used by the speed benchmarks: the parent times the whole process (start-up,
imports, read, align, fuse, write) and this child reports its peak resident
memory. ``VmHWM`` is used, not ``ru_maxrss``: after fork + exec the latter
keeps the parent's high-water mark.
"""
import json
import resource
import sys


def peak_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

from napari_focus_stack.cli import main  # noqa: E402 - imported after peak_mib so its import cost is measured

if __name__ == "__main__":
    code = main(sys.argv[1:])
    print(json.dumps({"rc": code, "peak_mib": peak_mib()}), file=sys.stderr)
    sys.exit(code)
