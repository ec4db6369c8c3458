"""Batch stacking: outputs, EXIF, reports, resume, bad input, faults, alignment reuse."""
from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_focus_stack.batch import STATE_DIR, BatchOptions, run_batch
from napari_focus_stack.errors import OutputError
from scans import (
    FAST,
    N_FRAMES,
    SHAPE,
    by_stack,
    digest,
    frames_for,
    make_scan,
    outputs,
    save_frame,
    srgb_icc,
    temp_files,
    truncate,
)

# ---------------------------------------------------------------------------
# outputs, metadata, reports
# ---------------------------------------------------------------------------


def test_openscan_batch_names_exif_icc_and_reports(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=3, orientation=6)  # rotated in the camera: pixels come out upright
    result = run_batch(scan, out, BatchOptions(**FAST))
    assert result.ok and result.counts["done"] == 3
    assert sorted(outputs(out)) == ["Ella_0_0.jpg", "Ella_0_1.jpg", "Ella_0_2.jpg"]

    with Image.open(out / "Ella_0_1.jpg") as im:
        assert im.size == (SHAPE[0], SHAPE[1])  # (W, H) of the upright image: 90 degrees turned
        exif = im.getexif()
        assert exif[0x010F] == "OpenScan" and exif[0x0110] == "Arducam IMX519"
        assert float(exif.get_ifd(0x8769)[0x920A]) == pytest.approx(4.74)
        assert exif.get(0x0112, 1) == 1
        assert im.info["icc_profile"] == srgb_icc()

    report = json.loads((out / "batch-report.json").read_text())
    assert report["grouping"]["mode"] == "openscan"
    assert report["summary"]["done"] == 3
    entry = report["stacks"][1]
    assert entry["stack"] == "Ella_0_1" and entry["status"] == "done"
    assert entry["frames"] == [f"Ella_0_1-{i}.jpg" for i in range(1, 5)]
    assert entry["reference"] == "Ella_0_1-3.jpg"
    assert 0.5 < entry["alignment"]["quality_min"] <= 1
    assert entry["outputs"]["image"] == str(out / "Ella_0_1.jpg")
    assert {"align_s", "fuse_s", "write_s", "wall_s"} <= set(entry["timings"])
    with open(out / "batch-report.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["stack"] for r in rows] == ["Ella_0_0", "Ella_0_1", "Ella_0_2"]
    assert rows[0]["status"] == "done" and rows[0]["output"].endswith("Ella_0_0.jpg")


def test_16_bit_tiff_with_depth_and_confidence_maps(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    opts = BatchOptions(format="tif", bit_depth=16, depth_maps=True, confidence_maps=True, **FAST)
    result = run_batch(scan, out, opts)
    assert result.ok
    image = tifffile.imread(out / "Ella_0_0.tif")
    assert image.dtype == np.uint16 and image.shape == (*SHAPE, 3)
    depth = tifffile.imread(out / "Ella_0_0_depth.tif")
    conf = tifffile.imread(out / "Ella_0_0_confidence.tif")
    assert depth.dtype == conf.dtype == np.float32 and depth.shape == conf.shape == SHAPE
    assert 0 <= depth.min() and depth.max() <= N_FRAMES - 1
    assert set(by_stack(result)["Ella_0_1"]["outputs"]) == {"image", "depth", "confidence"}


# ---------------------------------------------------------------------------
# resume
# ---------------------------------------------------------------------------


def test_rerun_skips_complete_stacks_and_param_changes_invalidate(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=3)
    opts = BatchOptions(**FAST)
    run_batch(scan, out, opts)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("Ella*.jpg")}

    again = run_batch(scan, out, opts)
    assert again.counts == {"done": 0, "skipped": 3, "failed": 0, "cancelled": 0}
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("Ella*.jpg")} == before
    assert by_stack(again)["Ella_0_1"]["frames"]  # the stored entry is reported again

    (out / "Ella_0_1.jpg").unlink()  # lost
    with open(out / "Ella_0_2.jpg", "r+b") as fh:  # damaged: size no longer matches
        fh.truncate(100)
    third = run_batch(scan, out, opts)
    assert [e["status"] for e in third.stacks] == ["skipped", "done", "done"]

    changed = run_batch(scan, out, BatchOptions(radius=5, **FAST))
    assert changed.counts["done"] == 3  # new parameters: our own outputs are redone


