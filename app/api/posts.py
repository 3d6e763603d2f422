"""Posts: create (one or in bulk), read, change, cancel, retry."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app import access, dispatch
from app.api.audit import record_request_event
from app.api.auth import charge_bulk_posts, current_caller
from app.api.bodies import json_body, load_json, load_query
from app.api.envelope import ApiError, ValidationError, envelope
from app.db import autocommit_single_statements, get_session, utcnow
from app.models import NewPost, Post, PostTarget
from app.platforms import PLATFORM_KEYS
from app.schemas import (
    create_post_schema,
    list_posts_query,
    retry_failed_schema,
    retry_post_schema,
    schedule_post_schema,
    update_post_schema,
)
from app.serializers import post_created_to_dict, post_to_dict, target_to_dict
from app.services import analytics, post_changes
from app.services import posts as post_service
from app.services.post_rows import insert_new_posts

blueprint = Blueprint("posts", __name__)

REQUIRED_FIELDS = ("content", "account_ids")


def _missing_fields_error(body: Any) -> ValidationError | None:
    if not isinstance(body, dict):
        return None
    missing = [name for name in REQUIRED_FIELDS if body.get(name) is None]
    if not missing:
        return None
    details = {name: ["Missing data for required field."] for name in missing}
    if len(missing) == 2:
        return ValidationError(
            "Missing required fields: content and account_ids are required.", details=details
        )
    return ValidationError(f"Missing required field: {missing[0]} is required.", details=details)


def _validated_create(body: Any) -> dict[str, Any]:
    missing = _missing_fields_error(body)
    if missing is not None:
        raise missing
    data = load_json(create_post_schema, body)
    data["profile_id"] = current_caller().profile_for_create(data.get("profile_id"))
    return data


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 255:
        raise ValidationError(
            "Idempotency-Key must be 1 to 255 characters.",
            details={"Idempotency-Key": ["Must be 1 to 255 characters."]},
        )
    return key


def _send_new(posts: list[NewPost]) -> None:
    """Send the messages of targets created `queued` by a transaction that committed."""
    dispatches = dispatch.new_dispatches([t for post in posts for t in post.targets])
    if dispatches:
        dispatch.send_dispatches(get_session(), current_app.extensions["celery"], dispatches)


def _enqueue_after_commit(posts: list[Post]) -> None:
    settings = current_app.config["CRIER"]
    due = [
        target
        for post in posts
        for target in dispatch.due_within_horizon(post.targets, settings.enqueue_horizon)
    ]
    if due:
        dispatch.enqueue_targets(get_session(), current_app.extensions["celery"], due)


@blueprint.post("/posts")
def create_post() -> Response:
    """Create and schedule a post (or publish it now)."""
    caller = current_caller()
    body = json_body()
    session = get_session()
    data = _validated_create(body)
    key = _idempotency_key()
    if key is None and not post_service.create_needs_transaction(data):
        # Without a replay record to write or media to hold, the post and its targets
        # are one statement.
        autocommit_single_statements(session)
    fingerprint = post_service.request_fingerprint(body) if key else ""
    settings = current_app.config["CRIER"]
    try:
        result = post_service.create_post(
            session,
            caller.scope,
            data,
            settings=settings,
            idempotency_key=key,
            fingerprint=fingerprint,
            idempotency_ttl=settings.idempotency_ttl,
            enqueue_horizon=settings.enqueue_horizon,
        )
        if session.in_transaction():
            session.commit()
    except IntegrityError:
        # A concurrent request with the same Idempotency-Key committed first.
        session.rollback()
        if key is None:
            raise
        result = post_service.create_post(
            session,
            caller.scope,
            data,
            settings=settings,
            idempotency_key=key,
            fingerprint=fingerprint,
            idempotency_ttl=settings.idempotency_ttl,
            enqueue_horizon=settings.enqueue_horizon,
        )
        if not result.replayed:
            raise
    if not result.replayed:
        _send_new([result.post])
    response = envelope(post_created_to_dict(result.post), status=201)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/posts/{result.post.id}"
    return response


@blueprint.post("/posts/bulk")
def bulk_create_posts() -> Response:
    """Create up to 50 posts; each succeeds or fails on its own (207 when some fail)."""
    caller = current_caller()
    body = json_body()
    items = body.get("posts") if isinstance(body, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= 50:
        raise ValidationError(
            'Send {"posts": [...]} with 1 to 50 posts.',
            details={"posts": ["Give a list of 1 to 50 post objects."]},
        )
    charge_bulk_posts(len(items))
    unknown = set(body) - {"posts"}
    if unknown:
        raise ValidationError(
            f"Unknown field: {sorted(unknown)[0]}.",
            details={name: ["Unknown field."] for name in sorted(unknown)},
        )
    session = get_session()
    results: list[dict[str, Any]] = []
    created: list[NewPost] = []
    now = utcnow()
    settings = current_app.config["CRIER"]
    account_ids = {
        i
        for item in items
        if isinstance(item, dict) and isinstance(item.get("account_ids"), list)
        for i in item["account_ids"]
        if isinstance(i, int) and not isinstance(i, bool)
    }
    post_service.preload_accounts(session, caller.scope, account_ids)
    # Each post is validated on its own and refused before it touches the session; the
    # accepted ones are written together in one flush.
    with session.no_autoflush:
        for index, item in enumerate(items):
            try:
                data = _validated_create(item)
                post = post_service.build_post(session, caller.scope, data, now, settings)
                created.append(post)
                results.append({"index": index, "status": 201, "data": post, "error": None})
            except ApiError as error:
                payload: dict[str, Any] = {"message": error.message, "code": error.code}
                if error.details:
                    payload["details"] = error.details
                results.append(
                    {"index": index, "status": error.status, "data": None, "error": payload}
                )
    dispatch.queue_new_targets(
        [t for post in created for t in post.targets],
        current_app.config["CRIER"].enqueue_horizon,
    )
    insert_new_posts(session, created)
    for result in results:
        if result["data"] is not None:
            result["data"] = post_created_to_dict(result["data"])
    session.commit()
    _send_new(created)
    failed = sum(1 for r in results if r["error"])
    status = 201 if not failed else (207 if created else 422)
    response = envelope(
        {"results": results, "created": len(created), "failed": failed}, status=status
    )
    if status == 422:
        # The API contract answers 422 when every item of a bulk request fails.
        response = envelope(
            None,
            {
                "message": f"None of the {len(items)} posts was created.",
                "code": "validation_error",
                "details": {f"posts[{r['index']}]": [r["error"]["message"]] for r in results},
            },
            422,
        )
    return response


_TIME_FILTERS = (
    ("scheduled_from", "scheduled_at", "ge"),
    ("scheduled_to", "scheduled_at", "lt"),
    ("created_from", "created_at", "ge"),
    ("created_to", "created_at", "lt"),
    ("created_after", "created_at", "ge"),
    ("created_before", "created_at", "lt"),
    ("scheduled_after", "scheduled_at", "ge"),
    ("scheduled_before", "scheduled_at", "lt"),
    ("published_after", "published_at", "ge"),
    ("published_before", "published_at", "lt"),
    ("updated_after", "updated_at", "ge"),
)


def _filtered_posts(query: dict[str, Any]) -> Select[tuple[Post]]:
    """Each filter narrows an (organisation_id, column) index of posts (see app.models)."""
    statement = current_caller().list_scope().select(Post)
    if query.get("status"):
        statement = statement.where(Post.status.in_(query["status"]))
    if query.get("campaign_id"):
        statement = statement.where(Post.campaign_id == query["campaign_id"])
    if query.get("platform") or query.get("account_id"):
        targets = select(PostTarget.post_id)
        if query.get("platform"):
            targets = targets.where(PostTarget.platform.in_(query["platform"]))
        if query.get("account_id"):
            targets = targets.where(PostTarget.account_id == query["account_id"])
        statement = statement.where(Post.id.in_(targets))
    for name, column_name, op in _TIME_FILTERS:
        if query.get(name):
            column = getattr(Post, column_name)
            statement = statement.where(
                column >= query[name] if op == "ge" else column < query[name]
            )
    if query.get("search"):
        pattern = (
            "%"
            + query["search"].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            + "%"
        )
        statement = statement.where(Post.content.ilike(pattern, escape="\\"))
    return statement


@blueprint.get("/posts")
def list_posts() -> Response:
    """List posts (newest first by default) with the API contract's filters and paging."""
    query = load_query(list_posts_query)
    session = get_session()
    statement = _filtered_posts(query)
    total = session.scalar(select(func.count()).select_from(statement.subquery()))
    column = getattr(Post, query["sort"])
    ordering = column.asc() if query["order"] == "asc" else column.desc()
    if query["sort"] == "published_at":
        ordering = ordering.nulls_last()
    # Joined, not a second SELECT: each post with its targets from one snapshot.
    page = (
        statement.options(joinedload(Post.targets))
        .order_by(ordering, Post.id)
        .limit(query["limit"])
        .offset(query["offset"])
    )
    rows = session.scalars(page).unique().all()
    pagination = {"limit": query["limit"], "offset": query["offset"], "total": total}
    return envelope([post_to_dict(p) for p in rows], meta={"pagination": pagination})


