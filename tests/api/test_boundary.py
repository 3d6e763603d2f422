"""The boundary test, generated from the app's url_map.

Two organisations (home, other); home has profiles A and B and objects of its own (no
profile); other has profile C and objects of its own. Every kind of object (account,
media, campaign, post, draft, webhook and a delivery, key) exists on each side. The
attackers are one key per scope, organisation-wide (home), and one key per scope a
profile key may hold restricted to A, plus a key stored with `admin` and A (as written
before profile keys were refused admin).

For every authenticated route the table CASES says how it is attacked: an object of the
other side named in the path (404), an object of the other side referenced in the body
(refused exactly like an id that does not exist), a listing (nothing of the other side
in it; `?profile_id=` of the other side is 404), or organisation-wide data (profile keys
refused). A key without the route's scope may also answer 403. After the whole sweep the
database is what it was. The table must cover exactly the url_map's authenticated
endpoints, and each of them must have a scope in ROUTE_SCOPES: a new route fails here
until it is given both.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from app.api.auth import PUBLIC_ENDPOINTS
from app.api.scopes import ADMIN, PROFILE_SCOPES, ROUTE_SCOPES, SCOPES, granted
from app.config import PlatformApp
from app.db import get_db
from app.models import Organisation
from app.redis_client import redis_client
from app.services.keys import create_api_key
from app.services.uploads import PENDING_KEY
from tests.api.helpers import future
from tests.conftest import TABLES
from tests.media_samples import jpeg_bytes

UNKNOWN_INT = 987654321
UNKNOWN_UUID = "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f"


@dataclass
class Side:
    """The objects of one side: an organisation's profile, or its own (no profile)."""

    name: str
    organisation_id: int
    profile: int | None
    account: int = 0
    external_id: str = ""
    media: str = ""
    campaign: int = 0
    post: str = ""
    draft: str = ""
    webhook: str = ""
    delivery: str = ""
    key: int = 0
    pending_upload: str = ""

    def ids(self, kind: str) -> Any:
        return {
            "account": self.account,
            "media": self.media,
            "campaign": self.campaign,
            "post": self.post,
            "webhook": self.webhook,
            "profile": self.profile,
            "key": self.key,
            "delivery": self.delivery,
            "upload": self.pending_upload,
        }[kind]


UNKNOWN = {
    "account": UNKNOWN_INT,
    "media": UNKNOWN_UUID,
    "campaign": UNKNOWN_INT,
    "post": UNKNOWN_UUID,
    "webhook": UNKNOWN_UUID,
    "profile": UNKNOWN_INT,
    "key": UNKNOWN_INT,
    "delivery": UNKNOWN_UUID,
    "upload": UNKNOWN_UUID,
}


@dataclass
class Attacker:
    label: str
    key: str
    scopes: set[str]
    restricted: bool
    own: Side  # what it legitimately holds (a post, a draft, an account, a webhook)
    foreign: list[Side] = field(default_factory=list)


@dataclass
class World:
    client: FlaskClient
    sides: dict[str, Side]
    attackers: list[Attacker]
    admin_keys: dict[str, str]


# ------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Path:
    """The route names one object in its path (`{kind}`), optionally with a body."""

    path: str
    kind: str
    body: dict[str, Any] | None = None
    multipart: bool = False


@dataclass(frozen=True)
class Reference:
    """The route's body (or the path of one's own object) references another object:
    `build(own, value)` gives (path, body); `value` is the foreign or unknown id."""

    kind: str
    build: Callable[[Side, Any], tuple[str, Any]]
    multipart: bool = False
    # Only for keys restricted to a profile (a case that organisation keys may do).
    restricted_only: bool = False
    # Not against another organisation (each organisation may have its own such row).
    same_organisation_only: bool = False
    # Not against a side without a profile (the id is a profile id).
    needs_profile: bool = False


@dataclass(frozen=True)
class Listing:
    """A list of `kind` rows under `key`: nothing of another side may be in it."""

    path: str
    kind: str
    key: str = "id"
    profile_filter: bool = True


@dataclass(frozen=True)
class OrganisationWide:
    """Organisation-wide data or changes: a profile key never gets them (403)."""

    path: str
    body: Any = None


