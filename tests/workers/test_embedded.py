"""The pipeline's batch statements on SQLite, the embedded default `make run` uses where
no PostgreSQL is configured: a post scheduled ahead is queued by the sweeper's batch
UPDATE and claimed by the claimer's, as on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.db import get_db
from app.dispatch import DueTarget, mark_queued
from app.migrations import upgrade_database
from app.models import Organisation, PostTarget, TargetStatus
from app.services.accounts import add_account
from app.services.keys import create_api_key
from workers.adapters import get_adapter
from workers.pipeline import (
    Delivery,
    PipelineDeps,
    claim_deliveries,
    fence_deliveries,
    fire_delivery,
    ready_claimed,
    record_outcomes,
)
from workers.quotas import SharedQuotas


@pytest.fixture
def embedded(tmp_path: Path, app_settings: dict[str, Any]) -> Iterator[Flask]:
    url = f"sqlite:///{tmp_path / 'crier.sqlite3'}"
    upgrade_database(url)
    app = create_app({**app_settings, "database_url": url})
    yield app
    get_db(app).dispose()


def test_a_scheduled_post_is_queued_claimed_and_published_on_sqlite(
    embedded: Flask, sandbox: httpx.Client, sandbox_url: str
) -> None:
    with embedded.app_context(), get_db(embedded).session() as session:
        key, api_key = create_api_key(session, name="embedded-key", organisation_name="embedded")
        session.commit()
        account = add_account(
            session,
            embedded.config["CRIER"],
            platform="x",
            name="x account",
            access_token="tok-access",
            refresh_token="tok-refresh",
            external_id="x-embedded",
            organisation=session.get(Organisation, api_key.organisation_id),
        )
        session.commit()
        account_id = account.id
    api = embedded.test_client()
    created = api.post(
        "/posts",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "content": "Scheduled on the embedded default",
            "account_ids": [account_id],
            "scheduled_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        },
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    with get_db(embedded).session() as session:  # as the sweeper does when it is due
        target = session.scalar(select(PostTarget))
        target.next_attempt_at = datetime.now(UTC)
        session.flush()
        [dispatch] = mark_queued(
            session, [DueTarget.of(target, target.next_attempt_at)], TargetStatus.SCHEDULED
        )
        session.commit()
    settings = embedded.config["CRIER"]
    with httpx.Client(timeout=10) as http:
        deps = PipelineDeps(
            db=get_db(embedded),
            settings=settings,
            celery=embedded.extensions["celery"],
            quotas=SharedQuotas(settings.redis_url),
            adapter_for=lambda platform: get_adapter(platform, http, sandbox_url),
        )
        [claimed, duplicate] = claim_deliveries(
            deps,
            [
                (dispatch.target.id, dispatch.token, "t1"),
                (dispatch.target.id, dispatch.token, "t2"),
            ],
        )
        assert isinstance(claimed, Delivery) and duplicate == "stale"
        delivery = ready_claimed(deps, claimed)
        assert isinstance(delivery, Delivery)
        # Fenced as at its instant: marked for the call, still held.
        assert fence_deliveries(deps, [delivery]) == ([delivery], [])
        with get_db(embedded).session() as session:
            assert session.scalar(select(PostTarget.irreversible_started_at)) is not None
        assert record_outcomes(deps, [(delivery, fire_delivery(deps, delivery))]) == ["published"]
    assert len(sandbox.get("/_ledger").json()) == 1
    with get_db(embedded).session() as session:
        assert session.scalar(select(PostTarget.status)) == TargetStatus.PUBLISHED
