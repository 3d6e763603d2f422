"""What a publish message shows operators (Flower, worker logs) and the ETA it carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from celery import Celery

from app.broker_messages import broker_delay, publish_label
from app.config import Settings
from app.queues import celery_config


def celery_for(broker_url: str | None) -> Celery:
    celery = Celery("labels-test", set_as_current=False)
    celery.config_from_object(celery_config(Settings(broker_url=broker_url)))
    return celery


def test_label_names_platform_account_and_post_never_the_token() -> None:
    shadow, argsrepr = publish_label("x", 7, 42, "9f3c2a71-0000-4000-8000-000000000000")
    assert shadow == "publish x account=42 post=9f3c2a71…"
    assert argsrepr == "account=42 post=9f3c2a71… target=7"
    assert publish_label("x", 7, None, None) == ("publish x target=7", "target=7")


def test_redis_keeps_every_eta() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    celery = celery_for(None)
    for wait in (0.2, 0.8, 5.0):
        eta = now + timedelta(seconds=wait)
        assert broker_delay(celery, eta, now) == {"eta": eta}


def test_rabbitmq_delay_fits_native_delayed_delivery() -> None:
    """Celery's native delayed delivery rejects a countdown under one second; the wait
    goes as a countdown, which Celery does not measure again on its own clock."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    celery = celery_for("amqp://guest:guest@127.0.0.1:5672//")
    assert broker_delay(celery, now + timedelta(seconds=0.3), now) == {"eta": None}
    assert broker_delay(celery, now + timedelta(seconds=0.8), now) == {
        "eta": None,
        "countdown": 1.05,
    }
    later = now + timedelta(seconds=7.5)
    assert broker_delay(celery, later, now) == {"eta": None, "countdown": 7.5}
    assert broker_delay(celery, None, now) == {"eta": None}