@dataclass(frozen=True)
class Scoped:
    """A route that names nothing; `check(world, attacker, response)` says it answered
    only within the key's scope. `body` is sent as JSON; an allowed key gets `status`."""

    path: str
    check: Callable[[Any, Attacker, Any], None] | None = None
    body: Any = None
    status: int = 200


def _post_body(**extra: Any) -> Callable[[Side, Any], tuple[str, Any]]:
    def build(own: Side, value: Any) -> tuple[str, Any]:
        body = {"content": "boundary", "account_ids": [own.account], "scheduled_at": future()}
        for name, shape in extra.items():
            body[name] = [value] if shape == "list" else value
        return "/posts", body

    return build


def _bulk(**extra: Any) -> Callable[[Side, Any], tuple[str, Any]]:
    single = _post_body(**extra)
    return lambda own, value: ("/posts/bulk", {"posts": [single(own, value)[1]]})


def _own(path: str, body: Callable[[Any], Any]) -> Callable[[Side, Any], tuple[str, Any]]:
    return lambda own, value: (path.format(own=own), body(value))


def _me_is_scoped(world: World, attacker: Attacker, response: Any) -> None:
    usage = response.get_json()["data"]["usage"]
    side = attacker.own
    where = "organisation_id = :o" + (" AND profile_id = :p" if attacker.restricted else "")
    counts = {}
    with get_db(world.client.application).engine.connect() as conn:
        for name, table in (
            ("accounts", "accounts"),
            ("posts", "posts"),
            ("media", "media"),
            ("campaigns", "campaigns"),
            ("webhooks", "webhook_endpoints"),
        ):
            counts[name] = conn.execute(
                text(f"SELECT count(*) FROM {table} WHERE {where}"),
                {"o": side.organisation_id, "p": side.profile},
            ).scalar()
    assert {k: usage[k] for k in counts} == counts, (attacker.label, usage, counts)


def _profiles_listed_are_own(world: World, attacker: Attacker, response: Any) -> None:
    ids = {p["id"] for p in response.get_json()["data"]}
    if attacker.restricted:
        assert ids == {attacker.own.profile}, (attacker.label, ids)
    others = {s.profile for s in attacker.foreign if s.profile is not None}
    assert not ids & others, (attacker.label, ids)


def _audit_is_own(world: World, attacker: Attacker, response: Any) -> None:
    ids = {e["id"] for e in response.get_json()["data"]}
    with get_db(world.client.application).engine.connect() as conn:
        own = set(
            conn.execute(
                text("SELECT id FROM audit_log WHERE organisation_id = :o"),
                {"o": attacker.own.organisation_id},
            ).scalars()
        )
    assert ids <= own, (attacker.label, ids - own)


def _summary_is_scoped(world: World, attacker: Attacker, response: Any) -> None:
    """The summary counts exactly the posts the key sees (its profile's, or all)."""
    side = attacker.own
    where = "organisation_id = :o AND status <> 'cancelled'"
    where += " AND profile_id = :p" if attacker.restricted else ""
    with get_db(world.client.application).engine.connect() as conn:
        own = conn.execute(
            text(f"SELECT count(*) FROM posts WHERE {where}"),
            {"o": side.organisation_id, "p": side.profile},
        ).scalar()
    assert response.get_json()["data"]["posts"]["total"] == own, (attacker.label, own)


