"""What travels over the broker, declared once for both sides: task names, queues, routes,
the beat schedule and the Celery app built from them (docs/delivery.md, "Late acks").

The API only sends messages by name; the workers register their tasks under the same names.
Both import this module, so app/ never needs workers/ to send.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from flask import Flask
from kombu import Exchange, Queue

from app.config import Settings
from app.models import Platform

PUBLISH_TASK = "crier.publish_target"
# Many targets of one queue due now, in one message: (target id, token) pairs.
PUBLISH_BATCH_TASK = "crier.publish_targets"
PREPARE_TASK = "crier.prepare_target"
DISCARD_TASK = "crier.discard_prepared_handles"
SWEEP_TASK = "crier.sweep_due_targets"
REFRESH_TOKENS_TASK = "crier.refresh_expiring_tokens"
MAINTENANCE_QUEUE = "maintenance"
WEBHOOKS_QUEUE = "webhooks"
# Media imports from URLs: never on the sweeper's queue, whatever a source does.
MEDIA_IMPORT_QUEUE = "media_import"
MEDIA_IMPORT_TASK = "crier.import_media"
MEDIA_RESUME_TASK = "crier.resume_media_imports"
# Deleting a published copy on its platform, and resending what a broker outage dropped.
PLATFORM_DELETE_TASK = "crier.delete_on_platform"
PLATFORM_DELETE_RESUME_TASK = "crier.resume_platform_deletes"
WEBHOOK_DRAIN_TASK = "crier.drain_webhook_outbox"
WEBHOOK_DELIVER_TASK = "crier.deliver_webhook"
WEBHOOK_PRUNE_TASK = "crier.prune_webhook_outbox"
# Analytics (docs/analytics.md): reading platforms' figures of published posts and of
# accounts, on a queue of its own so that it never waits behind or delays a publish.
METRICS_QUEUE = "metrics"
METRICS_DUE_TASK = "crier.find_due_metrics"
METRICS_COLLECT_TASK = "crier.collect_metrics"
ACCOUNT_METRICS_DUE_TASK = "crier.find_due_account_metrics"
ACCOUNT_METRICS_TASK = "crier.collect_account_metrics"
METRICS_PRUNE_TASK = "crier.prune_metric_snapshots"


def publish_queue(platform: str) -> str:
    return f"publish.{platform}"


def queue_names() -> list[str]:
    return [publish_queue(p.value) for p in Platform] + [
        MAINTENANCE_QUEUE,
        WEBHOOKS_QUEUE,
        MEDIA_IMPORT_QUEUE,
        METRICS_QUEUE,
    ]


def uses_amqp(broker_url: str) -> bool:
    return broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def declare_queue(name: str, amqp: bool) -> Queue:
    """A queue bound to an exchange of its own under its own name, so a message reaches
    exactly one queue. On RabbitMQ it is a quorum queue behind a topic exchange: Celery's
    native delayed delivery routes ETA messages only through topic exchanges."""
    if amqp:
        return Queue(
            name,
            Exchange(name, type="topic"),
            routing_key=name,
            queue_arguments={"x-queue-type": "quorum"},
        )
    return Queue(name, Exchange(name, type="direct"), routing_key=name)


def route_to(name: str, amqp: bool = True) -> dict[str, str]:
    """On RabbitMQ through the queue's own exchange (native delayed delivery needs it); on
    Redis straight to the queue's list (kombu's anonymous exchange), so a message never
    depends on binding keys that a flushed or restarted Redis has lost."""
    if amqp:
        return {"queue": name, "exchange": name, "routing_key": name}
    return {"queue": name, "routing_key": name}


_DEFAULT_ROUTES = {
    PUBLISH_TASK: publish_queue(Platform.X.value),
    PUBLISH_BATCH_TASK: publish_queue(Platform.X.value),
    PREPARE_TASK: publish_queue(Platform.X.value),
    SWEEP_TASK: MAINTENANCE_QUEUE,
    REFRESH_TOKENS_TASK: MAINTENANCE_QUEUE,
    DISCARD_TASK: MAINTENANCE_QUEUE,
    WEBHOOK_DRAIN_TASK: WEBHOOKS_QUEUE,
    WEBHOOK_DELIVER_TASK: WEBHOOKS_QUEUE,
    WEBHOOK_PRUNE_TASK: WEBHOOKS_QUEUE,
    MEDIA_IMPORT_TASK: MEDIA_IMPORT_QUEUE,
    MEDIA_RESUME_TASK: MEDIA_IMPORT_QUEUE,
    PLATFORM_DELETE_TASK: MAINTENANCE_QUEUE,
    PLATFORM_DELETE_RESUME_TASK: MAINTENANCE_QUEUE,
    METRICS_DUE_TASK: METRICS_QUEUE,
    METRICS_COLLECT_TASK: METRICS_QUEUE,
    ACCOUNT_METRICS_DUE_TASK: METRICS_QUEUE,
    ACCOUNT_METRICS_TASK: METRICS_QUEUE,
    METRICS_PRUNE_TASK: MAINTENANCE_QUEUE,
}


def task_router(amqp: bool) -> Any:
    def route_task(
        name: str, args: Any, kwargs: Any, options: dict[str, Any], **_: Any
    ) -> dict[str, str]:
        """To the chosen queue alone (a publish names its platform's queue; other tasks
        have a fixed one)."""
        queue = options.get("queue")
        chosen = queue.name if queue is not None else _DEFAULT_ROUTES.get(name, MAINTENANCE_QUEUE)
        return route_to(chosen, amqp)

    return route_task


def celery_config(settings: Settings) -> dict[str, Any]:
    broker_url = settings.broker_url or settings.redis_url
    amqp = uses_amqp(broker_url)
    queues = [declare_queue(name, amqp) for name in queue_names()]
    return {
        "broker_url": broker_url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_queues": queues,
        "task_default_queue": MAINTENANCE_QUEUE,
        "task_default_exchange": MAINTENANCE_QUEUE,
        "task_default_exchange_type": "topic" if amqp else "direct",
        "task_default_routing_key": MAINTENANCE_QUEUE,
        "task_routes": (task_router(amqp),),
        # A worker killed mid-task loses nothing: the message is acked only when the
        # task returns, and a lost worker puts it back.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Unacked messages (including ETA tasks held in worker memory) come back after
        # the visibility timeout; it must stay far above ENQUEUE_HORIZON.
        "broker_transport_options": (
            # RabbitMQ hands a dead consumer's unacked messages back when its connection
            # drops; publisher confirms make a send fail loudly instead of vanishing.
            {"confirm_publish": True}
            if amqp
            else {
                "visibility_timeout": settings.visibility_timeout,
                "socket_connect_timeout": 2,
                "socket_timeout": 5,
                # A command that timed out fails rather than being sent again: a resent
                # LPUSH could queue a message twice, and kombu pipelines a batch of
                # messages (app.dispatch.send_dispatches) only where nothing is resent.
                "retry_on_timeout": False,
            }
        ),
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": 2,
        # ETA messages reach the pool within this of their time (Celery's default is 1 s);
        # the instant itself is kept by the firing line (workers.firing).
        "worker_timer_precision": 0.1,
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_soft_shutdown_timeout": 10.0,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": {
            # A sweep nobody ran in time is dropped, not run late in a pile: the next one
            # does the same work.
            "sweep-due-targets": {
                "task": SWEEP_TASK,
                "schedule": settings.sweep_interval,
                "options": {"expires": max(settings.sweep_interval * 2, 10.0)},
            },
            # Webhooks leave from the outbox in PostgreSQL; this claims what is due.
            "drain-webhook-outbox": {
                "task": WEBHOOK_DRAIN_TASK,
                "schedule": settings.webhook_drain_interval,
                "options": {"expires": max(settings.webhook_drain_interval * 2, 10.0)},
            },
            "prune-webhook-outbox": {
                "task": WEBHOOK_PRUNE_TASK,
                "schedule": 3600.0,
                "options": {"expires": 3600.0},
            },
            "resume-media-imports": {
                "task": MEDIA_RESUME_TASK,
                "schedule": 60.0,
                "options": {"expires": 60.0},
            },
            "resume-platform-deletes": {
                "task": PLATFORM_DELETE_RESUME_TASK,
                "schedule": 60.0,
                "options": {"expires": 60.0},
            },
            # What prepares left on the platforms for edited or cancelled content.
            "discard-prepared-handles": {
                "task": DISCARD_TASK,
                "schedule": 30.0,
                "options": {"expires": 30.0},
            },
            # Analytics: due readings every minute, accounts' daily reading looked for
            # hourly, snapshots past CRIER_METRICS_RETENTION_DAYS pruned hourly.
            "find-due-metrics": {
                "task": METRICS_DUE_TASK,
                "schedule": 60.0,
                "options": {"expires": 60.0},
            },
            "find-due-account-metrics": {
                "task": ACCOUNT_METRICS_DUE_TASK,
                "schedule": 3600.0,
                "options": {"expires": 3600.0},
            },
            "prune-metric-snapshots": {
                "task": METRICS_PRUNE_TASK,
                "schedule": 3600.0,
                "options": {"expires": 3600.0},
            },
            "refresh-expiring-tokens": {
                "task": REFRESH_TOKENS_TASK,
                "schedule": 600.0,
                "options": {"expires": 600.0},
            },
        },
    }


def celery_init_app(app: Flask, settings: Settings) -> Celery:
    """Flask's pattern: every task runs inside an app context of the same factory."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(settings))
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
