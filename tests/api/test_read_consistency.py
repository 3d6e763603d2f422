"""A post read through the API agrees with its own targets.

The outcome writer commits a target's end state and its post's derived status in one
transaction. A read that takes the post in one statement and its targets in another sees
two snapshots (READ COMMITTED): an outcome committed in between shows every target
`published` under a post still `publishing`. The commit is made here at exactly that
moment, between the first statement of the request and the one that reads the targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text

from app.db import get_db
from tests.api.helpers import future, ok_data, sql
from tests.conftest import Tenant


def publish_all_but_last(app: Flask, post_id: str) -> int:
    """The post as a burst leaves it just before its last outcome: the others published,
    the last one being published. Returns the last target's id."""
    rows = sql(app, "SELECT id FROM post_targets WHERE post_id = :p ORDER BY id", p=post_id)
    *done, last = [row["id"] for row in rows]
    sql(
        app,
        "UPDATE post_targets SET status = 'published', attempts = 1, dispatch_token = NULL, "
        "published_at = now() WHERE id = ANY(:ids)",
        ids=done,
    )
    sql(app, "UPDATE post_targets SET status = 'publishing' WHERE id = :t", t=last)
    sql(app, "UPDATE posts SET status = 'publishing' WHERE id = :p", p=post_id)
    return int(last)


def commit_last_outcome(app: Flask, post_id: str, target_id: int) -> None:
    """What the outcome writer commits for the last target: it and its post, together."""
    with get_db(app).engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE post_targets SET status = 'published', attempts = 1, "
                "dispatch_token = NULL, published_at = now() WHERE id = :t"
            ),
            {"t": target_id},
        )
        conn.execute(
            text("UPDATE posts SET status = 'published', published_at = now() WHERE id = :p"),
            {"p": post_id},
        )


@contextmanager
def just_before_targets_are_read(app: Flask, commit: Callable[[], None]) -> Iterator[list[str]]:
    """Run `commit` (on a connection of its own) once, just before the request's first
    statement that reads `post_targets`: after the post's row was read, if it was read
    on its own. Yields the statements the request ran."""
    engine = get_db(app).engine
    seen: list[str] = []
    fired: list[bool] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if fired:
            return
        seen.append(statement)
        if "FROM post_targets" in statement or "JOIN post_targets" in statement:
            fired.append(True)
            commit()

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert fired, "the request never read the targets"


def derived(targets: list[dict[str, Any]]) -> str:
    statuses = {t["status"] for t in targets}
    return "published" if statuses == {"published"} else "publishing"


@pytest.mark.parametrize("read", ["one", "results", "list"])
def test_a_post_read_never_lags_its_targets(
    app: Flask, tenant: Tenant, make_account: Any, read: str
) -> None:
    accounts = [make_account(tenant, "x", access_token=f"x-{n}") for n in range(3)]
    body = {"content": "burst", "account_ids": accounts, "scheduled_at": future()}
    post_id = ok_data(tenant.api.post("/posts", json=body), 201)["post_id"]
    last = publish_all_but_last(app, post_id)

    with just_before_targets_are_read(app, lambda: commit_last_outcome(app, post_id, last)):
        if read == "one":
            post = ok_data(tenant.api.get(f"/posts/{post_id}"))
            status, targets = post["status"], post["targets"]
        elif read == "results":
            results = ok_data(tenant.api.get(f"/posts/{post_id}/results"))
            status, targets = results["status"], results["results"]
        else:
            [post] = ok_data(tenant.api.get("/posts"))
            status, targets = post["status"], post["targets"]

    # Whichever side of the commit the read fell on, it fell there as a whole.
    assert status == derived(targets), (status, [t["status"] for t in targets])