CASES: dict[str, list[Any]] = {
    # posts
    "posts.create_post": [
        Reference("account", _post_body(account_ids="list")),
        Reference("media", _post_body(media_ids="list")),
        Reference("media", _post_body(cover_photo="one")),
        Reference("campaign", _post_body(campaign_id="one")),
        Reference("profile", _post_body(profile_id="one"), needs_profile=True),
    ],
    "posts.bulk_create_posts": [
        Reference("account", _bulk(account_ids="list")),
        Reference("media", _bulk(media_ids="list")),
        Reference("media", _bulk(cover_photo="one")),
        Reference("campaign", _bulk(campaign_id="one")),
        Reference("profile", _bulk(profile_id="one"), needs_profile=True),
    ],
    "posts.list_posts": [Listing("/posts", "post", key="post_id")],
    "posts.get_post": [Path("/posts/{post}", "post")],
    "posts.get_post_results": [Path("/posts/{post}/results", "post")],
    # analytics
    "analytics.summary": [
        Scoped("/analytics/summary?period=all", _summary_is_scoped),
        Reference(
            "profile",
            lambda own, v: (f"/analytics/summary?profile_id={v}", None),
            needs_profile=True,
        ),
        Reference("account", lambda own, v: (f"/analytics/summary?account_id={v}", None)),
    ],
    "analytics.export_csv": [
        Scoped("/analytics/export.csv?period=all"),
        Reference(
            "profile",
            lambda own, v: (f"/analytics/export.csv?profile_id={v}", None),
            needs_profile=True,
        ),
        Reference("account", lambda own, v: (f"/analytics/export.csv?account_id={v}", None)),
    ],
    "analytics.post_analytics": [Path("/posts/{post}/analytics", "post")],
    "analytics.account_analytics": [Path("/accounts/{account}/analytics", "account")],
    "posts.update_post": [
        Path("/posts/{post}", "post", body={"content": "hijacked"}),
        Reference("account", _own("/posts/{own.post}", lambda v: {"account_ids": [v]})),
        Reference("media", _own("/posts/{own.post}", lambda v: {"media_ids": [v]})),
        Reference("media", _own("/posts/{own.post}", lambda v: {"cover_photo": v})),
        Reference("campaign", _own("/posts/{own.post}", lambda v: {"campaign_id": v})),
    ],
    "posts.cancel_post": [Path("/posts/{post}", "post")],
    "posts.retry_post": [
        Path("/posts/{post}/retry", "post"),
        Reference("account", _own("/posts/{own.post}/retry", lambda v: {"account_ids": [v]})),
    ],
    "posts.retry_failed_posts": [
        Reference("post", lambda own, v: ("/posts/retry-failed", {"post_ids": [v]})),
        Reference("account", lambda own, v: ("/posts/retry-failed", {"account_id": v})),
    ],
    "posts.schedule_post": [
        Path("/posts/{post}/schedule", "post", body={"publish_now": True}),
        Reference(
            "account",
            _own(
                "/posts/{own.draft}/schedule",
                lambda v: {"scheduled_for": future(), "account_ids": [v]},
            ),
        ),
    ],
    # campaigns
    "campaigns.list_campaigns": [Listing("/campaigns", "campaign")],
    "campaigns.get_campaign": [Path("/campaigns/{campaign}", "campaign")],
    "campaigns.create_campaign": [
        Reference(
            "profile",
            lambda own, v: ("/campaigns", {"name": "c", "profile_id": v}),
            needs_profile=True,
        )
    ],
    "campaigns.update_campaign": [Path("/campaigns/{campaign}", "campaign", body={"name": "x"})],
    "campaigns.delete_campaign": [Path("/campaigns/{campaign}", "campaign")],
    # accounts
    "accounts.list_accounts": [Listing("/accounts", "account")],
    "accounts.get_account": [Path("/accounts/{account}", "account")],
    "accounts.get_account_health": [Path("/accounts/{account}/health", "account")],
    "accounts.create_account": [
        Reference(
            "profile",
            lambda own, v: (
                "/accounts",
                {"platform": "x", "name": "n", "access_token": "t", "profile_id": v},
            ),
            needs_profile=True,
        ),
    ],
    "accounts.update_account": [
        Path("/accounts/{account}", "account", body={"name": "renamed"}),
        Reference(
            "profile",
            _own("/accounts/{own.account}", lambda v: {"profile_id": v}),
            needs_profile=True,
        ),
    ],
    "accounts.delete_account": [Path("/accounts/{account}", "account")],
    "connect.create_connect_link": [
        Reference(
            "profile",
            lambda own, v: (
                "/accounts/connect",
                {"platform": "x", "redirect_url": "https://a.example/", "profile_id": v},
            ),
            needs_profile=True,
        ),
        Reference(
            "account",
            lambda own, v: (
                "/accounts/connect",
                {"platform": "x", "redirect_url": "https://a.example/", "account_id": v},
            ),
        ),
    ],
    # media
    "media.upload_media": [
        Reference(
            "profile",
            lambda own, v: ("/media/upload", {"profile_id": str(v)}),
            multipart=True,
            needs_profile=True,
        )
    ],
    "media.upload_media_from_url": [
        Reference(
            "profile",
            lambda own, v: (
                "/media/upload-from-url",
                {"url": "http://127.0.0.1:9/never.jpg", "profile_id": v},
            ),
            needs_profile=True,
        )
    ],
    "media.list_media": [Listing("/media", "media")],
    "media.get_media": [Path("/media/{media}", "media")],
    "media.delete_media": [Path("/media/{media}", "media")],
    "media.start_media_upload": [
        Reference(
            "profile",
            lambda own, v: (
                "/media/uploads",
                {
                    "filename": "a.jpg",
                    "content_type": "image/jpeg",
                    "size_bytes": 9,
                    "profile_id": v,
                },
            ),
            needs_profile=True,
        )
    ],
    "media.complete_media_upload": [
        Path("/media/{media}/complete", "media"),
        Path("/media/{upload}/complete", "upload"),
    ],
    # webhooks
    "webhooks.list_webhooks": [Listing("/webhooks", "webhook")],
    "webhooks.create_webhook": [
        Reference(
            "profile",
            lambda own, v: ("/webhooks", {"url": "https://h.example/", "profile_id": v}),
            needs_profile=True,
        )
    ],
    "webhooks.get_webhook": [Path("/webhooks/{webhook}", "webhook")],
    "webhooks.update_webhook": [Path("/webhooks/{webhook}", "webhook", body={"name": "x"})],
    "webhooks.delete_webhook": [Path("/webhooks/{webhook}", "webhook")],
    "webhooks.test_webhook": [Path("/webhooks/{webhook}/test", "webhook")],
    "webhooks.list_deliveries": [Path("/webhooks/{webhook}/deliveries", "webhook")],
    "webhooks.redeliver": [
        Path("/webhooks/{webhook}/deliveries/{delivery}/redeliver", "webhook"),
        Reference(
            "delivery",
            lambda own, v: (f"/webhooks/{own.webhook}/deliveries/{v}/redeliver", None),
        ),
    ],
    # the organisation
    "me.me": [Scoped("/me", _me_is_scoped)],
    "me.platform_rules": [Scoped("/platform-rules")],  # the same table for everyone
    "profiles.list_profiles": [Scoped("/profiles", _profiles_listed_are_own)],
    "profiles.get_profile": [Path("/profiles/{profile}", "profile")],
    "profiles.create_profile": [OrganisationWide("/profiles", {"name": "mine"})],
    "profiles.update_profile": [
        Path("/profiles/{profile}", "profile", body={"name": "x"}),
        OrganisationWide("/profiles/{own.profile}", {"name": "x"}),
    ],
    "profiles.delete_profile": [
        Path("/profiles/{profile}", "profile"),
        OrganisationWide("/profiles/{own.profile}"),
    ],
    "keys.list_keys": [Listing("/keys", "key"), OrganisationWide("/keys")],
    "keys.create_key": [
        OrganisationWide("/keys", {"name": "escalate"}),
        Reference(
            "profile",
            lambda own, v: ("/keys", {"name": "k", "profile_id": v}),
            needs_profile=True,
        ),
    ],
    "keys.revoke_key": [Path("/keys/{key}", "key")],
    "audit.list_audit_log": [Scoped("/audit-log", _audit_is_own), OrganisationWide("/audit-log")],
    # Names nothing; spends the organisation's credits. The sweep runs without a model
    # (501), so that the database stays as it was: what matters here is who may call it.
    "ai.generate_caption": [Scoped("/ai/generate-caption", body={"topic": "t"}, status=501)],
}


