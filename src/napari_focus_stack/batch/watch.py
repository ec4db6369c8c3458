"""Stacking while the scanner shoots: :func:`watch_batch` (``batch FOLDER --watch``).

A turntable scan of hundreds of positions takes long on a Raspberry Pi;
stacking each position while the turntable moves to the next saves most of
the wait (OpenScan3 issue #126). Microscopes writing one z-stack per file,
per position or time point, are the same case. The watch keeps listing the
folder and stacks every stack as soon as it is complete, with the batch's
own pieces: the grouping (:func:`~napari_focus_stack.grouping.detect_stacks`),
the planning (:func:`~.plan.plan_batch`: resume markers, outputs checked),
the executors (in this process, or a local Dask cluster with ``workers``),
the reused alignment and the reports, rewritten as stacks finish. The output
folder's lock is held for the whole watch.

When is a frame taken? When its size and date have not changed for
:data:`STABLE_S` seconds and it decodes (through the project's readers; a
JPEG at 1/8 size, which still reads every byte, so that a half-written
frame, without its end-of-image marker, is never taken). A file still
growing is never opened by the watch (the grouping reads names only, and
the headers of TIFFs to count their pages). A file that does not decode
once it has not changed for ``settle`` seconds is taken as it is: its stack
fails with the reader's message, as in a batch, and is stacked again if the
file changes.

When is a stack complete? When all its frames are taken and

* a frame of a later stack (in the grouping's order: OpenScan3 names its
  positions, and its scans, in order) has arrived, or
* no frame of it has arrived or changed for ``settle`` seconds;
* a microscope file holding a whole z-stack (grouping mode ``file``): when
  it has not grown for ``settle`` seconds.

Stacks complete when the watch starts are stacked first (or skipped when an
earlier run finished them: a restart with the same command continues where
it stopped). A stack whose frames change after it was stacked (a frame
arriving after the settle time) is stacked again. With a reused alignment
the calibration stacks are the first ``calibration_positions`` complete
stacks of each scan (of the scan's number of frames, that of its first
stack); the stacks after them wait for them, then reuse their median
alignment with the batch's fit check.

The folder is watched with the file system's notifications
(:class:`NotifyWatcher`, through watchdog: inotify on Linux, FSEvents on
macOS, ReadDirectoryChangesW on Windows) where watchdog is installed, else
by listing it every :data:`POLL_S` seconds (:class:`PollingWatcher`); both
only wake the watch, which lists the folder itself. Network file systems
(an SMB or NFS share of the scanner's folder) send no notifications for
files written by another machine: use ``poll=True`` (``--poll``) there.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._runtime import cancel_check, pixel_limit
from ..errors import FocusStackError, InputError, ParameterError
from ..executors import ProgressCallback
from ..grouping import Plan, Stack, detect_stacks, path_key
from ..io import is_image_name, read_image
from .markers import params_hash
from .options import BatchOptions
from .plan import StackJob, known_outputs, plan_batch, reuse_hash, stack_names, stack_outputs
from .report import BatchResult, write_reports
from .run import (
    Recorder,
    capped_workers,
    check_output_dir,
    explicit_calibration,
    fatal_line,
    make_executor,
    output_folder_lock,
    reuse_alignment,
    split_sources,
)

__all__ = [
    "POLL_S",
    "SETTLE_S",
    "STABLE_S",
    "NotifyWatcher",
    "PollingWatcher",
    "list_images",
    "make_watcher",
    "watch_batch",
    "watcher_kind",
]

#: Default ``settle``: seconds without a new frame after which a stack is complete.
SETTLE_S = 10.0
#: A file is taken once its size and date have not changed for this many seconds (and it decodes).
STABLE_S = 1.0
#: Seconds between two listings of the folder when polling.
POLL_S = 1.0
#: With notifications, the folder is listed at least this often anyway (events can be lost).
RESCAN_S = 10.0
#: Shortest pause between two listings (a file written in many pieces sends many events).
MIN_TICK_S = 0.2
#: Longest the watch waits without looking at its cancel flag.
CANCEL_CHECK_S = 0.25

Stamp = tuple[int, int]  # size, mtime in ns


# ---------------------------------------------------------------------------
# the folder: listing and watching
# ---------------------------------------------------------------------------


def list_images(root: Path, skip: Collection[str] = ()) -> dict[str, tuple[Path, Stamp]]:
    """Every image file below `root` with its size and date: ``{path_key: (path, (size, mtime_ns))}``.

    The files the grouping sees: hidden files and folders are left out, and
    so are the paths in `skip` (:func:`~napari_focus_stack.grouping.path_key`
    of the outputs and the output folder); folder links are not followed.
    """
    found: dict[str, tuple[Path, Stamp]] = {}
    folders = [Path(root)]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue  # removed meanwhile, or unreadable: the grouping says what it cannot list
        for e in entries:
            if e.name.startswith("."):
                continue
            key = path_key(e.path)
            if key in skip:
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    folders.append(Path(e.path))
                    continue
                if not is_image_name(e.name) or not e.is_file():
                    continue
                st = e.stat()
            except OSError:
                continue
            found[key] = (Path(e.path), (st.st_size, st.st_mtime_ns))
    return found


class PollingWatcher:
    """Wakes the watch when the folder's image files change, found by listing it every `interval` seconds.

    Works everywhere, network shares included.

    Parameters
    ----------
    root : path-like
    interval : float
        Seconds between two listings.
    skip : collection of str
        Paths left out (see :func:`list_images`); may grow while watching.
    """

    kind = "polling"

    def __init__(self, root: str | os.PathLike, interval: float = POLL_S, skip: Collection[str] = ()):
        self.root, self.interval, self.skip = Path(root), float(interval), skip
        self._listing: dict | None = None
        self._next_listing = 0.0
        self._stopped = threading.Event()

    def describe(self) -> str:
        return f"polling every {self.interval:g} s"

    def start(self) -> None:
        self._listing = list_images(self.root, self.skip)
        self._next_listing = time.monotonic() + self.interval

    def stop(self) -> None:
        self._stopped.set()

    def wait(self, timeout: float) -> bool:
        """Block until the image files change (True) or `timeout` seconds pass (False).

        The folder is listed every `interval` seconds however often this is called.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            now = time.monotonic()
            if now >= self._next_listing:
                self._next_listing = now + self.interval
                listing = list_images(self.root, self.skip)
                if listing != self._listing:
                    self._listing = listing
                    return True
            if now >= deadline or self._stopped.wait(min(deadline, self._next_listing) - now):
                return False


