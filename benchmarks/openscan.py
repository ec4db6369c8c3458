"""OpenScan3: the firmware's own stacker beside ours, calibration, a Raspberry Pi memory budget.

(a) On a synthetic turntable scan with ground truth (OpenScan3 names, one
    focus sequence for every position), the firmware's stacking module
    (``openscan_firmware/utils/photos/stacking.py`` of OpenScan-org/OpenScan3,
    read from a clone at run time, never copied into the package) is run as
    its focus-stacking task runs it: calibrated on 3 evenly spaced positions
    (mean of the transforms), then every position stacked. Ours stacks every
    position with its own alignment. PSNR against the truth of each position.
(b) Calibration trade-off: our per-stack alignment against a reused
    alignment estimated on 1 or N positions (see ``calibration_table``).
(c) Peak memory of one 10 x 12 MP stack, whole process (the firmware stacks
    on a Raspberry Pi, up to three stacks at once: 1 GiB each fits a 4 GB Pi).

    python benchmarks/openscan.py [--firmware PATH] [--shape 768 1024] [--positions 6] [--frames 8]
                                  [--skip-memory] [--write]

``--firmware`` is a clone (or bare mirror) of OpenScan-org/OpenScan3; default
``$OPENSCAN3_REPO`` or ../.mirror/OpenScan-org+OpenScan3/repo. The firmware's
module needs OpenCV (``opencv-python-headless``, a dependency of this
package). ``--write`` replaces the ``openscan`` section of docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # the firmware passes a JPEG quality to its PNG output here

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, machine  # noqa: E402

FIRMWARE_MODULE = "openscan_firmware/utils/photos/stacking.py"
DEFAULT_FIRMWARE = Path(os.environ.get("OPENSCAN3_REPO", ROOT.parent / ".mirror" / "OpenScan-org+OpenScan3" / "repo"))
CROP = 16  # border (px) left out of every PSNR: how each tool fills uncovered borders is not compared


# ---------------------------------------------------------------------------
# the firmware's stacker, loaded from its repository
# ---------------------------------------------------------------------------


def load_firmware(repo: Path, into: Path):
    """Import the firmware's stacking module from a clone or bare mirror: (module, commit)."""
    repo = Path(repo)
    checkout = repo / FIRMWARE_MODULE
    if checkout.is_file():
        source = checkout.read_text(encoding="utf-8")
    else:
        source = subprocess.run(
            ["git", "-C", str(repo), "show", f"HEAD:{FIRMWARE_MODULE}"], capture_output=True, text=True, check=True
        ).stdout
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True
    ).stdout.strip() or "unknown"
    path = into / "openscan3_stacking.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("openscan3_stacking", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, commit


def firmware_calibration_positions(module, scan_dir: Path, n: int = 3) -> list[int]:
    """The positions the firmware calibrates on (its own batch order and spacing)."""
    batches = module.find_image_batches(str(scan_dir))
    keys = list(batches)
    n = min(n, len(keys))
    picks = [0] if n == 1 else np.linspace(0, len(keys) - 1, n, dtype=int)
    return sorted(keys[i] for i in picks)


# ---------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------


def psnr(image: np.ndarray, truth: np.ndarray, crop: int = CROP) -> float:
    """PSNR (dB) of an 8-bit RGB image against the truth, inside a border of `crop` px."""
    from skimage.metrics import peak_signal_noise_ratio

    inner = (slice(crop, -crop or None), slice(crop, -crop or None))
    t, i = truth[inner].astype(np.float64), image[inner].astype(np.float64)
    return float(peak_signal_noise_ratio(t, i, data_range=255))


def make_scan(project: Path, positions: int, frames: int, shape, seed: int = 0, **kwargs):
    from napari_focus_stack.synthetic import make_turntable_scan, save_turntable_scan

    scan = make_turntable_scan(positions, frames, tuple(shape), seed=seed, **kwargs)
    files = save_turntable_scan(scan, project)
    return scan, files


# ---------------------------------------------------------------------------
# (a) the firmware's stacker against ours
# ---------------------------------------------------------------------------


