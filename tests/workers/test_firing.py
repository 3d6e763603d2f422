"""The firing line and the outcome writer, on their own threads (no database)."""

from __future__ import annotations

import threading
import time

from workers.firing import BatchCaller, BatchWriter, FiringLine


def test_jobs_fire_at_their_instant_never_before_and_together() -> None:
    line = FiringLine(threads=50)
    fired: dict[int, float] = {}
    together: dict[int, bool] = {}
    lock = threading.Lock()
    all_running = threading.Event()
    instant = time.time() + 0.5

    def job(n: int) -> None:
        with lock:
            fired[n] = time.time()
            if len(fired) == 50:
                all_running.set()
        # A slow platform call must not hold up the others: each call waits until all
        # fifty are running at once, which a line firing them one pool round after
        # another never reaches, however loaded the machine.
        found = all_running.wait(10)
        with lock:
            together[n] = found

    for n in range(50):
        line.schedule(instant, lambda n=n: job(n), n)
    deadline = time.monotonic() + 15
    while len(together) < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(fired) == list(range(50))
    assert min(fired.values()) >= instant
    assert all(together.values()) and len(together) == 50
    assert line.stop() == []


def test_stop_gives_back_what_never_fired_in_instant_order() -> None:
    line = FiringLine(threads=4)
    ran: list[str] = []
    line.schedule(time.time(), lambda: ran.append("now"), "now")
    line.schedule(time.time() + 60, lambda: ran.append("later"), "later")
    line.schedule(time.time() + 30, lambda: ran.append("sooner"), "sooner")
    time.sleep(0.2)
    assert line.stop() == ["sooner", "later"]
    assert ran == ["now"]


def test_a_failing_job_does_not_stop_the_line() -> None:
    line = FiringLine(threads=2)
    ran: list[int] = []
    line.schedule(time.time(), lambda: 1 / 0, None)
    line.schedule(time.time() + 0.05, lambda: ran.append(1), None)
    time.sleep(0.3)
    assert ran == [1]
    line.stop()


def test_outcomes_are_written_in_batches_that_grow_with_the_load() -> None:
    batches: list[list[int]] = []
    release = threading.Event()

    def write(batch: list[int]) -> None:
        batches.append(batch)
        release.wait(5)

    writer = BatchWriter(write, max_batch=40)
    writer.put(0)  # written alone, and holds the writer while the rest arrive
    time.sleep(0.1)
    for n in range(1, 101):
        writer.put(n)
    release.set()
    writer.flush()
    assert batches[0] == [0]
    assert [len(b) for b in batches[1:]] == [40, 40, 20]
    assert sorted(n for b in batches for n in b) == list(range(101))


def test_a_failed_batch_is_logged_and_the_writer_goes_on() -> None:
    written: list[int] = []

    def write(batch: list[int]) -> None:
        if 0 in batch:
            raise RuntimeError("database went away")
        written.extend(batch)

    writer = BatchWriter(write)
    writer.put(0)
    writer.flush()
    writer.put(1)
    writer.flush()
    assert written == [1]


def test_calls_from_many_threads_are_served_in_batches_each_with_its_own_result() -> None:
    batches: list[list[int]] = []
    gate = threading.Event()

    def call_batch(items: list[int]) -> list[int]:
        gate.wait(5)  # the first batch holds until the others have queued behind it
        batches.append(items)
        return [item * 10 for item in items]

    caller = BatchCaller(call_batch, max_batch=100)
    results: dict[int, int] = {}

    def call(n: int) -> None:
        results[n] = caller(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
        time.sleep(0.002)
    gate.set()
    for thread in threads:
        thread.join(5)
    assert results == {n: n * 10 for n in range(30)}
    assert sorted(item for batch in batches for item in batch) == list(range(30))
    assert len(batches) < 30 and max(len(batch) for batch in batches) > 1


def test_a_failed_batch_raises_in_each_of_its_callers_and_the_next_is_served() -> None:
    def call_batch(items: list[int]) -> list[int]:
        if 0 in items:
            raise RuntimeError("database gone")
        return items

    caller = BatchCaller(call_batch)
    try:
        caller(0)
    except RuntimeError as exc:
        assert str(exc) == "database gone"
    else:
        raise AssertionError("the caller did not get the batch's exception")
    assert caller(7) == 7