@blueprint.get("/posts/<post_id>")
def get_post(post_id: str) -> Response:
    """One post with each account's outcome."""
    post = access.post(get_session(), current_caller().scope, post_id)
    return envelope(post_to_dict(post))


@blueprint.get("/posts/<post_id>/results")
def get_post_results(post_id: str) -> Response:
    """Per-account results of a post."""
    session = get_session()
    post = access.post(session, current_caller().scope, post_id)
    targets = [target_to_dict(t) for t in post.targets]
    summary: dict[str, int] = {}
    for target in targets:
        summary[target["status"]] = summary.get(target["status"], 0) + 1
    # Each account's latest figures from its platform, and their sums (docs/analytics.md).
    latest = analytics.latest_by_target(session, [t.id for t in post.targets])
    for row, target in zip(targets, post.targets, strict=True):
        row["metrics"] = latest.get(target.id)
    return envelope(
        {
            "post_id": str(post.id),
            "status": post.status,
            "summary": summary,
            "metrics": analytics.totals([latest.get(t.id) for t in post.targets]),
            "results": targets,
        }
    )


@blueprint.patch("/posts/<post_id>")
def update_post(post_id: str) -> Response:
    """Change a post while nothing of it has been published."""
    data = load_json(update_post_schema, json_body())
    if not data:
        raise ValidationError("Nothing to change: send at least one field.")
    session = get_session()
    post = post_changes.update_post(
        session, current_caller().scope, post_id, data, current_app.config["CRIER"]
    )
    session.commit()
    _enqueue_after_commit([post])
    return envelope(post_to_dict(post))


