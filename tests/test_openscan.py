"""OpenScan3 scans end to end: grouping, refusal of merged stacks, synthetic turntable scans."""
from __future__ import annotations

import numpy as np
import pytest

from napari_focus_stack.batch import BatchOptions, run_batch
from napari_focus_stack.cli import main
from napari_focus_stack.errors import InputError
from napari_focus_stack.synthetic import make_turntable_scan, save_turntable_scan

SHAPE = (72, 96)


@pytest.fixture(scope="module")
def scan():
    """3 positions x 5 frames; position 1 was bumped while it was taken."""
    return make_turntable_scan(3, 5, SHAPE, scenes="pcb", seed=7, disturbed=(1,), jitter=0.05)


@pytest.fixture()
def project(tmp_path, scan):
    save_turntable_scan(scan, tmp_path / "project")
    return tmp_path / "project"


# ---------------------------------------------------------------------------
# the synthetic turntable scan
# ---------------------------------------------------------------------------


def test_turntable_scan_shares_one_focus_sequence(scan):
    assert scan.n_positions == 3 and scan.disturbed == (1,)
    ref = scan.positions[0].reference
    for p, stack in enumerate(scan.positions):
        assert stack.n_frames == 5 and stack.frames[0].shape == SHAPE + (3,) and stack.truth.shape == SHAPE + (3,)
        assert np.allclose(stack.transforms[ref], scan.focus_transforms[ref])
        shift = max(np.abs(t[:2, 2] - f[:2, 2]).max() for t, f in zip(stack.transforms, scan.focus_transforms))
        assert (shift > 3.0) == (p == 1)  # jitter 0.05 px; the bumped position moved by 6 px
    # every position shows its own content
    assert np.abs(scan.positions[0].truth.astype(float) - scan.positions[2].truth).mean() > 10


def test_turntable_scan_is_written_with_the_firmware_names(project, scan):
    names = sorted(p.name for p in (project / "scan01").iterdir())
    assert names[:2] == ["scan01_000_fs00.jpg", "scan01_000_fs01.jpg"] and names[-1] == "scan01_002_fs04.jpg"
    assert len(names) == 15


# ---------------------------------------------------------------------------
# plans that must never run
# ---------------------------------------------------------------------------


def merged_scan(tmp_path, scan) -> tuple:
    """The frames of two positions renamed so that no tool can tell the positions apart."""
    from PIL import Image

    folder = tmp_path / "turntable"
    folder.mkdir()
    for p, stack in enumerate(scan.positions[:2]):
        for k, frame in enumerate(stack.frames):
            Image.fromarray(frame).save(folder / f"pos{p}_{k:02d}.jpg", quality=95)
    return folder, tmp_path / "out"


def test_batch_refuses_a_plan_with_repeated_frame_numbers(tmp_path, scan, capsys):
    folder, out = merged_scan(tmp_path, scan)
    assert main(["batch", str(folder), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("napari-focus-stack: nothing was done"))
    assert "pos0_00.jpg" in line and "pos1_00.jpg" in line and "--pattern" in line
    assert not out.exists()  # nothing written, not even the output folder
    assert main(["batch", str(folder), "-o", str(out), "--dry-run"]) == 2
    assert not out.exists()
    with pytest.raises(InputError, match="nothing was done.*pos0_00.jpg"):
        run_batch(folder, out, BatchOptions(device="cpu"))
    assert not out.exists()


def test_the_suggested_pattern_runs(tmp_path, scan, capsys):
    folder, out = merged_scan(tmp_path, scan)
    pattern = r"(?P<stack>.*?)[ _-]?(?P<frame>\d+)$"
    assert main(["batch", str(folder), "-o", str(out), "--pattern", pattern, "--device", "cpu", "-q"]) == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["pos0.jpg", "pos1.jpg"]


def test_openscan3_scan_folder_gives_one_image_per_position(project, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(project / "scan01"), "-o", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "mode: openscan3" in err and "3 stack(s): 3 x 5 frames" in err
    assert len(list(out.rglob("*.jpg"))) == 3


# ---------------------------------------------------------------------------
# the benchmark keeps running (tiny sizes; figures come from benchmarks/openscan.py)
# ---------------------------------------------------------------------------


def test_firmware_comparison_benchmark_runs(monkeypatch):
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    import openscan

    firmware = openscan.DEFAULT_FIRMWARE
    if not ((firmware / openscan.FIRMWARE_MODULE).is_file() or (firmware / "HEAD").exists()):
        pytest.skip(f"no OpenScan3 clone at {firmware} (set OPENSCAN3_REPO)")
    pytest.importorskip("cv2")
    res = openscan.firmware_vs_ours(firmware, (128, 160), positions=3, frames=4)
    assert len(res["rows"]) == 3 and len(res["seen"]) == 3
    assert all(15 < r["firmware_psnr"] < 60 and 15 < r["ours_psnr"] < 60 for r in res["rows"])
    assert "| mean, all |" in openscan.format_firmware(res)