def firmware_vs_ours(firmware: Path, shape=(768, 1024), positions: int = 6, frames: int = 8, seed: int = 0) -> dict:
    """PSNR per position of the firmware's stacker (as its task runs it) and of ours."""
    import cv2

    from napari_focus_stack import FocusStacker

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        module, commit = load_firmware(firmware, tmp)
        scan, files = make_scan(tmp / "project", positions, frames, shape, seed)
        scan_dir = files[0][0].parent
        seen = firmware_calibration_positions(module, scan_dir, 3)
        t0 = time.perf_counter()
        theirs = module.FocusStacker(downscale=0.25, jpeg_quality=90)  # as its focus-stacking task
        theirs.calibrate_from_directory(str(scan_dir), num_batches=3)
        fw_cal = time.perf_counter() - t0
        rows = []
        ours_engine = FocusStacker(device="cpu")
        for p, paths in enumerate(files):
            truth = scan.positions[p].truth
            out = tmp / f"fw_{p:03d}.png"  # lossless, so that only the stacking is compared
            t0 = time.perf_counter()
            theirs.stack([str(f) for f in paths], str(out))
            fw_s = time.perf_counter() - t0
            fw_image = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            t0 = time.perf_counter()
            result = ours_engine.stack([str(f) for f in paths])
            ours_s = time.perf_counter() - t0
            rows.append({
                "position": p,
                "seen": p in seen,
                "firmware_psnr": psnr(fw_image, truth),
                "ours_psnr": psnr(result.image, truth),
                "firmware_s": fw_s,
                "ours_s": ours_s,
            })
    unseen = [r for r in rows if not r["seen"]]
    return {
        "commit": commit,
        "shape": tuple(shape),
        "frames": frames,
        "positions": positions,
        "seen": seen,
        "rows": rows,
        "firmware_calibration_s": fw_cal,
        "firmware_mean": statistics.mean(r["firmware_psnr"] for r in rows),
        "firmware_unseen": statistics.mean(r["firmware_psnr"] for r in unseen) if unseen else float("nan"),
        "ours_mean": statistics.mean(r["ours_psnr"] for r in rows),
        "ours_unseen": statistics.mean(r["ours_psnr"] for r in unseen) if unseen else float("nan"),
    }