class NotifyWatcher:
    """Wakes the watch on the file system's notifications about the folder (through watchdog).

    Parameters
    ----------
    root : path-like
        Watched with its subfolders, those created later included.

    Raises
    ------
    ImportError
        watchdog is not installed, or has no notifications on this system
        (it would poll).
    """

    kind = "notifications"

    def __init__(self, root: str | os.PathLike):
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        if issubclass(Observer, PollingObserver):
            raise ImportError("watchdog has no file system notifications on this system")
        self.root = Path(root)
        self._event = threading.Event()
        event = self._event

        class _Wake(FileSystemEventHandler):
            def on_any_event(self, e) -> None:
                # reading a file (ours too: the frames being stacked) is no change
                if e.event_type not in ("opened", "closed_no_write"):
                    event.set()

        self._observer = Observer()
        self._observer.schedule(_Wake(), str(self.root), recursive=True)
        self._name = type(self._observer).__name__.replace("Observer", "").lower() or "native"

    def describe(self) -> str:
        return f"file system notifications ({self._name})"

    def start(self) -> None:
        """Start watching; OSError where the system refuses (e.g. Linux's limit of inotify watches)."""
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(timeout=5)

    def wait(self, timeout: float) -> bool:
        """Block until something in the folder changes (True) or `timeout` seconds pass (False)."""
        fired = self._event.wait(max(0.0, timeout))
        self._event.clear()
        return fired


def make_watcher(
    root: str | os.PathLike, poll: bool = False, skip: Collection[str] = (), interval: float = POLL_S
) -> tuple[NotifyWatcher | PollingWatcher, str | None]:
    """A started watcher of `root`: notifications where they can be had, else polling; and why it polls.

    Returns
    -------
    (watcher, note)
        `note` says why notifications are not used (None when they are, or
        when `poll` asked for polling).
    """
    note = None
    if not poll:
        try:
            watcher: NotifyWatcher | PollingWatcher = NotifyWatcher(root)
            watcher.start()
            return watcher, None
        except ImportError as exc:
            note = f"no file system notifications ({exc}): polling"
        except OSError as exc:  # e.g. inotify's limit of watches
            note = f"file system notifications failed ({exc.strerror or exc}): polling"
    watcher = PollingWatcher(root, interval, skip)
    watcher.start()
    return watcher, note