# ------------------------------------------------------------------------------- world


def _authenticated_rules(app: Flask) -> dict[str, str]:
    """endpoint -> its one HTTP method, for every route that takes a key."""
    found: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
        assert len(methods) == 1, f"{rule.endpoint} answers {methods}: give each its own case"
        assert rule.endpoint not in found, f"{rule.endpoint} has several rules"
        found[rule.endpoint] = methods[0]
    return found


def _new_key(app: Flask, organisation_id: int, scopes: list[str], profile: int | None) -> str:
    with get_db(app).session() as session:
        plain, row = create_api_key(
            session,
            "k",
            organisation=session.get(Organisation, organisation_id),
            scopes=[s for s in scopes if s != ADMIN] or None,
            profile_id=profile,
        )
        if ADMIN in scopes:  # as stored before profile keys were refused admin
            row.scopes = scopes
        session.commit()
        return plain


def _call(
    client: FlaskClient, key: str, method: str, path: str, body: Any = None, multipart: bool = False
) -> Any:
    headers = {"Authorization": f"Bearer {key}"}
    if multipart:
        data = {**(body or {}), "file": (io.BytesIO(jpeg_bytes()), "a.jpg")}
        return client.open(path, method=method, headers=headers, data=data)
    if body is None:
        return client.open(path, method=method, headers=headers)
    return client.open(path, method=method, headers=headers, json=body)


