"""Time points of one hyperstack on a Dask cluster: same results as the serial run, in order, bounded, cancellable."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import tifffile

from helpers import stack_to_files
from hyperstacks import write_imagej
from napari_focus_stack import FocusStacker
from napari_focus_stack.errors import Cancelled
from napari_focus_stack.executors import DaskExecutor
from napari_focus_stack.nd import _slice, as_hyperstack
from napari_focus_stack.synthetic import make_hyperstack

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0", silence_logs=50
    ) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def tzyx():
    return make_hyperstack("rocks", shape=(64, 80), n_z=5, n_t=4, n_c=1, seed=4).data[:, 0]


def _cpu():
    return FocusStacker(device="cpu")


def stack_nd(stacker, data, axes=None, **kwargs):
    return stacker.stack_nd(data, axes, **kwargs)


def _qualities(report):
    return np.array([np.nan if f.quality is None else f.quality for f in report.frames], float)


def _same(a, b):
    for name in ("image", "height", "height_raw", "confidence"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.axes == b.axes and a.unit == b.unit


def test_file_on_a_cluster_matches_the_serial_run(tmp_path, tzyx, client):
    path = write_imagej(tmp_path / "tzyx.tif", tzyx, "TZYX")
    serial = stack_nd(_cpu(), path)
    seen = []
    parallel = stack_nd(_cpu(), path, scheduler=client, progress=lambda *a: seen.append(a))
    _same(parallel, serial)
    _same(_cpu().stack_nd(path, scheduler=client), serial)  # the method passes it on
    assert parallel.unit == "µm" and parallel.image.shape == (4, 64, 80)
    assert [r.index for r in parallel.reports] == [{"T": t} for t in range(4)]
    assert [r.reused_alignment for r in parallel.reports] == [False, True, True, True]
    for s, p in zip(serial.reports, parallel.reports, strict=True):  # the same frames, names and alignment
        assert [f.name for f in p.frames] == [f.name for f in s.frames]
        # a reused alignment has no quality figures: NaN where the serial run has NaN
        np.testing.assert_array_equal(_qualities(p), _qualities(s))
    assert not np.isnan(_qualities(parallel.reports[0])).all()  # estimated
    assert np.isnan(_qualities(parallel.reports[1])).all()  # came with the task
    for ms, mp in zip(serial.transforms, parallel.transforms, strict=True):
        np.testing.assert_array_equal(mp, ms)
    # the workers fused them: their progress came back as events, up to the whole
    assert seen and max(d for d, _, _ in seen) == seen[0][1] == 4 * 2 * 5
    assert {s.split(":")[0] for _, _, s in seen} == {f"T {t}/4" for t in range(1, 5)}
    # without reuse every time point estimates its own alignment, still as in the serial run
    alone = stack_nd(_cpu(), path, scheduler=client, reuse_alignment=False)
    _same(alone, stack_nd(_cpu(), path, reuse_alignment=False))
    assert not any(r.reused_alignment for r in alone.reports)


def test_dask_array_stays_lazy_on_a_cluster(tmp_path, tzyx, client):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    store = zarr.open_array(str(tmp_path / "tzyx.zarr"), mode="w", shape=tzyx.shape, dtype=tzyx.dtype,
                            chunks=(1, 1) + tzyx.shape[2:])
    store[:] = tzyx
    lazy = da.from_zarr(store)
    part, where = _slice(as_hyperstack(lazy, "TZYX"), (2,))
    assert hasattr(part, "__dask_graph__") and part.shape == (1,) + tzyx.shape[1:] and where == (0,)
    on_cluster = stack_nd(_cpu(), lazy, "TZYX", scheduler=client)
    _same(on_cluster, stack_nd(_cpu(), tzyx, "TZYX"))
    # each worker fused a one-time-point slice: the reports still say which time point
    assert [r.index for r in on_cluster.reports] == [{"T": t} for t in range(4)]


def test_files_written_from_a_cluster_match(tmp_path, tzyx, client):
    path = write_imagej(tmp_path / "in.tif", tzyx, "TZYX")
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    stack_to_files(path, one / "f.tif", depth=one / "h.tif")
    done = stack_to_files(path, two / "f.tif", depth=two / "h.tif", scheduler=client)
    assert len(done.reports) == 4
    for name in ("f.tif", "h.tif"):
        np.testing.assert_array_equal(tifffile.imread(two / name), tifffile.imread(one / name))


def test_cancel_stops_the_time_points(tmp_path, tzyx, client):
    path = write_imagej(tmp_path / "in.tif", np.concatenate([tzyx] * 3), "TZYX")  # 12 time points
    stop = threading.Event()
    done = []

    def progress(d, total, stage):
        done.append(stage)
        if stage.startswith("T 2/"):
            stop.set()

    with pytest.raises(Cancelled):
        stack_nd(_cpu(), path, scheduler=client, progress=progress, cancel=stop)
    started = {s.split(":")[0] for s in done}
    assert len(started) < 12  # the later time points never ran
    time.sleep(0.5)
    assert not client.processing() or all(not v for v in client.processing().values())


# -- the executor: ordered, with a bounded number in flight -------------------------------------------------------


@dataclass
class _Task:
    name: str
    delay: float
    threads_on_host: dict | None = None
    progress_topic: str | None = None

    def make_entry(self, status, **extra):
        return {"stack": self.name, "status": status, **extra}


def _sleepy(task):
    time.sleep(task.delay)
    return task.make_entry("done")


def test_iter_ordered_keeps_order_and_a_bounded_window(client):
    made, got = [], []

    def tasks():
        for k in range(8):
            made.append(k)
            assert len(made) - len(got) <= 3, "more tasks in flight than the window"
            yield _Task(f"t{k}", 0.3 if k == 0 else 0.01)  # the first is the slowest

    executor = DaskExecutor(client=client)
    try:
        for entry in executor.iter_ordered(tasks(), _sleepy, window=3):
            got.append(entry["stack"])
    finally:
        executor.close()
    assert got == [f"t{k}" for k in range(8)]
    assert client.status == "running"  # a given client stays open


def test_a_borrowed_client_no_longer_calls_a_closed_executor(client):
    # without a progress callback too: the executor subscribes to its topic in any case
    executor = DaskExecutor(client=client)
    executor.close()
    time.sleep(0.5)  # the unsubscription travels on the client's batched stream
    calls = []
    executor.progress = lambda *a: calls.append(a)  # what a later call would have brought
    client.log_event(executor.topic, {"stack": "s", "done": 1, "total": 2, "stage": "fuse"})
    time.sleep(1.0)  # events reach subscribers in their time
    assert calls == []
    assert client.status == "running"