def watcher_kind() -> str:
    """How ``batch --watch`` would watch a folder here, in words (for ``napari-focus-stack info``)."""
    try:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver
    except ImportError:
        return f"polling every {POLL_S:g} s (watchdog is not installed; pip install watchdog for notifications)"
    try:
        from importlib.metadata import version as _version

        version = _version("watchdog")
    except Exception:  # noqa: BLE001 - only words for the user
        version = "?"
    if issubclass(Observer, PollingObserver):
        return f"polling every {POLL_S:g} s (watchdog {version} has no notifications on this system)"
    return f"file system notifications (watchdog {version}, {Observer.__name__}); --poll for network shares"


# ---------------------------------------------------------------------------
# the watch
# ---------------------------------------------------------------------------


@dataclass
class _Seen:
    """A file as the watch has seen it."""

    path: Path
    stamp: Stamp
    since: float  # when its stamp last changed (or it appeared), on the watch's clock
    checked: Stamp | None = None  # the stamp of the last decode check
    error: str | None = None  # why it did not decode then


def watch_batch(
    folder: str | os.PathLike,
    output_dir: str | os.PathLike,
    options: BatchOptions | None = None,
    *,
    mode: str = "auto",
    stack_size: int | None = None,
    pattern: str | None = None,
    settle: float = SETTLE_S,
    idle_exit: float | None = None,
    poll: bool = False,
    stable: float = STABLE_S,
    progress: ProgressCallback | None = None,
    on_stack: Callable[[dict], None] | None = None,
    notify: Callable[[str], None] | None = None,
    cancel: Callable[[], bool] | threading.Event | None = None,
    runner: Callable[..., dict] | None = None,
) -> BatchResult:
    """Watch a folder and stack each stack as soon as it is complete, until cancelled or idle.

    See the module's description for when a frame is taken and a stack is
    complete. The reports (``batch-report.json`` and ``.csv``) are
    rewritten as stacks finish; resume markers are those of
    :func:`~napari_focus_stack.batch.run_batch`, so a restart continues.

    Parameters
    ----------
    folder : path-like
        The folder the frames arrive in (an OpenScan3 scan or project
        folder, a microscope's export folder); it must exist.
    output_dir : path-like
        As for :func:`~napari_focus_stack.batch.run_batch`; locked for the whole watch.
    options : BatchOptions, optional
    mode, stack_size, pattern
        Grouping, see :func:`~napari_focus_stack.grouping.detect_stacks`.
    settle : float
        Seconds without a new frame after which a stack is complete.
    idle_exit : float, optional
        Return after this many seconds without a new or changed file, once
        nothing is waiting or running. Default: watch until cancelled.
    poll : bool
        List the folder every :data:`POLL_S` seconds instead of using the
        file system's notifications (network shares send none).
    stable : float
        Seconds a file's size and date must hold before it is read.
    progress : callable(stack, done, total, stage), optional
        Per-frame progress, as for ``run_batch``.
    on_stack : callable(entry), optional
        Called with each stack's report entry as soon as it is known.
    notify : callable(str), optional
        One-line news: how the folder is watched, the grouping chosen, a
        stack stacked again, stopping when idle.
    cancel : callable or threading.Event, optional
        Stops the watch: the stack in progress stops between frames, nothing
        partial is left; the reports are written and the result returned.
    runner : callable(StackTask) -> dict, optional
        Replaces :func:`~napari_focus_stack.batch.run_stack` (tests, instrumentation).

    Returns
    -------
    BatchResult
        Every stack handled while watching, in the grouping's order.

    Raises
    ------
    KeyboardInterrupt
        Ctrl-C (or SIGTERM through the command line): raised after the stack
        in progress was abandoned (no partial output) and the reports written.
    InputError
        `folder` is not a folder, or the grouping has a fatal problem
        (frames of several stacks taken for one); the reports of what was
        done are written first.
    OutputError, ParameterError
        As for ``run_batch``; bad `settle`, `idle_exit` or `stable`.
    """
    options = options or BatchOptions()
    options.validate()
    for name, value in (("settle", settle), ("stable", stable), ("idle_exit", idle_exit)):
        if value is None and name == "idle_exit":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise ParameterError(f"{name} must be a number of seconds above 0, got {value!r}")
    root = Path(folder).expanduser().absolute()
    if not root.is_dir():
        raise InputError(
            f"{root} is not a folder; --watch watches a folder"
            if root.exists() else f"{root} not found. Check the path (and that the drive is mounted)."
        )
    out = Path(output_dir).expanduser().absolute()
    check_output_dir(out)
    lock = output_folder_lock(out)
    try:
        watch = _Watch(root, out, capped_workers(options, None), dict(mode=mode, stack_size=stack_size,
                       pattern=pattern), float(settle), idle_exit, float(stable), progress, on_stack, notify,
                       cancel_check(cancel), runner)
        watcher, note = make_watcher(root, poll, watch.skip)
        try:
            watch.say(note)
            watch.say(
                f"watching {root} ({watcher.describe()}): a stack is stacked when a later stack's frame arrives "
                f"or after {settle:g} s without a new frame"
                + (f"; stops after {idle_exit:g} s without new files" if idle_exit else "; Ctrl-C to stop")
            )
            return watch.run(watcher)
        finally:
            watcher.stop()
    finally:
        lock.release()