def _ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()["data"]


def _populate(client: FlaskClient, admin: str, side: Side) -> None:
    """Every kind of object on one side, made by the organisation's admin key."""
    p = {"profile_id": side.profile} if side.profile else {}
    side.external_id = f"ext-{side.name}"
    side.account = _ok(
        _call(
            client,
            admin,
            "POST",
            "/accounts",
            {
                "platform": "x",
                "name": side.name,
                "access_token": "t",
                "external_id": side.external_id,
                **p,
            },
        )
    )["id"]
    side.media = _ok(
        _call(client, admin, "POST", "/media/upload", {k: str(v) for k, v in p.items()}, True)
    )["id"]
    side.campaign = _ok(_call(client, admin, "POST", "/campaigns", {"name": side.name, **p}))["id"]
    body = {"content": side.name, "account_ids": [side.account], "scheduled_at": future(), **p}
    side.post = _ok(_call(client, admin, "POST", "/posts", body))["post_id"]
    side.draft = _ok(_call(client, admin, "POST", "/posts", {**body, "draft": True}))["post_id"]
    side.webhook = _ok(
        _call(client, admin, "POST", "/webhooks", {"url": f"https://{side.name}.example/", **p})
    )["id"]
    side.delivery = _ok(_call(client, admin, "POST", f"/webhooks/{side.webhook}/test"), 202)["id"]
    side.key = _ok(_call(client, admin, "POST", "/keys", {"name": side.name, **p}))["id"]


@pytest.fixture
def world(app: Flask) -> Iterator[World]:
    # Connect links for X are configured, so a link's profile and account are checked.
    previous = app.config["CRIER"]
    x_app = {"x": PlatformApp("boundary-client", "boundary-secret")}
    app.config["CRIER"] = replace(previous, platform_apps=x_app, ai_base_url=None)
    try:
        yield from _world(app)
    finally:
        app.config["CRIER"] = previous


def _world(app: Flask) -> Iterator[World]:
    client = app.test_client()
    orgs: dict[str, int] = {}
    admin_keys: dict[str, str] = {}
    with get_db(app).session() as session:
        for name in ("home", "other"):
            plain, row = create_api_key(session, f"{name}-admin", organisation_name=name)
            orgs[name], admin_keys[name] = row.organisation_id, plain
        session.commit()

    def profile(org: str, name: str) -> int:
        return _ok(_call(client, admin_keys[org], "POST", "/profiles", {"name": name}))["id"]

    sides = {
        "A": Side("a", orgs["home"], profile("home", "A")),
        "B": Side("b", orgs["home"], profile("home", "B")),
        "home": Side("home", orgs["home"], None),
        "C": Side("c", orgs["other"], profile("other", "C")),
        "other": Side("other", orgs["other"], None),
    }
    for side in sides.values():
        org = "home" if side.organisation_id == orgs["home"] else "other"
        _populate(client, admin_keys[org], side)
    # Failed targets, so that a retry would have something to do.
    with get_db(app).engine.begin() as conn:
        conn.execute(text("UPDATE post_targets SET status = 'failed' WHERE attempts = 0"))
        conn.execute(
            text(
                "UPDATE post_targets SET status = 'draft' FROM posts p "
                "WHERE p.id = post_targets.post_id AND p.status = 'draft'"
            )
        )
    # An upload under way on each side (as POST /media/uploads leaves it in Redis).
    redis = redis_client(app.config["CRIER"].redis_url)
    for side in sides.values():
        side.pending_upload = str(uuid.uuid4())
        pending = {
            "organisation_id": side.organisation_id,
            "profile_id": side.profile,
            "filename": "p.jpg",
            "content_type": "image/jpeg",
            "size_bytes": 9,
            "storage_key": f"{side.organisation_id}/{side.pending_upload}.jpg",
        }
        redis.set(PENDING_KEY.format(side.pending_upload), json.dumps(pending), ex=3600)

    attackers = []
    for scope in SCOPES:
        attackers.append(
            Attacker(
                f"home key with {scope}",
                _new_key(app, orgs["home"], [scope], None),
                granted([scope]),
                False,
                sides["A"],
                [sides["C"], sides["other"]],
            )
        )
    for scopes in [[s] for s in PROFILE_SCOPES] + [[ADMIN]]:
        attackers.append(
            Attacker(
                f"A key with {scopes}",
                _new_key(app, orgs["home"], scopes, sides["A"].profile),
                granted(PROFILE_SCOPES if scopes == [ADMIN] else scopes),
                True,
                sides["A"],
                [sides["B"], sides["home"], sides["C"], sides["other"]],
            )
        )
    yield World(client, sides, attackers, admin_keys)


