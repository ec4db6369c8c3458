"""Side by side with the other focus stackers: whole process, wall, CPU and peak memory.

Each tool runs as a fresh process on the same frames with its default
settings; the runs are interleaved (ours, focusweave, focus-stack, ours, ...)
so that a change in machine load hits every tool alike, and the medians of
``--repeats`` runs are compared. One unmeasured warm-up run per tool fills
the page cache (and Python's bytecode cache, kept in a temporary folder).

Tools:

* napari-focus-stack: ``python -m napari_focus_stack.cli stack FOLDER -o OUT -q``
* focusweave (``pip install focusweave``): ``focusweave FOLDER --output OUT --keep-size``
* focus-stack (C++, built from PetteriAimonen/focus-stack with ``make``):
  ``focus-stack --output=OUT FILES...``, found with ``--focus-stack PATH``,
  ``$FOCUS_STACK`` or on ``PATH``; skipped when absent.

Cases: the real pcb stack from ../shared/data (7 x 3.1 MP JPEG) and a
synthetic 10 x 12 MP stack (the project's generator, scene ``rocks``, JPEG
q92).

    python benchmarks/peers.py [--repeats 5] [--cases pcb 12mp] [--write]
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PCB, ROOT, machine  # noqa: E402

# Fork from a bare interpreter and let the child exec the tool: wait4 then
# gives the tool's own CPU time and peak RSS, whatever the tool is written in.
_SPAWN = r"""
import json, os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(json.dumps({"rc": os.waitstatus_to_exitcode(status), "wall_s": time.perf_counter() - t0,
                  "cpu_s": ru.ru_utime + ru.ru_stime, "peak_mib": ru.ru_maxrss / 1024}))
"""


def run_measured(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` once: wall seconds, CPU seconds (all threads), peak resident MiB, load average."""
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-S", "-c", _SPAWN, *cmd], capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(lines[-1])
    if result["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {result['rc']}:\n{proc.stderr[-2000:]}")
    result["load"] = load
    return result


def tools(focus_stack: str | None) -> dict:
    """name -> function(folder, files, out) -> command line, for the tools present."""
    found = {
        "napari-focus-stack": lambda folder, files, out: [
            sys.executable, "-m", "napari_focus_stack.cli", "stack", str(folder), "-o", str(out), "-q"
        ],
    }
    weave = shutil.which("focusweave") or shutil.which("focusweave", path=str(Path(sys.executable).parent))
    if weave:
        found["focusweave"] = lambda folder, files, out: [weave, str(folder), "--output", str(out), "--keep-size"]
    fs = focus_stack or os.environ.get("FOCUS_STACK") or shutil.which("focus-stack")
    if fs and Path(fs).is_file():
        found["focus-stack"] = lambda folder, files, out: [fs, f"--output={out}", *map(str, files)]
    return found


def pcb_folder(tmp: Path) -> Path | None:
    """The 7 pcb frames alone in a folder (the shared folder also holds a reference output)."""
    if not PCB.is_dir():
        return None
    folder = tmp / "pcb"
    folder.mkdir()
    for p in sorted(PCB.glob("pcb_0*.jpg")):
        (folder / p.name).symlink_to(p)
    return folder


def synthetic_folder(tmp: Path, shape=(3000, 4000), n_frames: int = 10) -> Path:
    from napari_focus_stack.synthetic import make_stack, save_stack

    folder = tmp / f"synthetic-{n_frames}x{shape[0] * shape[1] / 1e6:.0f}mp"
    folder.mkdir()
    save_stack(make_stack("rocks", shape=shape, n_frames=n_frames, seed=1), folder, fmt="jpg", quality=92)
    return folder


def compare(folder: Path, found: dict, repeats: int, env: dict, out_dir: Path) -> dict:
    """Interleaved runs of every tool on ``folder``: name -> list of run dicts."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    runs: dict = {name: [] for name in found}
    for r in range(repeats + 1):  # run 0 warms caches and is not kept
        for name, command in found.items():
            out = out_dir / f"{folder.name}-{name}.jpg"
            result = run_measured(command(folder, files, out), env)
            if r:
                runs[name].append(result)
    return runs


def versions(found: dict) -> str:
    """One line naming what was compared (the peers' versions where they say)."""
    from importlib import metadata

    parts = []
    for name in found:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:  # focus-stack: a binary
            parts.append(name)
    return ", ".join(parts)


def summarise(runs: dict) -> dict:
    return {
        name: {k: statistics.median(x[k] for x in rs) for k in ("wall_s", "cpu_s", "peak_mib", "load")}
        | {"walls": [round(x["wall_s"], 2) for x in rs]}
        for name, rs in runs.items()
    }


def table(title: str, summary: dict, ours: str = "napari-focus-stack") -> str:
    lines = [f"**{title}**", "", "| tool | wall s | CPU s | peak MiB | our wall / theirs | our peak / theirs |",
             "|---|---|---|---|---|---|"]
    mine = summary[ours]
    for name, s in summary.items():
        ratio = "" if name == ours else f"{mine['wall_s'] / s['wall_s']:.2f}"
        peak = "" if name == ours else f"{mine['peak_mib'] / s['peak_mib']:.2f}"
        lines.append(f"| {name} | {s['wall_s']:.2f} | {s['cpu_s']:.2f} | {s['peak_mib']:.0f} | {ratio} | {peak} |")
    loads = [s["load"] for s in summary.values()]
    lines += ["", f"Median 1-minute load average during the runs: {statistics.median(loads):.1f}."]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cases", nargs="+", default=["pcb", "12mp"], choices=["pcb", "12mp"])
    p.add_argument("--focus-stack", default=None, help="path of the focus-stack binary")
    p.add_argument("--write", action="store_true", help="update the peers section of docs/benchmarks.md")
    a = p.parse_args()
    found = tools(a.focus_stack)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached after the warm-up
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    blocks = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        out_dir = tmp / "out"
        out_dir.mkdir()
        cases = {}
        if "pcb" in a.cases:
            folder = pcb_folder(tmp)
            if folder is None:
                print("shared/data/focus-stack-pcb is not present: pcb case skipped")
            else:
                cases["shared/data/focus-stack-pcb, 7 x 3.1 MP JPEG"] = folder
        if "12mp" in a.cases:
            cases["synthetic rocks, 10 x 12 MP JPEG q92"] = synthetic_folder(tmp)
        for title, folder in cases.items():
            summary = summarise(compare(folder, found, a.repeats, env, out_dir))
            block = table(title, summary)
            print(block + "\n", flush=True)
            blocks.append(block)
    missing = [t for t in ("focusweave", "focus-stack") if t not in found]
    head = [
        f"Machine: {machine()}. Date: {datetime.date.today()}. Produced by "
        f"`python benchmarks/peers.py --repeats {a.repeats}`.",
        "",
        f"Whole process (start-up, decoding, alignment, fusion, writing), default settings, medians of {a.repeats} "
        "runs interleaved tool by tool after one warm-up run each. Peak = peak resident memory. "
        "Ratios are of the medians of this one run. The load average is the whole machine's: on a "
        "shared machine each process gets a share of the cores, and the wall ratios follow the CPU "
        f"ratios more than on an idle one. Compared: {versions(found)}."
        + (f" Not found, so not run: {', '.join(missing)}." if missing else ""),
        "",
    ]
    if a.write:
        from run import replace_section

        replace_section("peers", "\n".join(head + ["\n\n".join(blocks)]))
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