@blueprint.delete("/posts/<post_id>")
def cancel_post(post_id: str) -> Response:
    """Cancel what is not yet published; `delete_on_platforms` also removes published copies."""
    raw = request.args.get("delete_on_platforms", "").strip()
    session = get_session()
    if not raw:
        post = post_changes.cancel_post(session, current_caller().scope, post_id)
        record_request_event(
            "post.deleted", subject_type="post", subject_id=post.id, details={"status": post.status}
        )
        session.commit()
        return envelope(post_to_dict(post))
    wanted = {p.strip().lower() for p in raw.split(",") if p.strip()}
    platforms = set(PLATFORM_KEYS) if wanted == {"all"} else wanted
    unknown = sorted(platforms - set(PLATFORM_KEYS))
    if unknown:
        message = (
            f"Unknown platform in delete_on_platforms: {', '.join(unknown)}. "
            f"Use a comma list of {', '.join(PLATFORM_KEYS)}, or all."
        )
        raise ValidationError(message, details={"delete_on_platforms": [message]})
    post, marked = post_changes.delete_post(session, current_caller().scope, post_id, platforms)
    record_request_event(
        "post.deleted",
        subject_type="post",
        subject_id=post.id,
        details={"status": post.status, "delete_on_platforms": sorted(platforms)},
    )
    session.commit()
    post_changes.enqueue_platform_deletes(current_app.extensions["celery"], [t.id for t in marked])
    data = post_to_dict(post)
    data["platform_deletions"] = [
        {
            "account_id": t.account_id,
            "platform": t.platform,
            "status": t.platform_delete_status,
            "platform_post_id": t.platform_post_id,
        }
        for t in marked
    ]
    return envelope(data)


def _optional_body() -> Any:
    """A JSON body when one was sent; these POSTs may also come bare."""
    if not request.content_length and not request.mimetype:
        return {}
    return json_body()


@blueprint.post("/posts/<post_id>/retry")
def retry_post(post_id: str) -> Response:
    """Send failed accounts of a post (all, or those in `account_ids`) back to the queue."""
    data = load_json(retry_post_schema, _optional_body())
    session = get_session()
    post, _retried = post_changes.retry_post(
        session, current_caller().scope, post_id, data.get("account_ids")
    )
    session.commit()
    _enqueue_after_commit([post])
    return envelope(post_to_dict(post))


@blueprint.post("/posts/retry-failed")
def retry_failed_posts() -> Response:
    """Re-queue failed accounts matching the filters; skips accounts needing reconnection."""
    data = load_json(retry_failed_schema, json_body())
    session = get_session()
    result = post_changes.retry_failed(session, current_caller().scope, data)
    session.commit()
    _enqueue_after_commit(result.posts)
    retried = [
        {"post_id": str(t.post_id), "account_id": t.account_id, "platform": t.platform}
        for t in result.retried
    ]
    skipped = [
        {
            "post_id": str(t.post_id),
            "account_id": t.account_id,
            "platform": t.platform,
            "reason": reason,
        }
        for t, reason in result.skipped
    ]
    return envelope(
        {
            "retried_count": len(retried),
            "skipped_count": len(skipped),
            "posts_count": len(result.posts),
            "retried": retried,
            "skipped": skipped,
        }
    )


@blueprint.post("/posts/<post_id>/schedule")
def schedule_post(post_id: str) -> Response:
    """Make a draft live: at `scheduled_for`, or now with `publish_now: true`."""
    data = load_json(schedule_post_schema, json_body())
    session = get_session()
    post = post_changes.schedule_draft(
        session, current_caller().scope, post_id, data, current_app.config["CRIER"]
    )
    session.commit()
    _enqueue_after_commit([post])
    return envelope(post_to_dict(post))
