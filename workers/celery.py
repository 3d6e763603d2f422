"""Entry point for `celery -A workers.celery worker|beat|flower`."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from typing import Any

from celery.beat import PersistentScheduler
from celery.signals import (
    heartbeat_sent,
    task_postrun,
    task_received,
    task_revoked,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
)

from app import create_app
from app.api.meta import BEAT_HEARTBEAT_KEY, WORKER_HEARTBEAT_KEY
from app.db import get_db
from app.heap import freeze_startup_heap
from app.metrics import start_worker_metrics_server
from app.queues import PUBLISH_BATCH_TASK, PUBLISH_TASK
from app.redis_client import redis_client
from app.security import InsecureSecretKey
from workers.events import EventsFlushedByTheLoop
from workers.liveness import Heartbeat, process_claims

try:
    flask_app = create_app()
except InsecureSecretKey as exc:
    # Workers, beat and Flower refuse as the web does; say why without a traceback.
    print(f"crier celery refuses to start: {exc}", file=sys.stderr, flush=True)
    raise SystemExit(4) from None
app = flask_app.extensions["celery"]
app.conf.include = [
    "workers.tasks",
    "workers.webhooks",
    "workers.media_import",
    "workers.platform_delete",
    "workers.analytics_tasks",
]
# Importing the task modules registers their tasks.
from workers import (  # noqa: E402,F401
    analytics_tasks,
    media_import,
    platform_delete,
    tasks,
    webhooks,
)
from workers.tasks import stop_firing, warm_up  # noqa: E402

_WORKER_NAME = f"{socket.gethostname()}:{id(app)}"
log = logging.getLogger("crier.worker")


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    start_worker_metrics_server(flask_app.config["CRIER"])


@worker_init.connect
def _size_pool(sender: Any = None, **_: Any) -> None:
    concurrency = int(getattr(sender, "concurrency", 0) or 0)
    if concurrency:
        # Pool threads ready deliveries; the heartbeat and the outcome writer take one
        # each, and a firing thread one only when a handle comes at the call itself.
        get_db(flask_app).resize(concurrency + 4)


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


_heartbeat: Heartbeat | None = None


@worker_ready.connect
def _on_ready(sender: Any = None, **_: Any) -> None:
    global _WORKER_NAME, _heartbeat
    if sender is not None:
        _WORKER_NAME = str(getattr(sender, "hostname", _WORKER_NAME))
    _beat()
    # Live claims: renew leases and report held messages for as long as we live.
    claims = process_claims(_WORKER_NAME)
    _heartbeat = Heartbeat(get_db(flask_app), flask_app.config["CRIER"], claims)
    _heartbeat.start()
    threading.Thread(target=_warm_up, name="crier-warm-up", daemon=True).start()


def _warm_up() -> None:
    """A publish worker makes its HTTP client and adapters now, not in its first burst."""
    platforms = [
        name.removeprefix("publish.")
        for name in app.amqp.queues.consume_from or {}
        if name.startswith("publish.")
    ]
    if platforms:
        try:
            with flask_app.app_context():
                warm_up(platforms)
        except Exception as exc:  # only a head start; the first tasks do it otherwise
            log.warning("warm-up failed: %s", exc)
    # What starting made lives as long as the worker: out of the collector's full walks.
    freeze_startup_heap()


@worker_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    with flask_app.app_context():
        stop_firing()
    if _heartbeat is not None:
        _heartbeat.stop()


@task_received.connect
def _on_received(request: Any = None, **_: Any) -> None:
    # Held messages (reserved, waiting for their ETA) are reported with the heartbeat, so
    # a dead worker's can be sent again at once instead of after the visibility timeout.
    # type: the registered name (`name` is the shadow Flower shows).
    kind = getattr(request, "type", None) if request is not None else None
    if kind not in (PUBLISH_TASK, PUBLISH_BATCH_TASK):
        return
    try:
        pairs = request.args[0] if kind == PUBLISH_BATCH_TASK else [request.args[:2]]
        process_claims().received_many(request.id, [(int(t), str(token)) for t, token in pairs])
    except (TypeError, ValueError):
        pass


@task_postrun.connect
def _on_postrun(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        process_claims().finished(task_id)


@task_revoked.connect
def _on_revoked(request: Any = None, **_: Any) -> None:
    if request is not None:
        process_claims().finished(request.id)


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


# Task events leave from the event loop only (workers/events.py).
app.steps["consumer"].add(EventsFlushedByTheLoop)