def _snapshot(app: Flask) -> dict[str, list[str]]:
    """Every row of every table (a key's last use aside), and the pending uploads."""
    state: dict[str, list[str]] = {}
    with get_db(app).engine.connect() as conn:
        for table in TABLES:
            row = "to_jsonb(t) - 'last_used_at'" if table == "api_keys" else "to_jsonb(t)"
            state[table] = sorted(
                conn.execute(text(f"SELECT ({row})::text FROM {table} t")).scalars()
            )
    redis = redis_client(app.config["CRIER"].redis_url)
    state["redis:uploads"] = sorted(k.decode() for k in redis.scan_iter("crier:media:upload:*"))
    return state


# ------------------------------------------------------------------------------- sweep


def _scope_refused(response: Any) -> bool:
    body = response.get_json() or {}
    return response.status_code == 403 and (body.get("error") or {}).get("code") == (
        "insufficient_scope"
    )


def _normalised(response: Any, *ids: Any) -> tuple[int, str]:
    """The answer with the ids named in it blanked: a foreign id and an unknown one
    must read the same."""
    body = response.get_json() or {}
    body.pop("meta", None)
    raw = json.dumps(body, sort_keys=True)
    for value in ids:
        raw = re.sub(rf"(?<![\w-]){re.escape(str(value))}(?![\w-])", "<id>", raw)
    # Post ids minted by a request that (wrongly) succeeded stay distinct on purpose.
    return response.status_code, raw


def _listed(response: Any, key: str) -> set[Any]:
    return {row[key] for row in response.get_json()["data"]}


def test_every_route_has_a_scope_and_a_boundary_case(app: Flask) -> None:
    routes = _authenticated_rules(app)
    assert set(routes) - set(ROUTE_SCOPES) == set(), "routes without a scope in ROUTE_SCOPES"
    missing = set(routes) - set(CASES)
    assert not missing, f"routes without a boundary case in tests/api/test_boundary.py: {missing}"
    assert not set(CASES) - set(routes), "boundary cases for routes that do not exist"
    assert all(CASES[e] for e in routes)


