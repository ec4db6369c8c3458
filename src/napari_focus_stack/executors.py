"""Executors: run tasks in this process or on a Dask cluster.

A task is plain data (so that it travels to Dask workers) with a ``name``
and a ``make_entry(status, **extra)`` method that makes its result entry (a
dict); a runner turns a task into its entry. Both executors take a list of
tasks, a runner and a ``record`` callback that receives each entry as soon
as it is known (:meth:`run`: a batch's stacks, in any order); the same in
steps, for work that arrives while earlier work runs (``batch --watch``):
:meth:`submit` tasks, then :meth:`collect` what finished (in-process: run
the next task), with :attr:`pending` tasks not collected yet;
:meth:`DaskExecutor.iter_ordered` hands the entries over in task order with
a bounded number in flight (the time points of one hyperstack, see
:func:`napari_focus_stack.nd.iter_stacks`).

A runner returns an entry for the errors a user can fix (a
:class:`~napari_focus_stack.errors.FocusStackError` becomes a failed entry);
anything it raises is unexpected (a bug, a transient fault) and is retried
up to ``retries`` times before the task is recorded as failed with the
traceback. Executors know nothing of what the tasks do: the batch, the N-D
loop and the job layer build on them.
"""
from __future__ import annotations

import contextlib
import logging
import re
import time
import traceback
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .errors import FocusStackWarning, InputError, ParameterError

__all__ = ["DaskExecutor", "InProcess", "ProgressCallback", "check_scheduler_address", "unexpected_entry"]

_PROGRESS_TOPIC = "napari-focus-stack-progress"

#: Per-frame progress of a task: ``(task name, done, total, stage)``.
ProgressCallback = Callable[[str, int, int, str], None]


def unexpected_entry(task: Any, exc: BaseException, attempts: int, tb: str | None = None) -> dict:
    """The failed entry of a task that raised something other than a FocusStackError."""
    entry = task.make_entry(
        "failed",
        error=(
            f"unexpected error after {attempts} attempt(s): {type(exc).__name__}: {exc} "
            "(a bug or a fault of the machine; the traceback is in batch-report.json)"
        ),
    )
    if tb is None:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    entry["traceback"] = tb
    return entry


class InProcess:
    """Runs tasks one after the other in this process.

    Parameters
    ----------
    retries : int
        Times a task that raised an unexpected error is tried again.
    is_cancelled : callable
        Checked before each task; a cancelled run records no more.
    """

    startup_s = 0.0

    def __init__(self, retries: int = 2, is_cancelled: Callable[[], bool] = lambda: False):
        self.is_cancelled = is_cancelled
        self.retries = int(retries)
        self._queue: deque = deque()

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet run."""
        return len(self._queue)

    def submit(self, tasks: Iterable, runner: Callable[[Any], dict]) -> None:
        """Queue tasks; :meth:`collect` runs them, one per call."""
        self._queue.extend((task, runner) for task in tasks)

    def collect(self, record: Callable[[dict], None], timeout: float | None = None) -> list[dict]:
        """Run the next queued task (``timeout`` is not used: a task runs to its end or its cancel check).

        Its entry goes to ``record`` and is returned in a list (empty when
        nothing was queued or the run is cancelled, which drops the queue).
        """
        if not self._queue:
            return []
        if self.is_cancelled():
            self._queue.clear()
            return []
        task, runner = self._queue.popleft()
        attempts = 0
        while True:
            attempts += 1
            try:
                entry = runner(task)
                break
            except Exception as exc:  # noqa: BLE001 - not a user error (run_stack returns those): retry, then record
                if attempts <= self.retries and not self.is_cancelled():
                    continue
                entry = unexpected_entry(task, exc, attempts)
                break
        record(entry)
        return [entry]

    def cancel_pending(self) -> None:
        """Drop the tasks not yet run."""
        self._queue.clear()

    def run(self, tasks: list, runner: Callable[[Any], dict], record: Callable[[dict], None]) -> list[dict]:
        """Run every task (until cancelled); each entry goes to ``record`` and is returned."""
        self.submit(tasks, runner)
        results: list[dict] = []
        while self.pending:
            results += self.collect(record)
        return results

    def close(self) -> None:
        self._queue.clear()


def _quietly(runner: Callable, task: Any) -> Any:
    """``runner(task)`` on a worker, its warnings kept off the worker's stderr (a local cluster's is the console,
    where Python prints each in two lines): a stack's report entry gets them instead, once each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry = runner(task)
    notes = entry.get("warnings") if isinstance(entry, dict) else None
    if isinstance(notes, list):
        for w in caught:
            text = str(w.message)
            if not issubclass(w.category, FocusStackWarning):
                text = f"{w.category.__name__}: {text}"
            if text not in notes:
                notes.append(text)
    return entry


