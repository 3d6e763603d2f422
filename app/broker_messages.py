"""What a publish message carries besides its arguments: the name and argument text that
Flower and the worker logs show, and an ETA the broker can honour.

The task's arguments are a target id and a dispatch token. The token is a capability (the
worker's claim matches on it), so it never appears in `argsrepr`: operators see
`publish x account=42 post=9f3c…` instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from flask import has_app_context
from sqlalchemy import select

from app.db import get_db, utcnow
from app.models import PostTarget

log = logging.getLogger(__name__)

# Celery's native delayed delivery (RabbitMQ quorum queues) delays by whole seconds and
# rejects a countdown under one second, so a shorter wait is handled by the worker.
NATIVE_DELAY_MIN = timedelta(seconds=1.05)
# Below this, a message goes out at once: the pipeline sleeps the rest before its claim
# (ETA_HEAD_START + this stays within workers.pipeline.claim.EARLY_TOLERANCE).
WORKER_SLEEP_MAX = timedelta(seconds=0.5)


def uses_native_delayed_delivery(celery: Celery) -> bool:
    broker = str(celery.conf.broker_url or "")
    if broker.split("://", 1)[0] not in ("amqp", "amqps", "pyamqp"):
        return False
    return any(
        (queue.queue_arguments or {}).get("x-queue-type") == "quorum"
        for queue in celery.amqp.queues.values()
    )


def broker_delay(
    celery: Celery, eta: datetime | None, now: datetime | None = None
) -> dict[str, Any]:
    """How `send_task` is told to hold the message until `eta`: the ETA itself on Redis.

    On RabbitMQ's native delayed delivery it is a countdown of at least one second, a wait
    under half a second being left to the worker. Celery turns a countdown into the delay
    exchange's routing key as it is; an ETA it turns into a countdown again on its own
    clock, later, and truncates to whole seconds: a sender held up for a few milliseconds
    after choosing a wait just over one second got `countdown must be a positive number`.
    """
    if eta is None or not uses_native_delayed_delivery(celery):
        return {"eta": eta}
    wait = eta - (now or utcnow())
    if wait <= WORKER_SLEEP_MAX:
        return {"eta": None}
    return {"eta": None, "countdown": max(wait, NATIVE_DELAY_MIN).total_seconds()}


def short_id(value: object, length: int = 8) -> str:
    text = str(value)
    return text if len(text) <= length else text[:length] + "…"


def publish_label(
    platform: str, target_id: int, account_id: int | None, post_id: object | None
) -> tuple[str, str]:
    """(shadow name, argsrepr) for one publish message; nothing secret goes in."""
    if account_id is None or post_id is None:
        return f"publish {platform} target={target_id}", f"target={target_id}"
    args = f"account={account_id} post={short_id(post_id)} target={target_id}"
    return f"publish {platform} account={account_id} post={short_id(post_id)}", args


def batch_label(platform: str, target_ids: list[int]) -> tuple[str, str]:
    """(shadow name, argsrepr) for a message of many targets due now: ids, no tokens."""
    return (
        f"publish {platform} {len(target_ids)} targets",
        "targets=" + ",".join(map(str, target_ids)),
    )


Owner = tuple[int | None, object | None]


def target_owners(target_ids: list[int]) -> dict[int, Owner]:
    """(account id, post id) of each target, for Flower's labels: one query for a batch."""
    if not target_ids or not has_app_context():
        return {}
    try:
        with get_db().engine.connect() as conn:
            rows = conn.execute(
                select(PostTarget.id, PostTarget.account_id, PostTarget.post_id).where(
                    PostTarget.id.in_(target_ids)
                )
            ).all()
    except Exception:  # a label must never stop a send
        log.debug("no labels for targets %s", target_ids, exc_info=True)
        return {}
    return {row[0]: (row[1], row[2]) for row in rows}


def publish_message_options(
    celery: Celery,
    target_id: int,
    platform: str,
    eta: datetime | None,
    owner: Owner | None = None,
) -> dict[str, Any]:
    """Keyword arguments for `send_task` of a publish: shadow, argsrepr, kwargsrepr and its
    delay (`broker_delay`). `owner` is the target's (account id, post id), looked up when
    not given."""
    if owner is None:
        owner = target_owners([target_id]).get(target_id, (None, None))
    account_id, post_id = owner
    shadow, argsrepr = publish_label(platform, target_id, account_id, post_id)
    return {
        "shadow": shadow,
        "argsrepr": argsrepr,
        "kwargsrepr": "{}",
        **broker_delay(celery, eta),
    }
