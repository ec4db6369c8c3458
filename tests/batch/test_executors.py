"""Executors: unexpected errors are retried (in-process and on Dask), user errors are not."""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest

from napari_focus_stack.batch import BatchOptions, run_batch, run_stack
from napari_focus_stack.executors import DaskExecutor
from scans import FAST, by_stack, make_scan, outputs, truncate

# ---------------------------------------------------------------------------
# Dask: a real local cluster of processes
# ---------------------------------------------------------------------------


def flaky_runner(task, flag_dir):
    """Kill the worker process on the first attempt at Ella_0_1; raise once on Ella_0_2."""
    flag = Path(flag_dir) / f"{task.name}.attempted"
    if task.name in ("Ella_0_1", "Ella_0_2") and not flag.exists():
        flag.write_text(str(os.getpid()))
        if task.name == "Ella_0_1":
            os._exit(1)  # the worker dies mid-task
        raise RuntimeError("transient failure")
    return run_stack(task)


def test_dask_local_cluster_matches_in_process(tmp_path):
    pytest.importorskip("distributed")
    scan = tmp_path / "scan"
    make_scan(scan, poses=4)
    truncate(scan / "Ella_0_1-2.jpg")
    assert not run_batch(scan, tmp_path / "one", BatchOptions(**FAST)).ok
    events = []
    result = run_batch(
        scan, tmp_path / "two", BatchOptions(workers=2, **FAST), progress=lambda *a: events.append(a)
    )
    entries = by_stack(result)
    assert entries["Ella_0_1"]["status"] == "failed" and "Ella_0_1-2.jpg" in entries["Ella_0_1"]["error"]
    assert [entries[n]["status"] for n in ("Ella_0_0", "Ella_0_2", "Ella_0_3")] == ["done"] * 3
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")
    assert entries["Ella_0_0"]["worker"].startswith("tcp://")
    assert events and {e[0] for e in events} <= {"Ella_0_0", "Ella_0_1", "Ella_0_2", "Ella_0_3"}


def test_dask_worker_death_and_errors_are_retried(tmp_path):
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    scan, out, flags = tmp_path / "scan", tmp_path / "out", tmp_path / "flags"
    make_scan(scan, poses=3)
    flags.mkdir()
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)  # the workers cannot import this test module
    try:
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=50
        ) as cluster:
            result = run_batch(
                scan,
                out,
                BatchOptions(scheduler=cluster.scheduler_address, **FAST),
                runner=functools.partial(flaky_runner, flag_dir=str(flags)),
            )
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert (flags / "Ella_0_1.attempted").exists() and (flags / "Ella_0_2.attempted").exists()
    with pytest.raises(ProcessLookupError):  # that worker process is gone
        os.kill(int((flags / "Ella_0_1.attempted").read_text()), 0)
    assert result.ok, result.stacks
    assert sorted(outputs(out)) == ["Ella_0_0.jpg", "Ella_0_1.jpg", "Ella_0_2.jpg"]


# ---------------------------------------------------------------------------
# in-process: one error boundary
# ---------------------------------------------------------------------------


def test_a_bug_in_the_engine_is_retried_then_reported_with_its_traceback(tmp_path, monkeypatch):
    from napari_focus_stack.fusion import PyramidFusion

    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    calls = []
    real_merge = PyramidFusion.merge

    def broken(self, index, prep):
        calls.append(index)
        if len(calls) <= 3:  # the first stack, three times (two retries)
            raise ValueError("operands could not be broadcast together with shapes (3,4) (4,3)")
        return real_merge(self, index, prep)

    monkeypatch.setattr(PyramidFusion, "merge", broken)
    result = run_batch(scan, out, BatchOptions(retries=2, **FAST))
    entries = by_stack(result)
    bug = entries["Ella_0_0"]
    assert bug["status"] == "failed"
    assert "unexpected error after 3 attempt(s): ValueError: operands could not be broadcast" in bug["error"]
    assert "in broken" in bug["traceback"] and "Traceback" in bug["traceback"]
    assert entries["Ella_0_1"]["status"] == "done"
    assert sorted(outputs(out)) == ["Ella_0_1.jpg"]
    assert not any(p.name.startswith(".Ella_0_0") for p in out.iterdir())


