"""The benchmark scripts must keep running (tiny sizes; the figures come from benchmarks/run.py)."""
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture()
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))


def test_quality_scene_meets_targets(bench_path):
    import quality

    row = quality.evaluate_case("checker", (192, 256), 6, seed=5, peers=False)
    assert row["gap_db"] < 1.0
    assert row["align_err_px"] < 0.1
    assert row["depth_within_1"] > 0.9
    assert row["pre_psnr"] > row["psnr"] - 1.0  # the fusion alone, of frames aligned with the truth
    assert "| checker |" in quality.format_quality([row])
    # without focusweave (NaN figures) only the oracle target is checked
    assert all("focusweave" not in line for line in quality.check_targets([row]))


def test_quality_masks_and_targets(bench_path):
    import quality
    from napari_focus_stack.synthetic import make_stack

    stack = make_stack("rocks", shape=(96, 128), n_frames=4, seed=1, occluders="wires")
    m = quality.masks(stack)
    assert m["band"].any() and m["flat"].any()
    assert not m["band"][:quality.BORDER].any()
    row = {"case": "x", "group": "occlusion", "psnr": 30.0, "oracle_psnr": 30.5, "fw_psnr": 29.0,
           "pre_psnr": 30.0, "fwpre_psnr": 29.8, "band": 25.0, "fw_band": 24.0, "pre_band": 25.0, "fwpre_band": 24.9}
    missed = quality.check_targets([row])
    assert len(missed) == 3 and all(line.startswith("x:") for line in missed)


def test_gpu_benchmark_runs_on_cpu():
    proc = subprocess.run(
        [sys.executable, str(BENCH / "gpu.py"), "--device", "cpu", "--shape", "240", "320", "--frames", "3",
         "--repeats", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "parity PSNR vs CPU" in proc.stdout and "end to end from JPEG files" in proc.stdout


def test_replace_section(tmp_path, bench_path):
    import run

    doc = tmp_path / "b.md"
    doc.write_text("# B\n\n<!-- engine -->\nold\n<!-- /engine -->\n\n<!-- batch -->\nkeep\n<!-- /batch -->\n")
    run.replace_section("engine", "new", doc)
    text = doc.read_text()
    assert "new" in text and "old" not in text and "keep" in text


def test_microscopy_benchmark_runs():
    proc = subprocess.run(
        [sys.executable, str(BENCH / "microscopy.py"), "--t", "2", "--z", "4", "--size", "64"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 2 time points, alignment reused |" in proc.stdout and "Reusing the alignment saves" in proc.stdout


def test_retouch_benchmark_runs(bench_path, tmp_path):
    import retouch

    paths = retouch.synthetic_frames(tmp_path, (400, 480), n=3)
    row = retouch.measure(paths, strokes=2)
    assert row["shape"] == (400, 480) and row["frames"] == 3
    assert all(row[k] > 0 for k in ("new", "same", "erase", "fill", "undo"))


def test_stage_profile_counts_each_stage_once(bench_path, tmp_path):
    # benchmarks/profile_stages.py: the timers wrap the stage functions where they are used, and the
    # stages' own times add up to no more than the run
    import profile_stages
    from napari_focus_stack.synthetic import make_stack, save_stack

    frames = [str(p) for p in save_stack(make_stack("pcb", shape=(160, 200), n_frames=4, seed=1), tmp_path / "f",
                                         fmt="jpg")]
    work = tmp_path / "w"
    work.mkdir()
    res = profile_stages.profile(frames, work, depth=True)  # the timers come out again afterwards
    stages = res["stages"]
    for name in ("decode", "align", "warp", "pyramid", "focus", "decision", "accumulate", "depth", "encode"):
        assert stages.get(name, 0) > 0, name
    assert sum(stages.values()) <= res["serial_s"] * 1.01
    assert "| floor: decode every frame once" in profile_stages.table({"x": res})
    from napari_focus_stack import fusion, pyramid

    assert not hasattr(pyramid.laplacian_pyramid, "__wrapped__") and not hasattr(fusion.focus_measure, "__wrapped__")
