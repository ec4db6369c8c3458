"""Helpers shared by the benchmark scripts."""
from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PCB = SHARED / "focus-stack-pcb"
DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def rerun_with_virtual_display(script: str, argv: list[str]) -> int:
    """Run ``script`` again with ``argv`` on a virtual X display (Xvfb); its exit status."""
    try:
        from pyvirtualdisplay import Display
    except ImportError:
        sys.exit("No display: install PyVirtualDisplay (pip install '.[testing]') or run under `xvfb-run -a`.")
    with Display(visible=False, size=(1600, 1000), color_depth=24) as display:
        env = {**os.environ, "DISPLAY": f":{display.display}"}
        return subprocess.run([sys.executable, script, *argv], env=env).returncode


def run_cli(args: list[str], env: dict | None = None) -> tuple[float, float]:
    """Run ``napari-focus-stack ARGS`` as a fresh process: (wall seconds, peak MiB)."""
    cmd = [sys.executable, str(Path(__file__).with_name("_measure.py")), "stack", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    last = [line for line in proc.stderr.splitlines() if line.startswith("{")][-1]
    return wall, json.loads(last)["peak_mib"]


def median_runs(args: list[str], repeats: int) -> dict:
    walls, peaks = [], []
    for _ in range(repeats):
        w, p = run_cli(args)
        walls.append(w)
        peaks.append(p)
    return {"wall_s": statistics.median(walls), "peak_mib": statistics.median(peaks), "walls": walls}


def replace_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace the text between ``<!-- name -->`` and ``<!-- /name -->`` (appending it if absent)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if start in text and end in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text, encoding="utf-8")