def test_a_transient_error_is_retried_in_process(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=2)
    attempts = []

    def flaky(task):
        attempts.append(task.name)
        if attempts.count(task.name) == 1:
            raise OSError("a network drive went away for a moment")
        return run_stack(task)

    result = run_batch(scan, out, BatchOptions(**FAST), runner=flaky)
    assert result.ok and attempts == ["Ella_0_0", "Ella_0_0", "Ella_0_1", "Ella_0_1"]


def test_user_errors_are_not_retried(tmp_path):
    scan, out = tmp_path / "scan", tmp_path / "out"
    make_scan(scan, poses=1)
    truncate(scan / "Ella_0_0-2.jpg")
    calls = []

    def counting(task):
        calls.append(task.name)
        return run_stack(task)

    result = run_batch(scan, out, BatchOptions(retries=3, **FAST), runner=counting)
    entry = result.stacks[0]
    assert entry["status"] == "failed" and "Ella_0_0-2.jpg" in entry["error"] and "unexpected" not in entry["error"]
    assert calls == ["Ella_0_0"]


def test_an_interrupted_cluster_start_leaves_nothing_for_the_exit(monkeypatch):
    """Ctrl-C while the local cluster starts: nothing left for distributed to close (and fail on) at exit."""
    import distributed
    from distributed.deploy.spec import SpecCluster

    made, closed = [], []

    class HalfBuilt:  # what LocalCluster leaves in distributed's registry when Ctrl-C lands while workers start
        def __init__(self, **kwargs):
            made.append(self)
            SpecCluster._instances.add(self)
            raise KeyboardInterrupt

        def close(self, timeout=None):
            closed.append(self)
            raise AssertionError("Status.init")  # as distributed's close of unstarted workers does

    monkeypatch.setattr(distributed, "LocalCluster", HalfBuilt)
    with pytest.raises(KeyboardInterrupt):
        DaskExecutor(None, 2)
    assert closed == made and len(made) == 1
    assert made[0] not in SpecCluster._instances


def test_warnings_on_a_worker_go_to_the_report_not_the_console(capsys):
    """A local cluster's workers print on the console: two lines of Python per warning, with the source."""
    import warnings

    from napari_focus_stack.errors import FocusStackWarning
    from napari_focus_stack.executors import _quietly

    def runner(task):
        warnings.warn("the reference a.jpg matched no other frame", FocusStackWarning, stacklevel=1)
        warnings.warn("the reference a.jpg matched no other frame", FocusStackWarning, stacklevel=1)
        warnings.warn("overflow encountered in multiply", RuntimeWarning, stacklevel=1)
        return {"stack": task, "warnings": ["the reference a.jpg matched no other frame"]}

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none may escape
        entry = _quietly(runner, "s1")
    assert entry["warnings"] == [
        "the reference a.jpg matched no other frame", "RuntimeWarning: overflow encountered in multiply",
    ]
    assert capsys.readouterr().err == ""
    assert _quietly(lambda task: task * 2, 21) == 42  # other results pass through


def test_in_process_runs_submitted_tasks_one_per_collect():
    """The steps --watch takes: submit as stacks complete, collect (run) one at a time, a cancel drops the rest."""
    from napari_focus_stack.executors import InProcess

    class Task:
        def __init__(self, name):
            self.name = name

        def make_entry(self, status, **extra):
            return {"stack": self.name, "status": status, **extra}

    cancelled, recorded = [], []
    executor = InProcess(retries=0, is_cancelled=lambda: bool(cancelled))
    executor.submit([Task("a"), Task("b")], lambda t: t.make_entry("done"))
    assert executor.pending == 2
    assert executor.collect(recorded.append) == [{"stack": "a", "status": "done"}]
    executor.submit([Task("c")], lambda t: 1 / 0)  # a bug: recorded as failed, with its traceback
    assert executor.pending == 2 and executor.collect(recorded.append)[0]["stack"] == "b"
    assert "ZeroDivisionError" in executor.collect(recorded.append)[0]["error"]
    assert executor.pending == 0 and executor.collect(recorded.append) == []
    executor.submit([Task("d"), Task("e")], lambda t: t.make_entry("done"))
    cancelled.append(True)
    assert executor.collect(recorded.append) == [] and executor.pending == 0
    assert [e["stack"] for e in recorded] == ["a", "b", "c"]
