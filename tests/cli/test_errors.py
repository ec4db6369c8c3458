"""One error boundary: user errors are one line and exit 2; a bug shows its traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import napari_focus_stack
from napari_focus_stack.cli import main

BUG = "operands could not be broadcast together with shapes (3,4) (4,3)"


@pytest.fixture()
def frames(tmp_path, small_stack):
    from napari_focus_stack.synthetic import save_stack

    return save_stack(small_stack, tmp_path / "frames", fmt="png")


@pytest.fixture()
def broken_merge(monkeypatch):
    from napari_focus_stack.fusion import PyramidFusion

    def merge(self, index, prep):
        raise ValueError(BUG)

    monkeypatch.setattr(PyramidFusion, "merge", merge)


def _env() -> dict:
    env = dict(os.environ)
    src = str(Path(napari_focus_stack.__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_a_bug_in_stack_is_not_shown_as_a_user_error(frames, tmp_path, broken_merge, capsys):
    with pytest.raises(ValueError, match="operands could not be broadcast"):
        main(["stack", *map(str, frames), "-o", str(tmp_path / "o.png"), "-q", "--device", "cpu"])
    assert "error:" not in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_a_bug_exits_1_with_its_traceback(frames, tmp_path):
    script = (
        "import sys\n"
        "from napari_focus_stack.fusion import PyramidFusion\n"
        "from napari_focus_stack.cli import main\n"
        "def merge(self, index, prep):\n"
        f"    raise ValueError({BUG!r})\n"
        "PyramidFusion.merge = merge\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "stack", *map(str, frames), "-o", str(tmp_path / "o.png"), "-q",
         "--device", "cpu"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and f"ValueError: {BUG}" in proc.stderr
    assert "napari-focus-stack: error:" not in proc.stderr


def test_a_bug_in_batch_is_retried_and_reported_as_unexpected(tmp_path, broken_merge, capsys):
    from scans import make_scan

    make_scan(tmp_path / "scan", poses=1)
    code = main(["batch", str(tmp_path / "scan"), "-o", str(tmp_path / "out"), "--retries", "1", "--device", "cpu"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"unexpected error after 2 attempt(s): ValueError: {BUG}" in err


def test_an_os_error_of_the_command_line_is_a_user_error(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert main(["demo", str(blocker / "demo"), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file.txt" in err[0] and "choose another folder" in err[0]