# ---------------------------------------------------------------------------
# bad input: a clear error for the stack, the other stacks finish
# ---------------------------------------------------------------------------


def _break_truncated_jpeg(scan: Path) -> tuple[str, str]:
    truncate(scan / "Ella_0_1-2.jpg")
    return "Ella_0_1", "Ella_0_1-2.jpg"


def _break_zero_byte(scan: Path) -> tuple[str, str]:
    (scan / "Ella_0_1-3.jpg").write_bytes(b"")
    return "Ella_0_1", "0 bytes"


def _break_sizes(scan: Path) -> tuple[str, str]:
    save_frame(scan / "Ella_0_1-2.jpg", np.zeros((SHAPE[0] + 8, SHAPE[1], 3), np.uint8))
    return "Ella_0_1", "same size"


def _break_gray_rgb(scan: Path) -> tuple[str, str]:
    save_frame(scan / "Ella_0_1-4.jpg", frames_for(1, gray=True)[3])
    return "Ella_0_1", "grayscale and colour"


def _break_one_frame(scan: Path) -> tuple[str, str]:
    save_frame(scan / "Ella_0_9-1.jpg", frames_for(0)[0])
    return "Ella_0_9", "at least 2 frames"


def _break_tiny_frames(scan: Path) -> tuple[str, str]:
    for i in range(1, N_FRAMES + 1):
        save_frame(scan / f"Ella_0_1-{i}.jpg", frames_for(1)[i - 1][:3, :3].copy())
    return "Ella_0_1", "3 x 3 pixels, too small to stack"


@pytest.mark.parametrize(
    "breaker",
    [_break_truncated_jpeg, _break_zero_byte, _break_sizes, _break_gray_rgb, _break_one_frame, _break_tiny_frames],
)
def test_bad_stack_fails_clearly_and_others_finish(tmp_path, breaker):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=3)
    (scan / "notes.txt").write_text("not an image")
    bad, words = breaker(scan)
    before = digest(scan)
    result = run_batch(scan, out, BatchOptions(**FAST))
    entries = by_stack(result)
    assert entries[bad]["status"] == "failed"
    assert words in entries[bad]["error"]
    assert not (out / f"{bad}.jpg").exists()
    others = [e for name, e in entries.items() if name != bad]
    assert others and all(e["status"] == "done" for e in others)
    assert digest(scan) == before
    report = json.loads((out / "batch-report.json").read_text())
    assert any(p["kind"] == "ignored" and "notes.txt" in p["files"] for p in report["grouping"]["problems"])


@pytest.mark.parametrize("fault", ["corrupt_tiff", "bit_depth"])
def test_bad_tiff_stack(tmp_path, fault):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2, ext="tif")
    if fault == "corrupt_tiff":
        p = scan / "Ella_0_1-2.tif"
        data = bytearray(p.read_bytes())
        data[8:] = os.urandom(len(data) - 8)
        p.write_bytes(bytes(data))
        words = "Ella_0_1-2.tif"
    else:
        tifffile.imwrite(scan / "Ella_0_1-2.tif", frames_for(1, dtype=np.uint16)[1], photometric="rgb")
        words = "bit depth"
    result = run_batch(scan, out, BatchOptions(**FAST))
    entries = by_stack(result)
    assert entries["Ella_0_1"]["status"] == "failed" and words in entries["Ella_0_1"]["error"]
    assert entries["Ella_0_0"]["status"] == "done"
    assert (out / "Ella_0_0.tif").exists() and not (out / "Ella_0_1.tif").exists()


