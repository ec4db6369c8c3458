"""``napari-focus-stack batch --watch``: Ctrl-C, --idle-exit, a restart, the options it takes and refuses."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import napari_focus_stack
from napari_focus_stack.cli import main as cli_main
from scans import hidden_files, openscan3_position, stacked

ARGS = ["--scale-factor", "1", "--device", "cpu"]


def _watch_script(flags: Path) -> str:
    """The command line, with the second stack held in progress (a flag file says when) until interrupted."""
    return (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from napari_focus_stack import stacker\n"
        "from napari_focus_stack.cli import main\n"
        "orig = stacker.FocusStacker.stack\n"
        "calls = []\n"
        "def held(self, *args, **kwargs):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 2:\n"
        f"        Path({str(flags)!r}, 'in-progress').write_text('')\n"
        "        time.sleep(600)\n"
        "    return orig(self, *args, **kwargs)\n"
        "stacker.FocusStacker.stack = held\n"
        "sys.exit(main(['batch', *sys.argv[1:]]))\n"
    )


def test_ctrl_c_abandons_the_stack_in_progress_writes_the_reports_and_exits_130(tmp_path):
    scan, out, flags = tmp_path / "scan01", tmp_path / "out", tmp_path / "flags"
    flags.mkdir()
    for position in range(3):  # the first two are complete (a later position has begun), the third waits
        openscan3_position(scan, position)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(napari_focus_stack.__file__).resolve().parents[1]) + os.pathsep + env.get(
        "PYTHONPATH", ""
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", _watch_script(flags), str(scan), "-o", str(out), "--watch", "--settle", "600", "-q",
         *ARGS],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (flags / "in-progress").exists():  # the second stack is being stacked
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the second stack never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, stderr
    assert stderr.splitlines() == ["napari-focus-stack: interrupted"]  # one line, no traceback
    assert stacked(out, 0).is_file() and not stacked(out, 1).exists()
    assert hidden_files(out) == [] and hidden_files(scan) == []  # no partial output, no temporary file
    report = json.loads((out / "batch-report.json").read_text())
    assert [(s["stack"], s["status"]) for s in report["stacks"]] == [
        ("scan01_000", "done"), ("scan01_001", "cancelled")
    ]
    assert "scan01_001" in (out / "batch-report.csv").read_text()

    # the same command again continues: the first is complete, the second is stacked now
    code = cli_main(["batch", str(scan), "-o", str(out), "--watch", "--settle", "1", "--idle-exit", "1", "-q", *ARGS])
    assert code == 0
    report = json.loads((out / "batch-report.json").read_text())
    assert [(s["stack"], s["status"]) for s in report["stacks"]] == [
        ("scan01_000", "skipped"), ("scan01_001", "done"), ("scan01_002", "done")
    ]


def test_idle_exit_ends_the_watch_with_exit_0_and_the_summary(tmp_path, capsys):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    for position in range(2):
        openscan3_position(scan, position)
    code = cli_main(["batch", str(scan), "-o", str(out), "--watch", "--settle", "1", "--idle-exit", "1", "--poll",
                     *ARGS])
    assert code == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"watching {scan} (polling every 1 s)")
    assert "or after 1 s without a new frame; stops after 1 s without new files" in err[0]
    assert err[1].startswith("mode: openscan3")
    assert err[2].startswith("[1] scan01_000: done in ") and err[2].endswith("-> stacked_scan01_000.jpg")
    assert err[3].startswith("[2] scan01_001: done")
    assert err[4] == "no new files for 1 s: stopped watching"
    assert err[5].startswith("2 done, 0 skipped (complete), 0 failed, 0 cancelled")
    assert stacked(out, 1).is_file()


def test_a_stack_that_fails_while_watching_gives_exit_1(tmp_path, capsys):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    frames = openscan3_position(scan, 0)
    frames[1].write_bytes(frames[1].read_bytes()[:300])  # a broken frame: taken after the settle time, reported
    code = cli_main(["batch", str(scan), "-o", str(out), "--watch", "--settle", "1", "--idle-exit", "1", "-q", *ARGS])
    assert code == 1
    err = capsys.readouterr().err
    assert "scan01_000: failed" in err and "scan01_000_fs01.jpg" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--settle", "5"], "--settle only work(s) with --watch"),
        (["--idle-exit", "5", "--poll"], "--idle-exit, --poll only work(s) with --watch"),
        (["--watch", "--dry-run"], "--dry-run and --watch do not go together"),
        (["--watch", "--strict"], "--strict and --watch do not go together"),
        (["--watch", "--settle", "0"], "--settle must be a number of seconds above 0"),
        (["--watch", "--idle-exit", "-1"], "--idle-exit must be a number of seconds above 0"),
    ],
)
def test_watch_options_are_checked_before_any_work(tmp_path, capsys, argv, message):
    (tmp_path / "scan").mkdir()
    assert cli_main(["batch", str(tmp_path / "scan"), "-o", str(tmp_path / "out"), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_watching_a_folder_that_does_not_exist(tmp_path, capsys):
    assert cli_main(["batch", str(tmp_path / "nothing"), "-o", str(tmp_path / "out"), "--watch"]) == 2
    assert "not found" in capsys.readouterr().err
