"""``napari-focus-stack batch``: wiring, options, dry run, exit codes, kill -9 and resume."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import napari_focus_stack
from napari_focus_stack.batch import STATE_DIR, BatchOptions, run_batch
from napari_focus_stack.cli import batch as cli_batch
from napari_focus_stack.cli import build_parser
from napari_focus_stack.cli import main as cli_main
from napari_focus_stack.errors import InputError
from scans import FAST, frames_for, make_scan, outputs, save_frame, temp_files


def test_cli_is_wired_and_dry_run_writes_nothing(tmp_path, capsys):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    (scan / "Ella_0_5-1.jpg").write_bytes((scan / "Ella_0_0-1.jpg").read_bytes())
    assert cli_main(["batch", str(scan), "-o", str(out), "--dry-run", "--scale-factor", "1"]) == 0
    text = capsys.readouterr().out
    assert "mode: openscan" in text and "Ella_0_1: will run -> Ella_0_1.jpg" in text
    assert "Ella_0_5: cannot run" in text and "[too_few]" in text
    assert not out.exists()

    assert cli_main(["batch", str(scan), "-o", str(out), "--strict", "-q"]) == 2
    assert not (out / "batch-report.json").exists()

    code = cli_main(["batch", str(scan), "-o", str(out), "--scale-factor", "1", "--device", "cpu", "--format", "png"])
    assert code == 1  # the one-frame stack failed
    err = capsys.readouterr().err
    assert "Ella_0_0: done" in err and "Ella_0_5: failed" in err and "2 done" in err
    assert (out / "Ella_0_1.png").exists()


def test_cli_options_reach_the_batch(tmp_path):
    args = build_parser().parse_args(
        ["batch", "in", "-o", "out", "--mode", "number", "--stack-size", "5", "--workers", "3",
         "--scheduler", "tcp://h:8786", "--format", "tif", "--bit-depth", "16", "--reuse-alignment",
         "--overwrite", "--depth-maps", "--confidence-maps", "--method", "depthmap", "--radius", "3",
         "--smoothing", "2", "--scale-factor", "1", "--align", "translation", "--reference", "0", "--device", "cpu",
         "--prefer", "near"]
    )
    assert args.func is cli_batch.run
    opts = cli_batch.options_from_args(args)
    assert (opts.workers, opts.scheduler, opts.format, opts.bit_depth) == (3, "tcp://h:8786", "tif", 16)
    assert opts.reuse and opts.overwrite and opts.depth_maps and opts.confidence_maps
    assert opts.engine_kwargs() == dict(radius=3, smoothing=2, scale_factor=1, method="depthmap",
                                        align="translation", reference=0, device="cpu", upscale_output=False,
                                        tile_size=None, channel=None, prefer="near")
    assert (args.mode, args.stack_size) == ("number", 5)


def test_numbered_files_with_a_stack_size(tmp_path, capsys):
    scan, out = tmp_path / "scan", tmp_path / "out"
    k = 0
    for pose in (0, 1):
        for frame in frames_for(pose):
            k += 1
            save_frame(scan / f"IMG_{k:04d}.png", frame)
    code = cli_main(["batch", str(scan), "-o", str(out), "--stack-size", "4", "--scale-factor", "1", "--device", "cpu"])
    assert code == 0
    assert "mode: number" in capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*.png")) == ["IMG_0001-0004.png", "IMG_0005-0008.png"]
    # 8 = 3 + 3 + 2: the short stack is reported before the work, and stacked
    assert cli_main(["batch", str(scan), "-o", str(out), "--stack-size", "3", "-q", "--scale-factor", "1"]) == 0
    assert "2 file(s) are left over" in capsys.readouterr().err
    assert (out / "IMG_0007-0008.png").exists()


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "scan").mkdir()
    with pytest.raises(InputError, match="no image files"):
        run_batch(tmp_path / "scan", tmp_path / "out")
    assert cli_main(["batch", str(tmp_path / "scan"), "-o", str(tmp_path / "out")]) == 2
    assert "no image files" in capsys.readouterr().err


def _slow_batch_script() -> str:
    """The command line, with every stack slowed down so that it can be killed between stacks."""
    return (
        "import sys, time\n"
        "from napari_focus_stack import stacker\n"
        "from napari_focus_stack.cli import main\n"
        "orig = stacker.FocusStacker.stack\n"
        "def slow(self, *args, **kwargs):\n"
        "    time.sleep(0.15)\n"
        "    result = orig(self, *args, **kwargs)\n"
        "    time.sleep(0.15)\n"
        "    return result\n"
        "stacker.FocusStacker.stack = slow\n"
        "sys.exit(main(['batch', *sys.argv[1:]]))\n"
    )


def _marker_done(path: Path) -> bool:
    """A finished stack's marker; temporary files being renamed into place are skipped."""
    if path.name.startswith("."):
        return False
    try:
        return '"state": "done"' in path.read_text()
    except OSError:  # replaced between glob and read
        return False


def test_kill_9_then_resume_gives_the_uninterrupted_outputs(tmp_path):
    scan = tmp_path / "scan"
    make_scan(scan, poses=6)
    args = ["--scale-factor", "1", "--device", "cpu", "--depth-maps", "-q"]

    reference = tmp_path / "reference"
    assert cli_main(["batch", str(scan), "-o", str(reference), *args]) == 0

    out = tmp_path / "out"
    env = dict(os.environ)
    src = str(Path(napari_focus_stack.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen(
        [sys.executable, "-c", _slow_batch_script(), str(scan), "-o", str(out), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in (out / STATE_DIR).glob("*.json") if _marker_done(p)]
            if len(done) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the batch ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert len(outputs(out)) < len(outputs(reference))

    result = run_batch(scan, out, BatchOptions(depth_maps=True, **FAST))
    assert result.ok
    assert result.counts["skipped"] >= 2
    assert outputs(out) == outputs(reference)  # byte for byte
    assert temp_files(out) == []


def test_excluded_frames_are_listed_with_their_reasons(tmp_path, capsys):
    import numpy as np

    scan = tmp_path / "scan"
    make_scan(scan, poses=1)
    noise = np.random.default_rng(0).integers(0, 256, (*frames_for(0)[0].shape,), dtype=np.uint8)
    save_frame(scan / "Ella_0_0-1.jpg", noise)
    assert cli_main(["batch", str(scan), "-o", str(tmp_path / "out"), "--device", "cpu"]) == 0
    err = capsys.readouterr().err.splitlines()
    i = next(i for i, line in enumerate(err) if "Ella_0_0: done" in line)
    assert "(1 frame(s) excluded)" in err[i]
    assert err[i + 1].startswith("    excluded Ella_0_0-1.jpg: ") and len(err[i + 1]) > 40


def test_interrupted_before_any_stack_ran_is_one_line(tmp_path, monkeypatch, capsys):
    """Ctrl-C while the workers start: "interrupted", not a line per stack that never ran (the report has them)."""
    import json

    from napari_focus_stack import executors

    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=3)

    def interrupted(self, tasks, runner, record):
        raise KeyboardInterrupt

    monkeypatch.setattr(executors.InProcess, "run", interrupted)
    assert cli_main(["batch", str(scan), "-o", str(out), "-q", "--device", "cpu"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == ["napari-focus-stack: interrupted"]
    report = json.loads((out / "batch-report.json").read_text())
    assert [s["error"] for s in report["stacks"]] == ["cancelled before it ran"] * 3