def test_noise_frame_is_excluded_and_unrelated_frames_fail(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    rng = np.random.default_rng(0)
    save_frame(scan / "Ella_0_0-1.jpg", rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8))
    for i in range(1, N_FRAMES + 1):  # every frame of stack 1 is unrelated noise
        save_frame(scan / f"Ella_0_1-{i}.jpg", rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8))
    result = run_batch(scan, out, BatchOptions(**FAST))
    entries = by_stack(result)
    noisy = entries["Ella_0_0"]
    assert noisy["status"] == "done"
    assert [e["name"] for e in noisy["excluded"]] == ["Ella_0_0-1.jpg"]
    assert noisy["excluded"][0]["reason"] and any("Ella_0_0-1.jpg" in w for w in noisy["warnings"])
    with open(out / "batch-report.csv", newline="", encoding="utf-8") as fh:
        row = next(r for r in csv.DictReader(fh) if r["stack"] == "Ella_0_0")
    assert row["n_excluded"] == "1" and "Ella_0_0-1.jpg" in row["excluded"]
    unrelated = entries["Ella_0_1"]
    assert unrelated["status"] == "failed" and "no frame could be aligned" in unrelated["error"]
    assert not (out / "Ella_0_1.jpg").exists()


def test_output_folder_not_writable(tmp_path):
    scan = tmp_path / "scan"
    make_scan(scan, poses=1)
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="output folder"):
        run_batch(scan, blocker / "out", BatchOptions(**FAST))
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            with pytest.raises(OutputError, match="not writable"):
                run_batch(scan, ro, BatchOptions(**FAST))
        finally:
            ro.chmod(0o700)


def test_disk_full_during_write_leaves_no_partial_file(tmp_path, monkeypatch):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=3)
    real_save = Image.Image.save

    def save(self, fp, *args, **kwargs):
        if "Ella_0_1" in str(getattr(fp, "name", fp)):
            fp.write(b"\xff\xd8 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", save)
    result = run_batch(scan, out, BatchOptions(**FAST))
    entries = by_stack(result)
    assert entries["Ella_0_1"]["status"] == "failed" and "disk is full" in entries["Ella_0_1"]["error"]
    assert entries["Ella_0_0"]["status"] == entries["Ella_0_2"]["status"] == "done"
    assert not (out / "Ella_0_1.jpg").exists()
    assert temp_files(out) == []
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert run_batch(scan, out, BatchOptions(**FAST)).counts == {"done": 1, "skipped": 2, "failed": 0, "cancelled": 0}


def test_non_ascii_and_spaces_in_paths(tmp_path):
    scan, out = tmp_path / "scän földer", tmp_path / "out put ü"
    make_scan(scan, poses=2, name="Éllà 0")
    result = run_batch(scan, out, BatchOptions(**FAST))
    assert result.ok
    assert sorted(outputs(out)) == ["Éllà 0_0.jpg", "Éllà 0_1.jpg"]
    assert "Éllà 0_1" in (out / "batch-report.json").read_text(encoding="utf-8")


def test_inputs_never_modified_even_when_output_is_input(tmp_path):
    scan = tmp_path / "scan"
    make_scan(scan, poses=3)
    # a stray file with the name a result would get: it must survive
    Image.fromarray(np.full((*SHAPE, 3), 7, np.uint8)).save(scan / "Ella_0_2.jpg")
    before = digest(scan)
    for overwrite in (False, False, True):
        result = run_batch(scan, scan, BatchOptions(overwrite=overwrite, depth_maps=True, **FAST))
        entries = by_stack(result)
        assert entries["Ella_0_2"]["status"] == "failed" and "never overwritten" in entries["Ella_0_2"]["error"]
        assert entries["Ella_0_0"]["status"] in ("done", "skipped")
        # earlier results in the folder are not taken for frames
        assert result.plan.mode == "openscan"
        assert [f.name for f in result.plan.unmatched] == ["Ella_0_2.jpg"]
        after = digest(scan)
        assert {k: after[k] for k in before} == before
    assert (scan / "Ella_0_0.jpg").exists() and (scan / "Ella_0_1_depth.tif").exists()


