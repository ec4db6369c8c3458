"""Run the command line in this process and print its peak memory as JSON.

Used by the speed benchmarks: the parent times the whole process (start-up,
imports, read, align, fuse, write) and this child reports ``ru_maxrss``.
"""
import json
import resource
import sys

from napari_focus_stack.cli import main

if __name__ == "__main__":
    code = main(sys.argv[1:])
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rc": code, "peak_mib": peak_kib / 1024}), file=sys.stderr)
    sys.exit(code)