def format_firmware(res: dict) -> str:
    h, w = res["shape"]
    lines = [
        f"Synthetic turntable scan: {res['positions']} positions x {res['frames']} frames of {w} x {h} RGB, "
        "JPEG q95, one focus sequence (breathing 3 %, shifts up to 4 px, rotations up to 0.5 deg, 0.1 px "
        f"jitter per frame and position). Firmware: OpenScan3 {res['commit']}, `FocusStacker(downscale=0.25)` "
        f"calibrated as its focus-stacking task does it: on 3 stacks evenly spaced in the order its "
        f"`find_image_batches` lists them (file-system order, not position order: here positions "
        f"{', '.join(map(str, res['seen']))}), mean of their transforms, reused for every position; its output "
        "written as PNG here (the firmware writes JPEG q90). Ours: "
        f"default settings, each position aligned on its own. PSNR against the truth, {CROP} px border left out.",
        "",
        "| position | calibrated on | firmware PSNR dB | ours PSNR dB | firmware s | ours s |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['position']} | {'yes' if r['seen'] else 'no'} | {r['firmware_psnr']:.2f} | {r['ours_psnr']:.2f} "
            f"| {r['firmware_s']:.2f} | {r['ours_s']:.2f} |"
        )
    lines += [
        f"| mean, all | | {res['firmware_mean']:.2f} | {res['ours_mean']:.2f} | | |",
        f"| mean, positions not calibrated on | | {res['firmware_unseen']:.2f} | {res['ours_unseen']:.2f} | | |",
        "",
        f"Firmware calibration: {res['firmware_calibration_s']:.2f} s once per scan.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# (b) calibration: per-stack alignment against a reused one
# ---------------------------------------------------------------------------

CALIBRATION_CASES = [
    ("each stack aligned on its own", dict()),
    ("reused, 1 calibration position", dict(reuse_alignment=True, calibration_positions=1)),
    ("reused, 3 positions (median)", dict(reuse_alignment=True, calibration_positions=3)),
    ("reused, 1 position, no fit check", dict(reuse_alignment=True, calibration_positions=1, reuse_tolerance=0)),
    ("reused, 3 positions (median), no fit check",
     dict(reuse_alignment=True, calibration_positions=3, reuse_tolerance=0)),
]


def calibration_table(shape=(768, 1024), positions: int = 8, frames: int = 8, seed: int = 1,
                      disturbed: tuple[int, ...] = ()) -> list[dict]:
    """Quality and time of each way to align a turntable scan (one batch each, PNG outputs)."""
    from PIL import Image

    from napari_focus_stack.batch import BatchOptions, run_batch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scan, _ = make_scan(tmp / "project", positions, frames, shape, seed, disturbed=disturbed)
        for label, kw in CALIBRATION_CASES:
            out = tmp / f"out{len(rows)}"
            result = run_batch(tmp / "project", out, BatchOptions(device="cpu", format="png", **kw))
            scores = []
            for p, stack in enumerate(scan.positions):
                with Image.open(out / "scan01" / "stacked" / f"stacked_scan01_{p:03d}.png") as im:
                    scores.append(psnr(np.asarray(im), stack.truth))
            align = sum((e.get("timings") or {}).get("align_s", 0.0) for e in result.stacks)
            check = sum((e.get("timings") or {}).get("check_s", 0.0) for e in result.stacks)
            refits = sum(
                1 for e in result.stacks if ((e.get("alignment") or {}).get("reuse_check") or {}).get("fits") is False
            )
            rows.append({
                "case": label,
                "psnr_mean": statistics.mean(scores),
                "psnr_min": min(scores),
                "align_s": align,
                "check_s": check,
                "wall_s": result.elapsed_s,
                "realigned": refits,
                "ok": result.ok,
            })
    return rows


def format_calibration(rows: list[dict], title: str) -> str:
    lines = [
        f"**{title}**",
        "",
        "| alignment | PSNR dB mean / worst position | align s (all stacks) | fit check s | stacks re-aligned "
        "| batch wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['psnr_mean']:.2f} / {r['psnr_min']:.2f} | {r['align_s']:.1f} | {r['check_s']:.1f} "
            f"| {r['realigned']} | {r['wall_s']:.1f} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# (c) peak memory of one 12 MP stack
# ---------------------------------------------------------------------------


def _measure(args: list[str]) -> tuple[float, float]:
    """Run ``napari-focus-stack ARGS`` as a fresh process: (wall s, peak MiB)."""
    cmd = [sys.executable, str(Path(__file__).with_name("_measure.py")), *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    last = [line for line in proc.stderr.splitlines() if line.startswith("{")][-1]
    return wall, json.loads(last)["peak_mib"]


def big_stack(folder: Path, shape=(3000, 4000), frames: int = 10) -> list[Path]:
    """A 10 x 12 MP synthetic stack as JPEG files (kept in `folder` between runs)."""
    from napari_focus_stack.synthetic import make_stack, save_stack

    files = sorted(folder.glob("frame_*.jpg"))
    if len(files) == frames:
        return files
    folder.mkdir(parents=True, exist_ok=True)
    return save_stack(make_stack("rocks", shape=shape, n_frames=frames, seed=1), folder, fmt="jpg", quality=95)


def memory_table(folder: Path, cases: list[tuple[str, list[str]]], repeats: int = 1) -> list[dict]:
    files = [str(f) for f in big_stack(folder)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in cases:
            runs = []
            for _ in range(repeats):
                if extra and extra[0] == "batch":
                    out = Path(tmp) / f"batch{len(rows)}"
                    args = ["batch", str(folder), "-o", str(out), "-q", "--overwrite", *extra[1:]]
                else:
                    args = ["stack", *files, "-o", str(Path(tmp) / "out.jpg"), "-q", *extra]
                runs.append(_measure(args))
            rows.append({
                "case": label,
                "wall_s": statistics.median(w for w, _ in runs),
                "peak_mib": statistics.median(p for _, p in runs),
            })
    return rows


def format_memory(rows: list[dict]) -> str:
    lines = ["| 10 x 12 MP JPEG stack (4000 x 3000) | wall s | peak MiB | <= 1 GiB |", "|---|---|---|---|"]
    for r in rows:
        fits = "yes" if r["peak_mib"] <= 1024 else "no"
        lines.append(f"| {r['case']} | {r['wall_s']:.1f} | {r['peak_mib']:.0f} | {fits} |")
    return "\n".join(lines)


MEMORY_CASES = [
    ("`stack`, default settings", []),
    ("`stack --tile-size 2048`", ["--tile-size", "2048"]),
    ("`stack --tile-size 1024`", ["--tile-size", "1024"]),
    ("`stack --max-memory 1` (tiles chosen to fit)", ["--max-memory", "1"]),
    ("`batch`, one stack, default settings", ["batch"]),
    ("`batch --max-memory 1`", ["batch", "--max-memory", "1"]),
]


# ---------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--firmware", type=Path, default=DEFAULT_FIRMWARE, help="clone or mirror of OpenScan-org/OpenScan3")
    p.add_argument("--shape", type=int, nargs=2, default=(768, 1024))
    p.add_argument("--positions", type=int, default=6)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-firmware", action="store_true")
    p.add_argument("--skip-calibration", action="store_true")
    p.add_argument("--calibration-positions", type=int, default=8, dest="cal_positions",
                   help="turntable positions of the calibration scans (default: 8)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--big-stack", type=Path, default=Path(tempfile.gettempdir()) / "nfs-bench-12mp",
                   help="folder for the 10 x 12 MP stack (made once, reused)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--write", action="store_true", help="update the openscan section of docs/benchmarks.md")
    a = p.parse_args()
    out = [
        f"Machine: {machine()}. Date: {datetime.date.today()}. Produced by `python benchmarks/openscan.py`.",
    ]
    if not a.skip_firmware:
        if (a.firmware / FIRMWARE_MODULE).is_file() or (a.firmware / "HEAD").exists() or (a.firmware / ".git").exists():
            res = firmware_vs_ours(a.firmware, tuple(a.shape), a.positions, a.frames, a.seed)
            out += ["", "### The firmware's stacker beside ours", "", format_firmware(res)]
        else:
            out += ["", f"(firmware comparison skipped: no OpenScan3 clone at {a.firmware}; pass --firmware)"]
        print("\n".join(out), flush=True)
    if not a.skip_calibration:
        h, w = a.shape
        block = [
            "", "### Reused alignment: quality and time", "",
            f"Synthetic turntable scan, {a.cal_positions} positions x {a.frames} frames of {w} x {h} RGB (as above; "
            "seed 1), one batch per row, PNG outputs, default engine settings, the fit check's tolerance 1 px. "
            "PSNR against each position's truth, 16 px border left out. Align s: the engine's alignment pass "
            "summed over the stacks (with reuse it still reads every frame once for the exposure gains).",
            "",
        ]
        clean = calibration_table(tuple(a.shape), a.cal_positions, a.frames)
        block.append(format_calibration(clean, "Every position kept the focus sequence"))
        bumped = calibration_table(tuple(a.shape), a.cal_positions, a.frames, disturbed=(0,))
        block += ["", format_calibration(
            bumped, "Position 0 (a calibration position in both cases) moved while it was taken (6 px per frame)"
        )]
        print("\n".join(block), flush=True)
        out += block
    if not a.skip_memory:
        rows = memory_table(a.big_stack, MEMORY_CASES, a.repeats)
        block = ["", "### Peak memory of one 10 x 12 MP stack (whole process)", "", format_memory(rows)]
        print("\n".join(block), flush=True)
        out += block
    if a.write:
        from run import replace_section

        replace_section("openscan", "\n".join(out))


if __name__ == "__main__":
    main()