def test_in_place_reruns_never_take_earlier_outputs_for_frames(tmp_path):
    scan = tmp_path / "scan"
    make_scan(scan, poses=2)
    frames = digest(scan)
    runs = [
        dict(depth_maps=True),
        dict(),  # without maps: the maps of the first run stay, and are not frames
        dict(depth_maps=True),
        dict(depth_maps=True, overwrite=True),
        dict(format="png", confidence_maps=True),  # another format: the JPEG results are not frames either
    ]
    for extra in runs:
        result = run_batch(scan, scan, BatchOptions(**extra, **FAST))
        assert result.ok, (extra, result.stacks)
        assert [s.name for s in result.plan.stacks] == ["Ella_0_0", "Ella_0_1"]
        assert all(len(s.frames) == N_FRAMES for s in result.plan.stacks)
        assert result.plan.unmatched == [] and result.plan.problems == [], (extra, result.plan.problems)
        after = digest(scan)
        assert {k: after[k] for k in frames} == frames
    assert (scan / "Ella_0_1.png").exists() and (scan / "Ella_0_1_confidence.tif").exists()


def test_two_stacks_never_write_one_file(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    for i, frame in enumerate(frames_for(0), start=1):
        save_frame(scan / "A" / f"IMG_{i}.tif", frame)
        save_frame(scan / "A_depth" / f"IMG_{i}.tif", frame)
    result = run_batch(scan, out, BatchOptions(depth_maps=True, **FAST))
    entries = by_stack(result)
    assert entries["A"]["status"] == "done"
    assert entries["A_depth"]["status"] == "failed" and "also an output of the stack A" in entries["A_depth"]["error"]
    assert tifffile.imread(out / "A_depth.tif").dtype == np.float32  # A's depth map, not overwritten


def test_folder_mode_with_the_output_inside_the_scan(tmp_path):
    scan = tmp_path / "scan"
    for pose in (1, 2):
        for i, frame in enumerate(frames_for(pose), start=1):
            save_frame(scan / f"pose {pose}" / f"IMG_{i:03d}.tif", frame)
    for _ in range(2):  # the second time, the results folder is not taken for a stack
        result = run_batch(scan, scan / "stacked", BatchOptions(**FAST))
        assert result.plan.mode == "folder" and [s.name for s in result.plan.stacks] == ["pose 1", "pose 2"]
    assert result.counts["skipped"] == 2
    assert tifffile.imread(scan / "stacked" / "pose 2.tif").shape == (*SHAPE, 3)


def test_foreign_output_is_not_replaced_without_overwrite(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    out.mkdir()
    (out / "Ella_0_0.jpg").write_bytes(b"someone else's")
    entries = by_stack(run_batch(scan, out, BatchOptions(**FAST)))
    assert entries["Ella_0_0"]["status"] == "failed" and "--overwrite" in entries["Ella_0_0"]["error"]
    assert (out / "Ella_0_0.jpg").read_bytes() == b"someone else's"
    assert entries["Ella_0_1"]["status"] == "done"
    assert run_batch(scan, out, BatchOptions(overwrite=True, **FAST)).counts["done"] == 2


def test_cancel_stops_between_stacks_without_partial_files(tmp_path):
    import threading

    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=4)
    stop = threading.Event()
    seen = []

    def progress(stack, done, total, stage):
        seen.append(stack)
        if stack == "Ella_0_1" and done == 3:
            stop.set()

    result = run_batch(scan, out, BatchOptions(**FAST), progress=progress, cancel=stop)
    assert [e["status"] for e in result.stacks] == ["done", "cancelled", "cancelled", "cancelled"]
    assert sorted(outputs(out)) == ["Ella_0_0.jpg"]
    assert temp_files(out) == []
    assert run_batch(scan, out, BatchOptions(**FAST)).counts == {"done": 3, "skipped": 1, "failed": 0, "cancelled": 0}


# ---------------------------------------------------------------------------
# alignment reuse
# ---------------------------------------------------------------------------


def test_reuse_alignment_from_first_stack(tmp_path):
    scan = tmp_path / "scan"
    make_scan(scan, poses=3)
    for i in range(1, N_FRAMES):  # a stack with one frame fewer cannot reuse it
        save_frame(scan / f"Ella_0_7-{i}.jpg", frames_for(1)[i - 1])
    plain = run_batch(scan, tmp_path / "plain", BatchOptions(**FAST))
    # one calibration stack, no fit check: these synthetic poses do not share a geometry
    reuse = dict(reuse_alignment=True, calibration_positions=1, reuse_tolerance=0, **FAST)
    reused = run_batch(scan, tmp_path / "reused", BatchOptions(**reuse))
    assert reused.ok
    entries = by_stack(reused)
    assert entries["Ella_0_0"]["alignment"]["reused_from"] is None
    assert entries["Ella_0_1"]["alignment"]["reused_from"] == "Ella_0_0"
    assert entries["Ella_0_7"]["alignment"]["reused_from"] is None
    assert any("alignment estimated for this stack" in w for w in entries["Ella_0_7"]["warnings"])
    # the stack the alignment comes from is unchanged
    a = np.asarray(Image.open(tmp_path / "plain" / "Ella_0_0.jpg"))
    b = np.asarray(Image.open(tmp_path / "reused" / "Ella_0_0.jpg"))
    assert np.array_equal(a, b)
    # the other poses are warped with the first stack's transforms (the synthetic
    # poses do not share a geometry, so their images are not compared)
    def geometry(entry):
        keys = ("scale", "rotation_deg", "shift_x", "shift_y")
        return np.array([[f[k] for k in keys] for f in entry["alignment"]["frames"]])

    for name in ("Ella_0_1", "Ella_0_2"):
        np.testing.assert_allclose(geometry(entries[name]), geometry(entries["Ella_0_0"]), atol=1e-9)
        assert not np.allclose(geometry(entries[name]), geometry(by_stack(plain)[name]))  # not estimated
    assert plain.ok
    # resumed: the stored alignment is used again, so nothing changes
    again = run_batch(scan, tmp_path / "reused", BatchOptions(**reuse))
    assert again.counts["skipped"] == 4


def test_reuse_alignment_from_calibration_stack(tmp_path):
    scan, out, cal = tmp_path / "scan", tmp_path / "out", tmp_path / "calibration"
    make_scan(scan, poses=2)
    for i, frame in enumerate(frames_for(0), start=1):
        save_frame(cal / f"cal_{i}.jpg", frame)
    result = run_batch(scan, out, BatchOptions(calibration=str(cal), **FAST))
    assert result.ok
    same, other = by_stack(result)["Ella_0_0"]["alignment"], by_stack(result)["Ella_0_1"]["alignment"]
    assert same["reused_from"] == "calibration" and same["reuse_check"]["fits"]  # the calibration's own frames
    # pose 1 was shot with another geometry: the reused alignment does not fit, it is aligned on its own
    assert other["reused_from"] is None and not other["reuse_check"]["fits"]
    assert (out / STATE_DIR / "calibration.json").exists()
    assert run_batch(scan, out, BatchOptions(calibration=str(cal), **FAST)).counts["skipped"] == 2




def test_max_pixels_refuses_large_frames_and_says_how_to_raise_it(tmp_path):
    from PIL import Image as PILImage

    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=1)
    before = PILImage.MAX_IMAGE_PIXELS
    result = run_batch(scan, out, BatchOptions(max_pixels=1000, **FAST))  # frames are 64 x 80 = 5120 pixels
    entry = result.stacks[0]
    assert entry["status"] == "failed" and "Ella_0_0-1.jpg" in entry["error"]
    assert "raise the limit with max_pixels=N (--max-pixels N on the command line)" in entry["error"]
    assert PILImage.MAX_IMAGE_PIXELS == before
    assert run_batch(scan, out, BatchOptions(max_pixels=6000, **FAST)).ok


