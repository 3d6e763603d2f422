"""Live claims: a claim lives exactly as long as the worker process that holds it.

Every worker process keeps, in memory, the targets it has claimed and the publish
messages it holds but has not finished (reserved, or waiting for their ETA). A heartbeat
thread writes both to PostgreSQL every few seconds and renews the lease of each claim, so
a claim never expires under a live worker however long an upload or a platform's
processing takes. When the heartbeat stops, the sweeper knows within seconds which claims
to recover and which held messages to send again (docs/delivery.md, "Live claims").
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.config import Settings
from app.db import Database, utcnow
from app.models import PostTarget, TargetStatus, WorkerHeartbeat

log = logging.getLogger("crier.liveness")


class LiveClaims:
    """What this process holds: claimed targets and unfinished publish messages."""

    def __init__(self, owner: str, hostname: str) -> None:
        self.owner = owner
        self.hostname = hostname
        self._lock = threading.Lock()
        self._claims: dict[int, str] = {}
        self._held: dict[str, list[tuple[int, str]]] = {}
        # time.monotonic() when the last heartbeat that committed had begun; None before.
        self.beat_began: float | None = None

    def claimed(self, target_id: int, token: str) -> None:
        with self._lock:
            self._claims[target_id] = token

    def released(self, target_id: int) -> None:
        with self._lock:
            self._claims.pop(target_id, None)

    def received(self, task_id: str, target_id: int, token: str) -> None:
        self.received_many(task_id, [(target_id, token)])

    def received_many(self, task_id: str, targets: list[tuple[int, str]]) -> None:
        """A message of many targets (all due now): each is held until it finishes."""
        with self._lock:
            self._held[task_id] = list(targets)

    def finished(self, task_id: str) -> None:
        with self._lock:
            self._held.pop(task_id, None)

    def snapshot(self) -> tuple[list[int], list[list[Any]]]:
        with self._lock:
            held = [[t, token] for pairs in self._held.values() for t, token in pairs]
            return list(self._claims), held

    def beaten(self, began: float) -> None:
        self.beat_began = began

    def alive_for_sure(self, worker_timeout: float) -> bool:
        """Whether no sweeper can have declared this process dead, so its claims still
        stand without asking the database: its last heartbeat committed well within
        the timeout the sweeper judges by (half of it, for clock skew between hosts).
        A heartbeat also renews every lease, so none of them has run out either."""
        began = self.beat_began
        return began is not None and time.monotonic() - began < worker_timeout / 2


def owner_name(hostname: str) -> str:
    return f"{hostname}:{os.getpid()}"


_process_claims: LiveClaims | None = None
_process_lock = threading.Lock()


def process_claims(hostname: str | None = None) -> LiveClaims:
    """This process's claims; a worker names itself once it knows its node name."""
    global _process_claims
    with _process_lock:
        if _process_claims is None:
            name = hostname or socket.gethostname()
            _process_claims = LiveClaims(owner_name(name), name)
        elif hostname is not None and _process_claims.hostname != hostname:
            _process_claims.hostname = hostname
            _process_claims.owner = owner_name(hostname)
        return _process_claims


def beat(db: Database, settings: Settings, claims: LiveClaims) -> None:
    """Renew this process's leases and say what it holds, in one transaction."""
    began = time.monotonic()  # what alive_for_sure counts from: never later than the row
    with db.session() as session:
        # The row's time is taken once the database answers: a beat that waited out a
        # network partition must not stamp the moment it began, or the sweeper, seeing an
        # old beat, declares this live worker dead again and takes its new claims.
        session.connection()
        now = utcnow()
        claimed, held = claims.snapshot()
        if claimed:
            # A row another transaction holds (the outcome writer finishing it) is left
            # alone: waiting for it could deadlock, and its claim is ending anyway.
            free = (
                select(PostTarget.id)
                .where(
                    PostTarget.id.in_(claimed),
                    PostTarget.claim_owner == claims.owner,
                    PostTarget.status == TargetStatus.PUBLISHING,
                )
                .order_by(PostTarget.id)
                .with_for_update(skip_locked=True)
                .scalar_subquery()
            )
            session.execute(
                update(PostTarget)
                .where(PostTarget.id.in_(free))
                .values(lease_expires_at=now + timedelta(seconds=settings.publish_lease))
                .execution_options(synchronize_session=False)
            )
        dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
        row = {
            "owner": claims.owner,
            "hostname": claims.hostname,
            "pid": os.getpid(),
            "started_at": now,
            "last_seen_at": now,
            "held": held,
        }
        statement = dialect.insert(WorkerHeartbeat).values(**row)
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[WorkerHeartbeat.owner],
                set_={"last_seen_at": now, "held": held},
            )
        )
        session.commit()
    claims.beaten(began)


def forget(db: Database, claims: LiveClaims) -> None:
    """A worker that stops cleanly says so; what it still held went back to the broker."""
    with db.session() as session:
        session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.owner == claims.owner))
        session.commit()


class Heartbeat(threading.Thread):
    """Beats every `heartbeat_interval`; after a failure it tries again sooner, so a
    worker is seen alive again as soon as the database answers."""

    def __init__(self, db: Database, settings: Settings, claims: LiveClaims) -> None:
        super().__init__(name="crier-heartbeat", daemon=True)
        self.db = db
        self.settings = settings
        self.claims = claims
        self.stopping = threading.Event()

    def run(self) -> None:
        interval = self.settings.heartbeat_interval
        while not self.stopping.is_set():
            try:
                beat(self.db, self.settings, self.claims)
                wait = interval
            except Exception as exc:  # the database is down: keep trying, never die
                log.warning("heartbeat failed owner=%s error=%s", self.claims.owner, exc)
                wait = min(interval, 0.5)
            self.stopping.wait(wait)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        try:
            forget(self.db, self.claims)
        except Exception as exc:
            log.warning("could not remove heartbeat owner=%s error=%s", self.claims.owner, exc)