def _warm_up() -> None:
    """Import the engine in a Dask worker."""
    from . import io, nd, pipeline  # noqa: F401


class DaskExecutor:
    """Runs tasks on a local or remote ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler : str, optional
        A scheduler's address (``tcp://host:8786``) to connect to.
    workers : int
        Without a scheduler or client: the processes of a local cluster
        started here (one thread each).
    retries : int
        Times a task that raised an unexpected error (or whose worker died)
        is tried again.
    progress : callable(name, done, total, stage), optional
        Per-frame progress of the tasks, sent by the workers as events.
    is_cancelled : callable
        Polled four times a second while waiting; when true the tasks not
        finished are cancelled.
    client : distributed.Client, optional
        A connected client to use instead; it stays open on :meth:`close`
        (it is its owner's).

    Raises
    ------
    InputError
        No dask.distributed, the scheduler cannot be reached, or the
        workers cannot load this package.
    """

    def __init__(
        self,
        scheduler: str | None = None,
        workers: int = 1,
        *,
        retries: int = 2,
        progress: ProgressCallback | None = None,
        is_cancelled: Callable[[], bool] = lambda: False,
        client: Any | None = None,
    ):
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InputError(
                "running on several workers needs dask.distributed: pip install 'napari-focus-stack[batch]'"
            ) from exc
        t0 = time.perf_counter()
        self.progress, self.is_cancelled = progress, is_cancelled
        self.retries = int(retries)
        self.cluster = None
        self._pending: dict = {}  # future -> task, submitted and not yet collected
        self.owns_client = client is None
        self.topic = f"{_PROGRESS_TOPIC}-{uuid.uuid4().hex[:8]}"
        if client is not None:
            self.client = client
        elif scheduler:
            try:
                self.client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as exc:  # ValueError: an address distributed cannot parse
                raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from exc
        else:
            with _unstarted_clusters_closed():
                self.cluster = LocalCluster(
                    n_workers=int(workers),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # any free port: never clash with a running dashboard
                    memory_limit=0,  # memory is checked per stack, up front
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self.cluster)
        # always: a call may bring its own progress callback (iter_ordered)
        self.client.subscribe_topic(self.topic, self._on_progress)
        try:
            self.client.run(_warm_up)  # imports in every worker now, not inside the first stacks' timings
        except BaseException as exc:  # whatever a worker raised while importing, or Ctrl-C
            self.close()
            if not isinstance(exc, Exception):
                raise
            raise InputError(
                f"the Dask workers cannot load napari-focus-stack ({type(exc).__name__}: {exc}); "
                "install the same version on every worker"
            ) from exc
        self.startup_s = time.perf_counter() - t0

    def _on_progress(self, event) -> None:
        _, msg = event
        if self.progress is None:
            return
        try:
            self.progress(msg["stack"], msg["done"], msg["total"], msg["stage"])
        except Exception:  # a progress display must not stop the batch
            logging.getLogger(__name__).debug("progress callback failed", exc_info=True)

    def _threads_on_host(self) -> dict:
        hosts: dict[str, int] = {}
        for addr, info in self.client.scheduler_info().get("workers", {}).items():
            host = addr.rsplit(":", 1)[0]
            hosts[host] = hosts.get(host, 0) + int(info.get("nthreads", 1))
        return hosts

    @property
    def threads(self) -> int:
        """Tasks the cluster runs at once (its worker threads)."""
        return max(1, sum(self._threads_on_host().values()))

    def _submit(self, task, runner, hosts: dict):
        task.threads_on_host = hosts
        task.progress_topic = self.topic if self.progress is not None else None
        key = f"focus-stack-{_safe_key(task.name)}-{uuid.uuid4().hex[:8]}"
        return self.client.submit(_quietly, runner, task, key=key, pure=False, retries=self.retries)

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet collected."""
        return len(self._pending)

    def submit(self, tasks: Iterable, runner: Callable[[Any], dict]) -> None:
        """Send tasks to the cluster; :meth:`collect` gathers their entries as they finish."""
        hosts = self._threads_on_host()
        for task in tasks:
            self._pending[self._submit(task, runner, hosts)] = task

    def collect(self, record: Callable[[dict], None], timeout: float | None = 0.25) -> list[dict]:
        """Wait up to ``timeout`` seconds for submitted tasks to finish; record and return their entries."""
        from distributed import wait

        if not self._pending:
            return []
        try:
            done, _ = wait(list(self._pending), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return []
        results = []
        for fut in done:
            entry = self._entry_of(fut, self._pending.pop(fut))
            record(entry)
            results.append(entry)
        return results

    def cancel_pending(self) -> None:
        """Cancel the tasks not yet collected; they record nothing."""
        if self._pending:
            self.client.cancel(list(self._pending), force=True)
            self._pending.clear()

    def run(self, tasks: list, runner: Callable[[Any], dict], record: Callable[[dict], None]) -> list[dict]:
        """Run every task on the cluster; each entry goes to ``record`` as it finishes, and is returned."""
        self.submit(tasks, runner)
        results: list[dict] = []
        while self._pending:
            if self.is_cancelled():
                self.cancel_pending()
                break
            results += self.collect(record, timeout=0.25)
        return results

    def iter_ordered(
        self, tasks: Iterable, runner: Callable[[Any], dict], window: int | None = None, *,
        progress: ProgressCallback | None = None, is_cancelled: Callable[[], bool] | None = None,
    ) -> Iterator[dict]:
        """Run ``tasks`` and yield their entries in task order, at most ``window`` submitted and not yet yielded.

        ``tasks`` may be a generator: a task is made only when a slot is
        free, so that the inputs and results held at once (on the workers
        and here) are bounded by ``window`` (default: the cluster's
        threads) whatever the number of tasks. When cancelled, the tasks
        not yet finished are cancelled and the iteration stops; closing the
        iterator early does the same. ``progress`` and ``is_cancelled``
        replace the executor's own for this call.
        """
        if progress is not None or is_cancelled is not None:
            saved = self.progress, self.is_cancelled
            self.progress = progress or self.progress
            self.is_cancelled = is_cancelled or self.is_cancelled
            try:
                yield from self.iter_ordered(tasks, runner, window)
            finally:
                self.progress, self.is_cancelled = saved
            return
        from distributed import wait

        hosts = self._threads_on_host()
        window = max(1, int(window or sum(hosts.values()) or 1))
        tasks = iter(tasks)
        queue: deque = deque()
        try:
            while True:
                while len(queue) < window:
                    task = next(tasks, None)
                    if task is None:
                        break
                    queue.append((self._submit(task, runner, hosts), task))
                if not queue:
                    return
                fut, task = queue[0]
                while not self.is_cancelled():
                    try:
                        wait([fut], timeout=0.25)
                    except TimeoutError:
                        continue
                    if fut.done():
                        break
                if not fut.done():  # cancelled
                    return
                queue.popleft()
                entry = self._entry_of(fut, task)
                fut.release()
                yield entry
        finally:
            if queue:
                self.client.cancel([f for f, _ in queue], force=True)

    def _entry_of(self, fut, task: Any) -> dict:
        if fut.status == "finished":
            return fut.result()
        if fut.status == "cancelled":
            return task.make_entry("cancelled", error="cancelled")
        exc = fut.exception()
        if type(exc).__name__ == "KilledWorker":
            return task.make_entry(
                "failed",
                error=f"the stack killed its worker repeatedly (out of memory, or a crash in a decoder): {exc}",
            )
        tb = "".join(traceback.format_tb(fut.traceback())) if fut.traceback() is not None else None
        return unexpected_entry(task, exc, self.retries + 1, tb)

    def close(self) -> None:
        if not self.owns_client:  # a borrowed client: it keeps running, without our handler
            self.client.unsubscribe_topic(self.topic)
            return
        try:
            self.client.close()
        finally:
            if self.cluster is not None:
                self.cluster.close()


def check_scheduler_address(address: str) -> None:
    """Raise :class:`ParameterError` for a scheduler address that cannot be one (checked before any work).

    Without it, distributed's ``Client`` raises a bare ValueError for
    ``tcp://127.0.0.1`` (no port), ``notaurl`` or ``tcp://[::1:1``.
    """
    if not address.strip():
        raise ParameterError("scheduler must be a Dask scheduler's address such as tcp://host:8786, got ''")
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:  # optional: the executor says how to install it
        return
    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls", "ws", "wss"):
            parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise ParameterError(
            f"scheduler {address!r} is not a Dask scheduler's address ({exc}); give one such as tcp://host:8786"
        ) from None


@contextlib.contextmanager
def _unstarted_clusters_closed() -> Iterator[None]:
    """Close a local cluster whose start was interrupted (Ctrl-C, SIGTERM), here and now.

    The half-built cluster is not returned to us, but distributed keeps it
    in a registry that it closes when the interpreter exits, and closing one
    whose workers never started fails there with "Exception ignored in
    atexit callback ... AssertionError: Status.init" after our one line.
    """
    from distributed.deploy.spec import SpecCluster

    instances = getattr(SpecCluster, "_instances", None)
    before = set(instances) if instances is not None else set()
    try:
        yield
    except BaseException:
        for cluster in set(instances or ()) - before:
            with contextlib.suppress(Exception):
                cluster.close(timeout=5)
            instances.discard(cluster)
        raise


def _safe_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60]
