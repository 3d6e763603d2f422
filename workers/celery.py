"""Entry point for `celery -A workers.celery worker|beat|flower`."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

from celery.signals import heartbeat_sent, worker_init, worker_process_init, worker_ready

from app import create_app
from app.api.meta import WORKER_HEARTBEAT_KEY
from app.db import get_db
from app.metrics import start_worker_metrics_server
from app.redis_client import redis_client
from workers.celery_app import drop_stale_bindings

flask_app = create_app()
app = flask_app.extensions["celery"]
app.conf.include = ["workers.tasks"]
import workers.tasks  # noqa: E402,F401  (registers the tasks)

_WORKER_NAME = f"{socket.gethostname()}:{id(app)}"


@worker_init.connect
def _drop_stale_bindings(**_: Any) -> None:
    # The broker may still be starting; the worker retries connecting on its own.
    with contextlib.suppress(Exception):
        drop_stale_bindings(app)


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    port = os.environ.get("CRIER_METRICS_PORT")
    if port:
        start_worker_metrics_server(int(port))


@worker_init.connect
def _size_pool(sender: Any = None, **_: Any) -> None:
    concurrency = int(getattr(sender, "concurrency", 0) or 0)
    if concurrency:
        get_db(flask_app).resize(concurrency + 2)


@worker_process_init.connect
def _fresh_pool_after_fork(**_: Any) -> None:
    # A forked child must not reuse the parent's database connections.
    get_db(flask_app).dispose()


def _beat() -> None:
    try:
        client = redis_client(flask_app.config["CRIER"].redis_url)
        client.zadd(WORKER_HEARTBEAT_KEY, {_WORKER_NAME: time.time()})
        client.zremrangebyscore(WORKER_HEARTBEAT_KEY, 0, time.time() - 3600)
    except Exception:  # health reporting must never break a worker
        pass


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    global _WORKER_NAME
    if sender is not None:
        _WORKER_NAME = str(getattr(sender, "hostname", _WORKER_NAME))
    _beat()


@heartbeat_sent.connect
def _on_heartbeat(**_: Any) -> None:
    _beat()
