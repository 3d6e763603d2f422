"""Bare Celery for the baseline: one no-op task on a broker of the benchmark's own.

    BENCH_NOOP_BROKER=redis://... celery -A benchmarks.noop_app worker -Q bench.idle ...

The broker settings match Crier's (JSON, late acks, prefetch 1, no results). The task does
nothing; its end is recorded by the `task_postrun` handler with one RPUSH of the moment to
a list on the same Redis db, so the benchmark can see when the last task finished.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis
from celery import Celery
from celery.signals import task_postrun

QUEUE = "bench.noop"
IDLE_QUEUE = "bench.idle"
DONE_KEY = "bench:noop:done"
TASK = "bench.noop"

BROKER_URL = os.environ.get("BENCH_NOOP_BROKER", "redis://127.0.0.1:6379/15")

app = Celery("bench_noop", broker=BROKER_URL)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    result_backend=None,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
)

_done = redis.Redis.from_url(BROKER_URL)


@app.task(name=TASK)
def noop() -> None:
    """Nothing at all."""


@task_postrun.connect
def _record_end(**_: Any) -> None:
    _done.rpush(DONE_KEY, repr(time.time()))