def _attack(client: FlaskClient, world: World, attackers: list[Attacker]) -> int:
    """Every route by each of `attackers`; the number of requests made."""
    routes = _authenticated_rules(client.application)
    attempts = 0
    for endpoint, method in sorted(routes.items()):
        needed = ROUTE_SCOPES[endpoint]
        for attacker in attackers:
            allowed = needed is None or ADMIN in attacker.scopes or needed in attacker.scopes
            where = f"{endpoint} {method} by {attacker.label}"
            unknown: dict[int, tuple[int, str]] = {}
            for case in CASES[endpoint]:
                if isinstance(case, OrganisationWide):
                    if not attacker.restricted:
                        continue
                    response = _call(
                        client, attacker.key, method, case.path.format(own=attacker.own), case.body
                    )
                    attempts += 1
                    assert _scope_refused(response), (where, response.get_data(as_text=True))
                    continue
                if isinstance(case, Scoped):
                    response = _call(client, attacker.key, method, case.path, case.body)
                    attempts += 1
                    if not allowed:
                        assert _scope_refused(response), where
                    else:
                        assert response.status_code == case.status, (
                            where,
                            response.get_data(as_text=True),
                        )
                        if case.check:
                            case.check(world, attacker, response)
                    continue
                if isinstance(case, Listing):
                    response = _call(client, attacker.key, method, case.path)
                    attempts += 1
                    if not allowed:
                        assert _scope_refused(response), where
                        continue
                    assert response.status_code == 200, (where, response.get_data(as_text=True))
                    foreign = {s.ids(case.kind) for s in attacker.foreign}
                    leaked = _listed(response, case.key) & foreign
                    assert not leaked, (where, "lists", case.kind, leaked)
                    if case.profile_filter:
                        for side in attacker.foreign:
                            if side.profile is None:
                                continue
                            narrowed = _call(
                                client,
                                attacker.key,
                                method,
                                f"{case.path}?profile_id={side.profile}",
                            )
                            attempts += 1
                            assert narrowed.status_code == 404, (where, side.name)
                    continue
                for side in attacker.foreign:
                    if isinstance(case, Path):
                        names = {
                            "post": side.post,
                            "account": side.account,
                            "media": side.media,
                            "campaign": side.campaign,
                            "webhook": side.webhook,
                            "delivery": side.delivery,
                            "profile": side.profile,
                            "key": side.key,
                            "upload": side.pending_upload,
                        }
                        if names[case.kind] is None:
                            continue  # a side without a profile has no profile to name
                        path = case.path.format(**names)
                        response = _call(
                            client, attacker.key, method, path, case.body, case.multipart
                        )
                        attempts += 1
                        if not allowed:  # refused before anything is loaded: one side is enough
                            assert _scope_refused(response), where
                            break
                        assert response.status_code == 404, (
                            where,
                            side.name,
                            response.get_data(as_text=True),
                        )
                        assert response.get_json()["error"]["code"] == "not_found"
                        continue
                    assert isinstance(case, Reference)
                    foreign_id = side.ids(case.kind)
                    if foreign_id is None and case.needs_profile:
                        continue
                    if case.same_organisation_only and (
                        side.organisation_id != attacker.own.organisation_id
                    ):
                        continue
                    if case.restricted_only and not attacker.restricted:
                        continue
                    path, body = case.build(attacker.own, foreign_id)
                    response = _call(client, attacker.key, method, path, body, case.multipart)
                    attempts += 1
                    if not allowed:
                        assert _scope_refused(response), where
                        break
                    # What an id that exists nowhere gets (the same for every side).
                    if id(case) not in unknown:
                        path_u, body_u = case.build(attacker.own, UNKNOWN[case.kind])
                        answer = _call(client, attacker.key, method, path_u, body_u, case.multipart)
                        unknown[id(case)] = _normalised(answer, UNKNOWN[case.kind])
                        attempts += 1
                    assert _normalised(response, foreign_id) == unknown[id(case)], (
                        where,
                        side.name,
                        case.kind,
                        response.get_data(as_text=True),
                    )
    return attempts


def test_no_key_crosses_a_boundary_on_any_route(app: Flask, world: World) -> None:
    before = _snapshot(app)
    # The attackers sweep side by side, each with a client of its own: the requests wait
    # on the database far more than they compute.
    with ThreadPoolExecutor(4) as pool:
        attempts = sum(pool.map(lambda a: _attack(app.test_client(), world, [a]), world.attackers))
    after = _snapshot(app)
    changed = [table for table in before if before[table] != after[table]]
    assert not changed, f"refused attempts changed {changed}"
    assert attempts > 400, attempts


def test_the_sweep_sees_a_leak(app: Flask, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep is not vacuous: a loader that forgot the profile is caught."""
    from app import access

    original = access.Scope.where

    def org_only(self: access.Scope, model: Any) -> list[Any]:
        return original(access.Scope(self.organisation_id), model)

    monkeypatch.setattr(access.Scope, "where", org_only)
    with pytest.raises(AssertionError):
        test_no_key_crosses_a_boundary_on_any_route(app, world)