def test_workers_are_capped_at_the_stacks_and_the_cores(tmp_path, monkeypatch):
    """--workers 100000: no stack "needs 0.0 GiB of 0.0 GiB", no 100000 Dask workers; one line says so."""
    from napari_focus_stack import executors
    from napari_focus_stack.batch import plan_batch
    from napari_focus_stack.errors import FocusStackWarning

    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=3)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    # the memory check shares the machine among the stacks that run at once, not among 100000
    _, jobs = plan_batch(scan, out, BatchOptions(workers=100000, **FAST))
    assert [j.state for j in jobs] == ["run"] * 3

    started = []

    class Cluster:  # records what a local cluster would be asked for; runs in this process
        def __init__(self, scheduler, workers, retries=2, progress=None, is_cancelled=lambda: False):
            started.append(workers)
            self.inner = executors.InProcess(retries, is_cancelled)

        def run(self, *args):
            return self.inner.run(*args)

        def close(self):
            pass

    monkeypatch.setattr("napari_focus_stack.batch.run.DaskExecutor", Cluster)
    with pytest.warns(FocusStackWarning, match=r"^100000 workers asked for, 3 stack\(s\) to run on 2 core\(s\): "
                                                 r"running 2 worker\(s\)$"):
        result = run_batch(scan, out, BatchOptions(workers=100000, **FAST))
    assert result.ok and started == [2]
    assert json.loads((out / "batch-report.json").read_text())["options"]["workers"] == 2
    # one stack left to run: no cluster at all
    (out / "Ella_0_1.jpg").unlink()
    with pytest.warns(FocusStackWarning, match=r"1 stack\(s\) to run on 2 core\(s\): running 1 worker\(s\)"):
        assert run_batch(scan, out, BatchOptions(workers=64, **FAST)).counts == {
            "done": 1, "skipped": 2, "failed": 0, "cancelled": 0}
    assert started == [2]