class _Watch:
    """The state of one :func:`watch_batch`: the files seen, the stacks handled, the executor."""

    def __init__(self, root, out, options, grouping, settle, idle_exit, stable, progress, on_stack, notify,
                 is_cancelled, runner):
        self.root, self.out, self.options, self.grouping = root, out, options, grouping
        self.settle, self.idle_exit, self.stable = settle, idle_exit, stable
        self.progress, self.notify, self.is_cancelled, self.runner = progress, notify, is_cancelled, runner
        self.t0, self.started = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.clock = time.monotonic
        # files this tool writes or wrote are never frames; the output folder inside the input neither
        self.skip: set[str] = {path_key(p) for p in known_outputs(out)}
        if out != root:
            self.skip.add(path_key(out))
        self.seen: dict[str, _Seen] = {}
        self.last_change = self.clock()  # a file appeared, changed or went
        self.plan: Plan | None = None
        self.planned_unstable: frozenset[str] = frozenset()
        self.recorder = Recorder(on_stack)
        self.handled: dict[str, tuple] = {}  # stack name -> the frames (key, stamp) it was planned with
        self.jobs: dict[str, StackJob] = {}  # stack name -> its latest job
        self.running: set[str] = set()  # submitted, not yet recorded
        self.waiting: list[StackJob] = []  # stacks that reuse an alignment whose calibration stacks still run
        self.reusing: set[str] = set()
        self.sources: dict[str, list[StackJob]] = {}  # group -> its calibration stacks (the first complete)
        self.length: dict[str, int] = {}  # group -> its focus sequence's number of frames
        self.known: dict[str, list] = {}  # calibration stack -> its transforms
        self.calibration: dict[str, dict] = {}  # group -> how its reused alignment was made
        self.explicit: tuple | None = None
        self.executor: Any = None
        self.reports_due = False
        self.deadline = float("inf")
        self.pending = False

    def say(self, message: str | None) -> None:
        if message and self.notify is not None:
            self.notify(message)

    # ------------------------------------------------------------ the loop
    def run(self, watcher) -> BatchResult:
        interrupted = False
        error: FocusStackError | None = None
        try:
            self.explicit = explicit_calibration(self.options, self.out)
            self._loop(watcher)
        except KeyboardInterrupt:
            interrupted = True
        except FocusStackError as exc:  # a fatal grouping, an output folder gone: stop, reports of what was done
            error = exc
        finally:
            result = self._finish()
        if interrupted:
            raise KeyboardInterrupt
        if error is not None:
            raise error
        return result

    def _loop(self, watcher) -> None:
        last_tick = -float("inf")
        while not self.is_cancelled():
            pause = last_tick + MIN_TICK_S - self.clock()
            if pause > 0:
                time.sleep(pause)
            now = last_tick = self.clock()
            self._scan(now)
            self._plan_and_submit(now)
            self._release_waiting()
            if self.reports_due:
                self._write_reports()
            if self.executor is not None and self.executor.pending:
                # in-process: run the next stack; Dask: wait a little for one to finish
                self.executor.collect(self._record, timeout=0.5)
                continue
            busy = self.pending or self.running or self.waiting
            if self.idle_exit is not None and not busy:
                idle_at = self.last_change + self.idle_exit
                if now >= idle_at:
                    self.say(f"no new files for {self.idle_exit:g} s: stopped watching")
                    return
                self.deadline = min(self.deadline, idle_at)
            timeout = max(MIN_TICK_S, min(self.deadline - now, RESCAN_S))
            # wait in short steps: a cancel (the napari widget) is seen at once
            end = now + timeout
            while not self.is_cancelled():
                if watcher.wait(min(CANCEL_CHECK_S, max(0.0, end - self.clock()))) or self.clock() >= end:
                    break

    def _scan(self, now: float) -> None:
        listing = list_images(self.root, self.skip)
        changed = False
        for key, (path, stamp) in listing.items():
            seen = self.seen.get(key)
            if seen is None:
                self.seen[key] = _Seen(path, stamp, now)
                changed = True
            elif seen.stamp != stamp:
                seen.stamp, seen.since = stamp, now
                changed = True
        for key in [k for k in self.seen if k not in listing]:
            del self.seen[key]
            changed = True
        if changed:
            self.last_change = now
        unstable = frozenset(k for k, s in self.seen.items() if now - s.since < self.stable)
        if changed or self.plan is None or (unstable != self.planned_unstable and self._file_mode()):
            self._regroup(unstable)

    def _file_mode(self) -> bool:
        return self.grouping["mode"] == "file" or (self.plan is not None and self.plan.mode == "file")

    def _regroup(self, unstable: frozenset[str]) -> None:
        """Group the files present, as a batch would now."""
        exclude = set(self.skip)
        if self._file_mode():  # one file per stack: a growing file is not even opened to count its pages
            exclude |= unstable
        self.planned_unstable = unstable
        plan = detect_stacks(self.root, exclude=exclude, **self.grouping)
        if plan.fatal:
            raise InputError(fatal_line(plan))
        if plan.stacks and (self.plan is None or plan.mode != self.plan.mode or not self.plan.stacks):
            self.say(f"mode: {plan.mode} ({plan.reason})")
        self.plan = plan

    # --------------------------------------------------- complete stacks
    def _plan_and_submit(self, now: float) -> None:
        """Find the stacks that became complete; plan them as a batch does; submit those to run."""
        self.deadline, self.pending = float("inf"), False
        for seen in self.seen.values():
            if now - seen.since < self.stable:
                self.pending = True
                self.deadline = min(self.deadline, seen.since + self.stable)
        plan = self.plan
        if plan is None or not plan.stacks:
            return
        complete: dict[Stack, tuple] = {}
        last = len(plan.stacks) - 1
        waiting = {j.task.name for j in self.waiting}
        for i, (stack, name) in enumerate(zip(plan.stacks, stack_names(plan), strict=True)):
            seen = [self.seen.get(path_key(f)) for f in stack.frames]
            if any(s is None for s in seen):  # arrived after the listing: next time
                self.pending = True
                continue
            frames = tuple((path_key(s.path), s.stamp) for s in seen)
            if self.handled.get(name) == frames:
                continue
            if name in self.running or name in waiting:  # changed while it runs: again once it has finished
                self.pending = True
                continue
            newest = max(s.since for s in seen)
            later = i < last and plan.mode != "file"
            if not (later or now - newest >= self.settle) or not self._frames_ready(seen, now):
                self.pending = True
                self.deadline = min(self.deadline, newest + self.settle)
                continue
            complete[stack] = frames
        if complete:
            self._start(plan, complete)

    def _frames_ready(self, seen: list[_Seen], now: float) -> bool:
        """Every frame stable and decoding, or stable for the settle time (then its stack fails on it)."""
        for s in seen:
            if now - s.since < self.stable:
                self.deadline = min(self.deadline, s.since + self.stable)
                return False
            if s.checked != s.stamp:
                s.checked, s.error = s.stamp, _decode_error(s.path, self.options.max_pixels)
            if s.error is not None and now - s.since < self.settle:
                self.deadline = min(self.deadline, s.since + self.settle)
                return False
        return True

    def _start(self, plan: Plan, complete: dict[Stack, tuple]) -> None:
        frames_of = {name: complete[s] for s, name in zip(plan.stacks, stack_names(plan), strict=True)
                     if s in complete}
        for name in frames_of:
            if name in self.handled:
                self.say(f"{name}: its frames changed after it was stacked: stacking it again")
        _, jobs = plan_batch(plan, self.out, self.options, select=set(complete), pick_sources=self._pick)
        for job in jobs:
            name = job.task.name
            self.handled[name] = frames_of[name]
            self.jobs[name] = job
            self.skip.update(path_key(p) for p in stack_outputs(self.out, name, job.task.outputs.values()))
        self.recorder.record_planned(jobs)
        self.reports_due |= any(j.state != "run" for j in jobs)
        known, first_wave = split_sources(jobs)
        self.known.update(known)
        run = [j for j in jobs if j.state == "run"]
        if self.explicit is not None:  # --calibration PATH: every stack reuses its alignment at once
            reuse_alignment(run, run, self.known, self.explicit, self.options)
            self._submit(run)
            return
        first = {id(j) for j in first_wave}
        self.waiting += [j for j in run if id(j) not in first and j.task.name in self.reusing]
        self._submit([j for j in run if id(j) in first or j.task.name not in self.reusing])

    def _pick(self, jobs: list[StackJob], options: BatchOptions) -> None:
        """The calibration stacks of a watch: the first complete stacks of each group (a scan)."""
        n = options.calibration_positions
        for job in jobs:
            if job.state == "fail":
                continue
            group, frames, name = job.group, len(job.task.frames), job.task.name
            length = self.length.setdefault(group, frames)
            sources = self.sources.setdefault(group, [])
            again = next((k for k, s in enumerate(sources) if s.task.name == name), None)
            if again is not None:  # a calibration stack whose frames changed
                sources[again] = job
                job.alignment_source = True
            elif frames == length and len(sources) < n:
                sources.append(job)
                job.alignment_source = True
            elif frames == length:
                reuse_hash(job, params_hash([s.task.params_hash for s in sources]), options)
                self.reusing.add(name)
            else:  # the result is that of a stack aligned on its own: so is its hash
                job.task.warnings.append(
                    f"{frames} frames where the stacks of {group or 'this scan'} have {length} "
                    f"(its first complete stack): alignment estimated for this stack"
                )

    def _release_waiting(self) -> None:
        """Give the stacks that reuse an alignment theirs, once their group's calibration stacks have run."""
        if not self.waiting:
            return
        ready = []
        for group in dict.fromkeys(j.group for j in self.waiting):
            sources = self.sources.get(group, [])
            if any(
                s.task.name in self.running or (s.task.name not in self.known and s.task.name not in
                                                self.recorder.entries) for s in sources
            ):
                continue
            members = [j for j in self.waiting if j.group == group]
            for report in reuse_alignment(sources + members, members, self.known, self.explicit, self.options):
                self.calibration[report["group"]] = report
            ready += members
        if ready:
            ids = {id(j) for j in ready}
            self.waiting = [j for j in self.waiting if id(j) not in ids]
            self._submit(ready)

    def _submit(self, jobs: list[StackJob]) -> None:
        if not jobs:
            return
        if self.executor is None:
            self.executor, self.runner = make_executor(self.options, self.progress, self.is_cancelled, self.runner)
        self.executor.submit([j.task for j in jobs], self.runner)
        self.running.update(j.task.name for j in jobs)

    def _record(self, entry: dict) -> None:
        name = entry["stack"]
        if entry.get("status") == "done" and entry.get("_transforms") is not None:
            self.known[name] = entry["_transforms"]
        self.running.discard(name)
        self.recorder.record(entry)
        self.reports_due = True

    # ------------------------------------------------------------- the end
    def _result(self) -> BatchResult:
        entries = self.recorder.entries
        plan = self.plan or Plan([], self.grouping["mode"], "nothing arrived", [], self.root)
        order = [n for n in stack_names(plan) if n in entries]
        listed = set(order)
        order += [n for n in entries if n not in listed]
        elapsed = time.perf_counter() - self.t0
        startup = getattr(self.executor, "startup_s", 0.0)
        return BatchResult(plan, [entries[n] for n in order], None, None, elapsed, startup,
                           list(self.calibration.values()))

    def _write_reports(self) -> BatchResult:
        result = self._result()
        result.report_json, result.report_csv = write_reports(self.out, result.plan, self.options, result,
                                                              self.started)
        self.reports_due = False
        return result

    def _finish(self) -> BatchResult:
        """Stop the executor, record what did not finish, write the reports."""
        try:
            if self.executor is not None:
                self.executor.cancel_pending()
        finally:
            if self.executor is not None:
                self.executor.close()
        unfinished = [self.jobs[n] for n in sorted(self.running)] + self.waiting
        self.recorder.record_unfinished(unfinished)
        self.running.clear()
        self.waiting = []
        if self.recorder.entries or self.plan is not None:
            return self._write_reports()
        return self._result()


def _decode_error(path: Path, max_pixels: int | None) -> str | None:
    """Why `path` does not decode (yet), or None when it does: a JPEG at 1/8 size, other images whole."""
    try:
        with pixel_limit(max_pixels):
            read_image(path, reduce=8)
    except (FocusStackError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None

