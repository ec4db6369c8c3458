"""watch_batch: stacks as they complete while the frames arrive; resume, reports, reused alignment, both watchers.

Timing-robust: the frames arrive from a background thread, and the tests wait
for events (a file appearing, an entry recorded) with generous timeouts,
never for durations; a watch that hangs is cancelled after a few minutes and
the test fails.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_focus_stack.batch import BatchOptions, run_batch, run_stack, watch
from napari_focus_stack.batch.watch import NotifyWatcher, PollingWatcher, make_watcher, watch_batch
from scans import FAST, hidden_files, openscan3_position, stacked

LONG = 600.0  # a settle time that never passes in a test
HUNG_S = 240.0  # a watch still running after this long has hung


def wait_for(condition, timeout: float = 120.0, what: str = "condition") -> None:
    """Poll `condition` until true; fail after `timeout` seconds (generous: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Background(threading.Thread):
    """Runs `fn` in a thread; :meth:`finish` joins it and re-raises what it raised."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.error = fn, None

    def run(self):
        try:
            self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def finish(self):
        self.join(60)
        assert not self.is_alive(), "the background thread hung"
        if self.error is not None:
            raise self.error


def run_watch(scan: Path, out: Path, options: BatchOptions | None = None, cancel=None, **kwargs):
    """watch_batch here, cancelled after HUNG_S at the latest (then the test fails)."""
    cancel = cancel or threading.Event()
    hung = threading.Event()

    def give_up():
        hung.set()
        cancel.set()

    timer = threading.Timer(HUNG_S, give_up)
    timer.start()
    try:
        result = watch_batch(scan, out, options or BatchOptions(**FAST), cancel=cancel, **kwargs)
    finally:
        timer.cancel()
    assert not hung.is_set(), "the watch did not end by itself"
    return result


def statuses(result) -> dict[str, str]:
    return {e["stack"]: e["status"] for e in result.stacks}


# ---------------------------------------------------------------------------
# the case: positions copied in over time
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("poll", [False, True], ids=["notifications", "polling"])
def test_positions_copied_in_over_time_are_stacked_as_they_complete(tmp_path, poll):
    source, scan, out = tmp_path / "camera", tmp_path / "scan01", tmp_path / "out"
    for position in range(3):
        openscan3_position(source, position)
    scan.mkdir()
    seen: dict[str, bool] = {}

    def scanner():
        for position in range(3):
            if position == 2:  # the first position is stacked before the third arrives (or never: 120 s)
                wait_for(stacked(out, 0).exists, what="the first position's output")
                seen["first before third"] = stacked(out, 0).exists()
            elif position == 1:
                time.sleep(2)
            for frame in sorted(source.glob(f"scan01_{position:03d}_*")):
                shutil.copy(frame, scan / frame.name)  # written in place, as the firmware does

    copier = Background(scanner)
    entries, news = [], []
    copier.start()
    # idle: longer than the scanner's pauses, so that it cannot end the watch between positions on a busy machine
    result = run_watch(scan, out, settle=3, idle_exit=4, poll=poll, on_stack=entries.append, notify=news.append)
    copier.finish()
    assert seen == {"first before third": True}
    assert [(e["stack"], e["status"]) for e in entries] == [
        ("scan01_000", "done"), ("scan01_001", "done"), ("scan01_002", "done")
    ]
    assert all(stacked(out, p).is_file() for p in range(3))
    assert stacked(out, 0).stat().st_mtime <= min(f.stat().st_mtime for f in scan.glob("scan01_002_*"))
    assert ("polling" if poll else "notifications") in news[0]
    report = json.loads((out / "batch-report.json").read_text())
    assert report["summary"]["done"] == 3 and [s["stack"] for s in report["stacks"]] == list(statuses(result))
    assert (out / "batch-report.csv").read_text().count("\n") == 4
    assert hidden_files(out) == []
    # byte for byte what a batch of the finished scan writes
    reference = tmp_path / "reference"
    run_batch(scan, reference, BatchOptions(**FAST))
    assert all(stacked(out, p).read_bytes() == stacked(reference, p).read_bytes() for p in range(3))


def test_a_stack_is_complete_when_a_later_stack_has_a_frame(tmp_path):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    openscan3_position(scan, 0)
    openscan3_position(scan, 1)[0].unlink()  # the next position has begun: fs01.. arrived, fs00 not yet
    cancel = threading.Event()

    def on_stack(entry):
        if entry["stack"] == "scan01_000":
            cancel.set()

    result = run_watch(scan, out, settle=LONG, cancel=cancel, on_stack=on_stack)
    assert statuses(result) == {"scan01_000": "done"}  # the last position waits for its settle time
    assert stacked(out, 0).is_file() and not stacked(out, 1).exists()
    assert json.loads((out / "batch-report.json").read_text())["summary"]["done"] == 1


def test_the_last_stack_is_complete_after_the_settle_time(tmp_path):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    openscan3_position(scan, 7)
    result = run_watch(scan, out, settle=1, idle_exit=1)
    assert statuses(result) == {"scan01_007": "done"} and stacked(out, 7).is_file()


# ---------------------------------------------------------------------------
# half-written files
# ---------------------------------------------------------------------------


def write_slowly(path: Path, data: bytes, pieces: int, pause: float) -> None:
    """Write `data` to `path` in `pieces` appends with `pause` seconds between them."""
    step = -(-len(data) // pieces)
    with open(path, "wb") as fh:
        for k in range(0, len(data), step):
            fh.write(data[k:k + step])
            fh.flush()
            if k + step < len(data):
                time.sleep(pause)


def watch_a_slow_frame(tmp_path, monkeypatch, pieces: int, pause: float, stable: float):
    """Watch the first position of a scan while its last frame is written in ``pieces`` appends.

    A later position is there from the start: only the slow frame holds the
    first back. Returns the watch's result, the slow frame's path and bytes,
    every decode check of a frame as (name, size, error) and the frames (name
    -> size) of every stack run.
    """
    source, scan, out = tmp_path / "camera", tmp_path / "scan01", tmp_path / "out"
    frames = openscan3_position(source, 0)
    openscan3_position(scan, 1)
    for frame in frames[:-1]:
        shutil.copy(frame, scan / frame.name)
    slow = scan / frames[-1].name
    checked = []
    real_check = watch._decode_error

    def check(path, max_pixels):
        error = real_check(path, max_pixels)
        checked.append((Path(path).name, Path(path).stat().st_size, error))
        return error

    monkeypatch.setattr(watch, "_decode_error", check)
    ran = []

    def runner(task):
        ran.append({Path(f).name: Path(f).stat().st_size for f in task.frames})
        return run_stack(task)

    data = frames[-1].read_bytes()
    writer = Background(lambda: write_slowly(slow, data, pieces=pieces, pause=pause))
    cancel = threading.Event()
    writer.start()
    result = run_watch(scan, out, settle=LONG, stable=stable, cancel=cancel, runner=runner,
                       on_stack=lambda e: cancel.set())
    writer.finish()
    return result, slow, data, checked, ran


def test_a_frame_written_in_pieces_is_not_read_while_it_grows(tmp_path, monkeypatch):
    """Pauses shorter than the stable time: the growing frame is never opened, not even to check it."""
    result, slow, data, checked, ran = watch_a_slow_frame(tmp_path, monkeypatch, pieces=6, pause=0.2, stable=2.5)
    assert statuses(result) == {"scan01_000": "done"}
    assert any(name == slow.name and size == len(data) for name, size, _ in checked)
    assert all(size == len(data) for name, size, _ in checked if name == slow.name)  # never opened while growing
    assert ran[0][slow.name] == len(data)


def test_a_half_written_frame_that_pauses_is_not_taken(tmp_path, monkeypatch):
    """Pauses longer than the stable time: its size holds for a while, but a half JPEG does not decode."""
    result, slow, data, checked, ran = watch_a_slow_frame(tmp_path, monkeypatch, pieces=3, pause=1.5, stable=0.3)
    scan, out = slow.parent, tmp_path / "out"
    early = [(size, error) for name, size, error in checked if name == slow.name and size < len(data)]
    assert early and all(error for _, error in early)  # it was looked at half-written, and refused
    assert statuses(result) == {"scan01_000": "done"}
    assert ran == [{f.name: f.stat().st_size for f in sorted(scan.glob("scan01_000_*"))}]
    assert ran[0][slow.name] == len(data)
    reference = tmp_path / "reference"
    run_batch(sorted(scan.glob("scan01_000_*")), reference, BatchOptions(naming="plain", **FAST))
    assert stacked(out, 0).read_bytes() == (reference / "scan01_000.jpg").read_bytes()


def test_a_microscope_file_is_stacked_once_it_no_longer_grows(tmp_path):
    """One z-stack per file (mode file): a TIFF gaining planes one by one is complete after the settle time."""
    from napari_focus_stack.synthetic import make_stack

    planes = make_stack("pcb", shape=(64, 80), n_frames=5, seed=1, gray=True, dtype=np.uint16).frames
    folder, out = tmp_path / "scope", tmp_path / "out"
    folder.mkdir()
    ran = []

    def runner(task):
        with tifffile.TiffFile(task.frames[0]) as tif:
            ran.append(len(tif.pages))
        return run_stack(task)

    def microscope():
        for plane in planes:  # each plane a page more, as an acquisition writes them, with pauses
            tifffile.imwrite(folder / "pos01.tif", plane, append=True, metadata=None)
            time.sleep(1.2)

    scope = Background(microscope)
    scope.start()
    # a TIFF of 2 of its 5 planes is a valid TIFF: its size holding for `stable` does not make it complete
    result = run_watch(folder, out, BatchOptions(format="tif", **FAST), mode="file", stable=0.3, settle=5,
                       idle_exit=4, runner=runner)  # idle: longer than the pauses (a lone page is no stack)
    scope.finish()
    assert statuses(result) == {"pos01": "done"} and ran == [5]
    whole = tmp_path / "whole"
    whole.mkdir()
    shutil.copy(folder / "pos01.tif", whole / "pos01.tif")
    run_batch(whole, tmp_path / "reference", BatchOptions(format="tif", **FAST), mode="file")
    assert (out / "pos01.tif").read_bytes() == (tmp_path / "reference" / "pos01.tif").read_bytes()


# ---------------------------------------------------------------------------
# resume, idle, reports, reused alignment
# ---------------------------------------------------------------------------


def test_a_restart_continues_where_the_last_watch_stopped(tmp_path):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    for position in range(2):
        openscan3_position(scan, position)
    first = run_watch(scan, out, settle=1, idle_exit=1)
    assert statuses(first) == {"scan01_000": "done", "scan01_001": "done"}
    made = {p: stacked(out, p).stat().st_mtime_ns for p in range(2)}
    openscan3_position(scan, 2)  # the scanner went on while nothing watched
    ran = []
    again = run_watch(scan, out, settle=1, idle_exit=1, runner=lambda task: ran.append(task.name) or run_stack(task))
    assert statuses(again) == {"scan01_000": "skipped", "scan01_001": "skipped", "scan01_002": "done"}
    assert ran == ["scan01_002"]
    assert {p: stacked(out, p).stat().st_mtime_ns for p in range(2)} == made
    report = json.loads((out / "batch-report.json").read_text())
    assert report["summary"]["skipped"] == 2 and report["summary"]["done"] == 1


def test_idle_exit_waits_for_nothing_pending_and_writes_reports_as_stacks_finish(tmp_path):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    openscan3_position(scan, 0)
    openscan3_position(scan, 1)
    reports = []

    def on_stack(entry):  # the report is rewritten after each stack: the one before this one is in it
        path = out / "batch-report.json"
        reports.append(json.loads(path.read_text())["summary"]["done"] if path.exists() else 0)

    result = run_watch(scan, out, settle=1, idle_exit=0.5, on_stack=on_stack)
    assert statuses(result) == {"scan01_000": "done", "scan01_001": "done"}  # the last one too, idle or not
    assert reports == [0, 1]
    assert json.loads((out / "batch-report.json").read_text())["summary"]["done"] == 2


def test_an_empty_folder_is_watched_and_the_output_folder_locked(tmp_path):
    from napari_focus_stack.batch.run import output_folder_lock
    from napari_focus_stack.errors import OutputError

    scan, out = tmp_path / "scan01", tmp_path / "out"
    scan.mkdir()
    locked = []
    cancel = threading.Event()

    def probe():
        wait_for(lambda: (out / ".napari-focus-stack" / "batch.lock").exists(), what="the lock")
        try:
            output_folder_lock(out).release()
        except OutputError as exc:
            locked.append(str(exc))
        cancel.set()

    prober = Background(probe)
    prober.start()
    result = run_watch(scan, out, settle=1, cancel=cancel)
    prober.finish()
    assert result.stacks == [] and locked and "another batch is writing" in locked[0]
    assert run_watch(scan, out, settle=1, idle_exit=0.5).stacks == []  # idle: nothing ever arrived
    output_folder_lock(out).release()  # released when the watch ends


def test_reuse_alignment_calibrates_on_the_first_complete_positions(tmp_path):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    options = BatchOptions(reuse_alignment=True, calibration_positions=2, **FAST)
    for position in range(4):
        openscan3_position(scan, position, seed=0)  # one focus sequence: the same motion at every position
    result = run_watch(scan, out, options, settle=1, idle_exit=1)
    entries = {e["stack"]: e for e in result.stacks}
    assert [e["status"] for e in entries.values()] == ["done"] * 4
    assert [cal["stacks"] for cal in result.calibration] == [["scan01_000", "scan01_001"]]
    assert entries["scan01_000"]["alignment"]["reused_from"] is None
    for name in ("scan01_002", "scan01_003"):
        assert "scan01_000, scan01_001" in entries[name]["alignment"]["reused_from"]
        assert entries[name]["alignment"]["reuse_check"] is not None
    again = run_watch(scan, out, options, settle=1, idle_exit=1)  # a restart finds them all complete
    assert set(statuses(again).values()) == {"skipped"}


def test_a_stack_whose_frames_change_after_it_was_stacked_is_stacked_again(tmp_path):
    scan, out = tmp_path / "scan01", tmp_path / "out"
    frames = openscan3_position(scan, 0)
    late = frames[-1].read_bytes()
    frames[-1].unlink()  # the camera paused longer than the settle time before the last frame
    entries, news = [], []
    cancel = threading.Event()

    def on_stack(entry):
        entries.append((entry["stack"], entry["status"], entry["n_frames"]))
        if len(entries) == 1:
            frames[-1].write_bytes(late)
        else:
            cancel.set()

    run_watch(scan, out, settle=1, cancel=cancel, on_stack=on_stack, notify=news.append)
    assert entries == [("scan01_000", "done", 3), ("scan01_000", "done", 4)]
    assert any("stacking it again" in line for line in news)


# ---------------------------------------------------------------------------
# the watchers: notifications and polling, one interface
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["notifications", "polling"])
def test_a_watcher_wakes_on_a_new_file_and_not_on_reading(tmp_path, kind):
    (tmp_path / "sub").mkdir()
    image = openscan3_position(tmp_path, 0)[0]
    watcher = NotifyWatcher(tmp_path) if kind == "notifications" else PollingWatcher(tmp_path, interval=0.1)
    watcher.start()
    try:
        image.read_bytes()  # reading is no change
        assert watcher.wait(0.5) is False
        save = Background(lambda: (time.sleep(0.2), openscan3_position(tmp_path / "sub", 3)))
        save.start()
        deadline = time.monotonic() + 60
        while not watcher.wait(1.0):  # a new file in a subfolder wakes it
            assert time.monotonic() < deadline, "no wake-up"
        save.finish()
    finally:
        watcher.stop()


def test_without_watchdog_the_folder_is_polled(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "watchdog.observers", None)  # as if watchdog were not installed
    watcher, note = make_watcher(tmp_path)
    try:
        assert isinstance(watcher, PollingWatcher) and "polling" in note
    finally:
        watcher.stop()
    assert "polling" in watch.watcher_kind()


def test_parameters_are_checked_before_watching(tmp_path):
    from napari_focus_stack.errors import InputError, ParameterError

    with pytest.raises(ParameterError, match="settle"):
        watch_batch(tmp_path, tmp_path / "out", settle=0)
    with pytest.raises(ParameterError, match="idle_exit"):
        watch_batch(tmp_path, tmp_path / "out", idle_exit=float("nan"))
    with pytest.raises(InputError, match="not found"):
        watch_batch(tmp_path / "nothing", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stacks_run_on_a_local_dask_cluster_while_watching(tmp_path):
    pytest.importorskip("distributed")
    source, scan, out = tmp_path / "camera", tmp_path / "scan01", tmp_path / "out"
    for position in range(3):
        openscan3_position(source, position)
    scan.mkdir()

    def scanner():
        for position in range(3):
            for frame in sorted(source.glob(f"scan01_{position:03d}_*")):
                shutil.copy(frame, scan / frame.name)
            if position == 1:  # the cluster took the first while the second waits for the third
                wait_for(stacked(out, 0).exists, what="the first position's output")

    copier = Background(scanner)
    copier.start()
    result = run_watch(scan, out, BatchOptions(workers=2, **FAST), settle=2, idle_exit=4)
    copier.finish()
    assert statuses(result) == {f"scan01_{p:03d}": "done" for p in range(3)}
    assert all(e["worker"].startswith("tcp://") for e in result.stacks)
    reference = tmp_path / "reference"
    run_batch(scan, reference, BatchOptions(**FAST))
    assert all(stacked(out, p).read_bytes() == stacked(reference, p).read_bytes() for p in range(3))
