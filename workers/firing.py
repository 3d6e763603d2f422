"""Fire at the instant: a per-process line of claimed, ready deliveries.

A Celery pool thread readies a delivery ahead of its instant (claim, credentials, built
request, quota) and hands it here. A timer thread wakes at each instant and hands the
delivery to a thread of its own pool, so a burst fires together instead of queueing behind
a pool busy sleeping, and the precision is the timer's (a millisecond or so), not Celery's
`worker_timer_precision`. Outcomes are written in batches by one writer thread: a burst
costs one transaction per batch, not one per target, and the writer waits while the line
is firing, so the calls do not share the interpreter with it.

The Celery message is acknowledged once the delivery is readied: from then on the claim,
renewed by the process's heartbeat, is what keeps it safe. If the process dies before the
delivery fires, its owner's heartbeat stops and the sweeper recovers the claim.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("crier.firing")

# A job due this soon makes the line busy: its thread must find the interpreter free.
QUIET_AHEAD = 0.05


class FiringLine:
    """Runs each job at its wall-clock instant on a pool of `threads`."""

    def __init__(self, threads: int) -> None:
        self._heap: list[tuple[float, int, Callable[[], Any], Any]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="crier-fire")
        self._stopped = False
        self._in_flight = 0
        self._count_lock = threading.Lock()
        self._timer = threading.Thread(target=self._run, name="crier-fire-timer", daemon=True)
        self._timer.start()

    def schedule(self, at: float, job: Callable[[], Any], item: Any = None) -> None:
        """Run `job` at `at` (seconds since the epoch; a past instant fires at once).
        `item` is what `stop()` gives back if the job never ran."""
        with self._wake:
            heapq.heappush(self._heap, (at, next(self._order), job, item))
            self._wake.notify()

    def pending(self) -> int:
        with self._wake:
            return len(self._heap)

    def busy(self, ahead: float = QUIET_AHEAD) -> bool:
        """Whether jobs are running, or one is due within `ahead` seconds: work that can
        wait (writing outcomes) then leaves the interpreter to the calls."""
        if self._in_flight:
            return True
        with self._wake:
            return bool(self._heap) and self._heap[0][0] <= time.time() + ahead

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.time()):
                    delay = self._heap[0][0] - time.time() if self._heap else 1.0
                    self._wake.wait(timeout=min(max(delay, 0.0), 1.0))
                if self._stopped:
                    return
                due = []
                now = time.time()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
            with self._count_lock:
                self._in_flight += len(due)
            for job in due:
                self._pool.submit(self._run_job, job)

    def _run_job(self, job: Callable[[], Any]) -> None:
        try:
            _guarded(job)
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def stop(self) -> list[Any]:
        """Stop the timer and wait for running jobs; returns the items of the jobs that
        never ran (their instants are ahead)."""
        with self._wake:
            self._stopped = True
            left = [item for _, _, _, item in sorted(self._heap, key=lambda e: e[:2])]
            self._heap.clear()
            self._wake.notify()
        self._pool.shutdown(wait=True)
        return left


class InstantBatches:
    """Runs `run_batch(items)` on one thread for every item whose instant has come: items
    due together (a burst) go in one call, and items that come due while a call runs
    (publish-now messages readied one after another) go together in the next."""

    def __init__(self, run_batch: Callable[[list[Any]], None], name: str = "") -> None:
        self._run_batch = run_batch
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._running = 0
        self._thread = threading.Thread(
            target=self._run, name=f"crier-instant-{name}".rstrip("-"), daemon=True
        )
        self._thread.start()

    def schedule(self, at: float, item: Any) -> None:
        with self._wake:
            heapq.heappush(self._heap, (at, next(self._order), item))
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.time()):
                    delay = self._heap[0][0] - time.time() if self._heap else 1.0
                    self._wake.wait(timeout=min(max(delay, 0.0), 1.0))
                if self._stopped:
                    return
                due = []
                now = time.time()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                self._running = len(due)
            try:
                self._run_batch(due)
            except Exception:  # the batch logs its own failures; the thread goes on
                log.exception("batch of %d failed", len(due))
            finally:
                with self._wake:
                    self._running = 0
                    self._wake.notify_all()

    def stop(self) -> list[Any]:
        """Stop, after a batch under way; returns the items never run, in instant order."""
        with self._wake:
            self._stopped = True
            left = [item for _, _, item in sorted(self._heap, key=lambda e: e[:2])]
            self._heap.clear()
            self._wake.notify_all()
            while self._running:
                self._wake.wait(timeout=1.0)
        return left


def _guarded(job: Callable[[], Any]) -> None:
    try:
        job()
    except Exception:  # a firing job logs its own failures; never kill the pool thread
        log.exception("firing job failed")


def _take_waiting(
    items: queue.Queue[Any] | queue.SimpleQueue[Any], batch: list[Any], size: int
) -> None:
    """Add to `batch` what is already waiting in `items`, up to `size` in all."""
    while len(batch) < size:
        try:
            batch.append(items.get_nowait())
        except queue.Empty:
            return


class BatchWriter:
    """Collects outcomes from many threads and writes them in batches on one thread.

    `write_batch(items)` is called with at most `max_batch` items at a time; items that
    arrive while a batch is being written wait for the next one, so the batch grows with
    the load and a lone outcome is written at once.
    """

    def __init__(
        self,
        write_batch: Callable[[list[Any]], None],
        max_batch: int = 200,
        busy: Callable[[], bool] | None = None,
        max_delay: float = 2.0,
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        # While `busy()` (a burst firing), writes wait up to `max_delay` seconds.
        self._busy = busy
        self._max_delay = max_delay
        self._items: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="crier-outcomes", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self._items.put(item)

    def flush(self) -> None:
        """Wait until everything put so far is written."""
        self._items.join()

    def _run(self) -> None:
        while True:
            batch = [self._items.get()]
            if self._busy is not None:
                # The calls of a burst go first: an outcome written a second later
                # costs nothing, a call made a second late is a late post.
                deadline = time.monotonic() + self._max_delay
                while self._busy() and time.monotonic() < deadline:
                    time.sleep(0.005)
            _take_waiting(self._items, batch, self._max_batch)
            try:
                self._write_batch(batch)
            except Exception:
                # Unwritten outcomes leave their targets claimed; once the claims are
                # released the sweeper recovers them and reconciles with the platform.
                log.exception("outcome batch of %d failed", len(batch))
            finally:
                for _ in batch:
                    self._items.task_done()


class BatchCaller:
    """Calls from many threads served in batches by one thread, each caller waiting for
    its own result: a Celery pool's threads claiming their targets share one transaction
    instead of running one each.

    `call_batch(items)` returns one result per item, in order; if it raises, every caller
    of that batch gets the exception.
    """

    def __init__(
        self, call_batch: Callable[[list[Any]], list[Any]], max_batch: int = 100, name: str = ""
    ) -> None:
        self._call_batch = call_batch
        self._max_batch = max_batch
        self._calls: queue.SimpleQueue[tuple[Any, Future[Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, name=f"crier-batch-{name}".rstrip("-"), daemon=True
        )
        self._thread.start()

    def __call__(self, item: Any) -> Any:
        result: Future[Any] = Future()
        self._calls.put((item, result))
        return result.result()

    def _run(self) -> None:
        while True:
            batch = [self._calls.get()]
            _take_waiting(self._calls, batch, self._max_batch)
            try:
                results = self._call_batch([item for item, _ in batch])
            except BaseException as exc:  # the callers raise it; this thread goes on
                for _, result in batch:
                    result.set_exception(exc)
                continue
            for (_, result), value in zip(batch, results, strict=True):
                result.set_result(value)
