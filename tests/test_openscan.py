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
        pairs = zip(stack.transforms, scan.focus_transforms, strict=True)
        shift = max(np.abs(t[:2, 2] - f[:2, 2]).max() for t, f in pairs)
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


# ---------------------------------------------------------------------------
# output names
# ---------------------------------------------------------------------------


def exif_of(path) -> dict:
    from PIL import Image

    with Image.open(path) as im:
        return dict(im.getexif())


def add_exif(files) -> None:
    """Give the frames a camera's EXIF, as the firmware's photos have."""
    from PIL import Image

    for f in files:
        with Image.open(f) as im:
            pixels = im.copy()
        ex = Image.Exif()
        ex[0x010F], ex[0x0110] = "OpenScan", "Arducam IMX519"
        pixels.save(f, quality=95, exif=ex.tobytes())


def test_openscan3_outputs_go_where_the_firmware_puts_them(tmp_path, scan, capsys):
    project = tmp_path / "project"
    files = save_turntable_scan(scan, project)
    add_exif(f for fs in files for f in fs)
    second = make_turntable_scan(2, 5, SHAPE, scenes="rocks", seed=8, scan_index=2, jitter=0.0)
    save_turntable_scan(second, project)
    # -o the project folder (here the input folder itself)
    assert main(["batch", str(project), "-o", str(project), "--device", "cpu", "-q"]) == 0
    written = sorted(p.relative_to(project).as_posix() for p in project.rglob("stacked_*"))
    assert written == [
        "scan01/stacked/stacked_scan01_000.jpg", "scan01/stacked/stacked_scan01_001.jpg",
        "scan01/stacked/stacked_scan01_002.jpg", "scan02/stacked/stacked_scan02_000.jpg",
        "scan02/stacked/stacked_scan02_001.jpg",
    ]
    assert exif_of(project / "scan01/stacked/stacked_scan01_001.jpg")[0x0110] == "Arducam IMX519"
    # a rerun finds its results, and does not take them for frames
    assert main(["batch", str(project), "-o", str(project), "--device", "cpu"]) == 0
    assert "0 done, 5 skipped" in capsys.readouterr().err
    # -o a scan folder: its stacked/ folder
    out = tmp_path / "copy" / "scan01"
    assert main(["batch", str(project / "scan01"), "-o", str(out), "--device", "cpu", "-q"]) == 0
    assert sorted(p.name for p in (out / "stacked").iterdir()) == [f"stacked_scan01_00{k}.jpg" for k in range(3)]
    # plain names
    plain = tmp_path / "plain"
    assert main(["batch", str(project), "-o", str(plain), "--naming", "plain", "--device", "cpu", "-q"]) == 0
    assert sorted(p.name for p in plain.glob("*.jpg")) == [
        "scan01_000.jpg", "scan01_001.jpg", "scan01_002.jpg", "scan02_000.jpg", "scan02_001.jpg"
    ]


# ---------------------------------------------------------------------------
# reused alignment: median of evenly spaced positions, checked per stack
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bumped_scan():
    """5 positions x 5 frames. Position 2 (a calibration position) and 1 (not one) moved while taken."""
    return make_turntable_scan(5, 5, (120, 160), scenes=("pcb", "rocks"), seed=3, disturbed=(1, 2), jitter=0.05)


def psnr_of(path, truth) -> float:
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    with Image.open(path) as im:
        image = np.asarray(im)
    inner = (slice(8, -8), slice(8, -8))
    return peak_signal_noise_ratio(truth[inner], image[inner], data_range=255)


def test_reused_alignment_is_the_median_and_is_checked_per_stack(tmp_path, bumped_scan):
    project = tmp_path / "project"
    save_turntable_scan(bumped_scan, project)
    common = dict(device="cpu", format="png")
    own = run_batch(project, tmp_path / "own", BatchOptions(**common))
    reused = run_batch(project, tmp_path / "reused", BatchOptions(reuse_alignment=True, **common))
    assert own.ok and reused.ok
    (cal,) = reused.calibration
    assert cal["stacks"] == ["scan01_000", "scan01_002", "scan01_004"]  # evenly spaced, first and last
    deviation = cal["deviation_px"]
    assert deviation["scan01_002"] > 3 and deviation["scan01_000"] < 0.5 and deviation["scan01_004"] < 0.5
    entries = {e["stack"]: e["alignment"] for e in reused.stacks}
    assert entries["scan01_003"]["reuse_check"]["fits"] and entries["scan01_003"]["reused_from"].startswith("median")
    # position 1 moved: the reused alignment does not fit, it is aligned on its own
    assert not entries["scan01_001"]["reuse_check"]["fits"] and entries["scan01_001"]["reused_from"] is None
    assert entries["scan01_001"]["reuse_check"]["error_px"] > 3
    # every position is as good as with its own alignment
    for p, stack in enumerate(bumped_scan.positions):
        name = f"scan01/stacked/stacked_scan01_{p:03d}.png"
        mine, theirs = psnr_of(tmp_path / "reused" / name, stack.truth), psnr_of(tmp_path / "own" / name, stack.truth)
        assert mine > theirs - 0.5, (p, mine, theirs)
    report = (tmp_path / "reused" / "batch-report.csv").read_text()
    assert "did not fit, aligned on its own" in report
