"""Entry point for `celery -A workers.celery worker|beat|flower`."""

from __future__ import annotations

import socket
import sys
import time
from typing import Any

from celery.beat import PersistentScheduler
from celery.signals import heartbeat_sent, worker_init, worker_process_init, worker_ready

from app import create_app
from app.api.meta import BEAT_HEARTBEAT_KEY, WORKER_HEARTBEAT_KEY
from app.db import get_db
from app.redis_client import redis_client
from app.security import InsecureSecretKey

try:
    flask_app = create_app()
except InsecureSecretKey as exc:
    # Workers, beat and Flower refuse as the web does; say why without a traceback.
    print(f"crier celery refuses to start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(4) from None
app = flask_app.extensions["celery"]
app.conf.include = ["workers.tasks"]
import workers.tasks  # noqa: E402,F401  (registers the tasks)

_WORKER_NAME = f"{socket.gethostname()}:{id(app)}"


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


BEAT_HEARTBEAT_INTERVAL = 5.0


class HeartbeatScheduler(PersistentScheduler):
    """Beat's scheduler, stamping a heartbeat as it ticks: a hung scheduler stops it too.

    /health reports it (checks.beat) and compose's health check for beat reads it.
    """

    _last_stamp = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.time()
        if now - self._last_stamp >= BEAT_HEARTBEAT_INTERVAL:
            self._last_stamp = now
            try:
                client = redis_client(flask_app.config["CRIER"].redis_url)
                client.set(BEAT_HEARTBEAT_KEY, repr(now), ex=3600)
            except Exception:  # the scheduler keeps running while Redis is away
                pass
        return min(super().tick(*args, **kwargs), BEAT_HEARTBEAT_INTERVAL)


app.conf.beat_scheduler = "workers.celery:HeartbeatScheduler"