def test_a_second_batch_into_the_same_output_folder_refuses_with_one_line(tmp_path, capsys):
    """Two batches into one folder would take each other's temporary files for a killed run's."""
    from napari_focus_stack.cli import main
    from napari_focus_stack.io.atomic import FileLock

    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    (out / STATE_DIR).mkdir(parents=True)
    holder = "process 4242 on scanner, since 2026-12-01 10:00:00"
    with FileLock(out / STATE_DIR / "batch.lock", holder):  # the first batch, still running
        code = main(["batch", str(scan), "-o", str(out), "-q", "--device", "cpu"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err == [
            f"napari-focus-stack: error: another batch is writing into {out.absolute()} ({holder}); "
            "wait for it to finish, or choose another output folder"
        ]
        assert outputs(out) == {} and temp_files(out) == []
    # the first batch has finished (or was killed: the system releases its lock either way)
    result = run_batch(scan, out, BatchOptions(**FAST))
    assert result.ok and sorted(outputs(out)) == ["Ella_0_0.jpg", "Ella_0_1.jpg"]
    with FileLock(out / STATE_DIR / "batch.lock", "next"):  # and released it when done
        pass


def test_a_write_protected_output_fails_its_stack_before_any_work(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    assert run_batch(scan, out, BatchOptions(**FAST)).ok
    kept = out / "Ella_0_1.jpg"
    before = kept.read_bytes()
    kept.chmod(0o444)
    result = run_batch(scan, out, BatchOptions(overwrite=True, **FAST))
    failed = by_stack(result)["Ella_0_1"]
    assert failed["status"] == "failed" and "write-protected (mode 444)" in failed["error"]
    assert failed["timings"] == {}  # refused when planned, not after the work
    assert by_stack(result)["Ella_0_0"]["status"] == "done"
    assert kept.read_bytes() == before and temp_files(out) == []
