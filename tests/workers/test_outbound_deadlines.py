"""Total deadlines on outbound calls, against a real server that trickles its answer one
byte at a time (headers included): the deadline client itself, a webhook delivery under
its endpoint's concurrency, a platform publish call, a token refresh and an OAuth code
exchange. Each ends within its deadline plus a little, with the error its caller treats
as a failed attempt worth retrying."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.db import get_db
from app.http_deadline import deadline_client
from app.models import WebhookDelivery
from app.oauth import ClientApp, OAuthError, get_flow, oauth_client
from app.services.outbound import REFUSED, UnsafeURLError, address_problem, resolve, safe_stream
from tests.conftest import Tenant
from tests.servers import TrickleServer
from workers import webhooks as webhooks_module
from workers.adapters import get_adapter
from workers.adapters.base import (
    AccountCredentials,
    NullContext,
    PublishRequest,
    TransientError,
)
from workers.tasks import platform_http_client
from workers.webhooks import (
    claim_due,
    claim_lease,
    deliver_webhook,
    send_once,
    webhook_client,
)

SLACK = 1.0


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    with TrickleServer(interval=0.3) as server:
        yield server


def timed(call: Any) -> tuple[float, BaseException | None]:
    began = time.monotonic()
    try:
        call()
    except BaseException as exc:
        return time.monotonic() - began, exc
    return time.monotonic() - began, None


# ----------------------------------------------------------------------- the mechanism


def test_a_trickled_answer_ends_at_the_deadline(trickle: TrickleServer) -> None:
    with deadline_client(1.5, timeout=30.0) as client:
        took, error = timed(lambda: client.get(f"{trickle.url}/whole"))
        assert isinstance(error, httpx.ReadTimeout) and 1.4 < took < 1.5 + SLACK
        assert "total deadline of 1.5 s" in str(error)

        def streamed() -> None:
            with client.stream("GET", f"{trickle.url}/stream") as response:
                for _ in response.iter_bytes():
                    pass

        took, error = timed(streamed)
        assert isinstance(error, httpx.TimeoutException) and took < 1.5 + SLACK
        took, error = timed(lambda: client.get(f"{trickle.url}/x", extensions={"deadline": 0.5}))
        assert isinstance(error, httpx.TimeoutException) and took < 0.5 + SLACK


def test_a_body_the_server_will_not_read_ends_at_the_deadline() -> None:
    """An upload to a server that accepts the connection and reads nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/upload"
    try:
        with deadline_client(1.0, timeout=30.0, bytes_per_second=64 * 1024 * 1024) as client:
            took, error = timed(lambda: client.post(url, content=b"x" * (32 * 1024 * 1024)))
        assert isinstance(error, httpx.TimeoutException), error
        assert took < 1.5 + SLACK  # 1 s, plus 0.5 s for 32 MB at 64 MB/s
    finally:
        listener.close()
        for conn in held:
            conn.close()


def test_a_plain_client_would_wait_on_the_trickle() -> None:
    """The reason for all this: per-read timeouts never fire against a trickle. A byte
    every 0.05 s against a 0.5 s read timeout: the client is still reading, byte by byte,
    at three times its timeout (the headers alone take two seconds to arrive)."""
    with TrickleServer(interval=0.05) as fast, httpx.Client(timeout=0.5) as client:
        took, error = timed(lambda: _read_for(client, f"{fast.url}/x", 1.5))
    assert error is None and took >= 1.5


def _read_for(client: httpx.Client, url: str, seconds: float) -> None:
    began = time.monotonic()
    with client.stream("GET", url) as response:
        for _ in response.iter_raw(1):
            if time.monotonic() - began > seconds:
                return


# ------------------------------------------------------------------------------ webhooks


def test_webhook_deliveries_to_a_trickling_endpoint_stay_within_its_limit(
    app: Flask, tenant: Tenant, trickle: TrickleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twenty deliveries to an endpoint that trickles, for longer than a claim's lease:
    each attempt ends at the deadline, its claim never lapses while it runs, and the
    endpoint never holds more connections than CRIER_WEBHOOK_CONCURRENCY."""
    settings = replace(
        app.config["CRIER"],
        webhook_timeout=1.0,
        webhook_concurrency=4,
        webhook_retry_base=0.05,
        webhook_retry_cap=0.1,
        webhook_max_attempts=100,
        webhook_disable_after=1000,
    )
    assert claim_lease(settings).total_seconds() > settings.webhook_timeout
    created = tenant.api.post("/webhooks", json={"url": f"{trickle.url}/in"})
    endpoint_id = created.json()["data"]["id"]
    for _ in range(20):
        assert tenant.api.post(f"/webhooks/{endpoint_id}/test").status_code in (200, 201, 202)
    db = get_db(app)
    client = webhook_client(settings)
    threads: list[threading.Thread] = []
    sending = {"now": 0, "peak": 0}
    count_lock = threading.Lock()

    def counted_send(*args: Any, **kwargs: Any) -> Any:
        """Threads inside an attempt's HTTP call at once: what a receiver holds."""
        with count_lock:
            sending["now"] += 1
            sending["peak"] = max(sending["peak"], sending["now"])
        try:
            return send_once(*args, **kwargs)
        finally:
            with count_lock:
                sending["now"] -= 1

    monkeypatch.setattr(webhooks_module, "send_once", counted_send)

    class Worker:
        """Stands in for the webhooks worker: every message runs at once on a thread."""

        def send_task(self, name: str, args: list[str], **_: Any) -> None:
            if time.monotonic() < until:  # the test is over: nobody takes the message
                run(args[0], args[1])

    def run(delivery_id: str, token: str) -> None:
        def deliver() -> None:
            with app.app_context():
                deliver_webhook(db, settings, worker, client, delivery_id, token)  # type: ignore[arg-type]

        thread = threading.Thread(target=deliver, daemon=True)
        with lock:
            threads.append(thread)
        thread.start()

    worker = Worker()
    until = time.monotonic() + settings.webhook_timeout * 2 + 6  # past the old lease
    lock = threading.Lock()
    while time.monotonic() < until:
        with db.session() as session:
            claims = claim_due(session, settings)
            session.commit()
        for claim in claims:
            run(str(claim.delivery_id), claim.token)
        time.sleep(0.2)
    with lock:
        started = list(threads)
    for thread in started:
        thread.join(timeout=settings.webhook_timeout + 5)
    assert not any(thread.is_alive() for thread in started)
    assert sending["peak"] == settings.webhook_concurrency, sending
    assert trickle.accepted > 20  # the deliveries were retried, again and again
    with db.session() as session:
        rows = session.scalars(select(WebhookDelivery)).all()
        attempted = [r for r in rows if r.attempts]
        assert attempted and all(r.latency_ms < (1.0 + SLACK) * 1000 for r in attempted)
        assert all(r.error == "Timed out after 1 s." for r in attempted)


# --------------------------------------------------------------- platforms and OAuth


def x_account() -> AccountCredentials:
    return AccountCredentials(
        account_id=1,
        platform="x",
        name="x",
        external_id="2244994945",
        access_token="token",
        refresh_token="refresh",
    )


@pytest.mark.parametrize("platform", ["x", "facebook"])
def test_a_platform_publish_call_ends_at_its_deadline(
    app: Flask, trickle: TrickleServer, platform: str
) -> None:
    settings = replace(app.config["CRIER"], platform_call_deadline=1.0, http_timeout=30.0)
    adapter = get_adapter(platform, platform_http_client(settings), trickle.url)
    request = PublishRequest(
        target_id=1,
        platform=platform,
        account=replace(x_account(), platform=platform, external_id="1000001"),
        text="hello",
        settings={},
        media=[],
    )
    took, error = timed(lambda: adapter.publish(request, NullContext()))
    assert isinstance(error, TransientError), error
    assert 1 <= trickle.accepted <= 2  # X looks up the account, then may try once more
    assert took < trickle.accepted * 1.0 + SLACK


def test_a_token_refresh_ends_at_its_deadline(app: Flask, trickle: TrickleServer) -> None:
    settings = replace(app.config["CRIER"], platform_call_deadline=1.0, http_timeout=30.0)
    adapter = get_adapter("x", platform_http_client(settings), trickle.url)
    took, error = timed(lambda: adapter.refresh_token(x_account()))
    assert isinstance(error, TransientError) and "deadline" in error.message, error
    assert took < 1.0 + SLACK


def test_an_oauth_code_exchange_ends_at_its_deadline(app: Flask, trickle: TrickleServer) -> None:
    settings = replace(app.config["CRIER"], oauth_deadline=1.0)
    with oauth_client(settings) as http:
        flow = get_flow("x", http, trickle.url)
        client = ClientApp("client", "secret", "http://127.0.0.1/callback")
        took, error = timed(lambda: flow.connect(client, "code", "verifier"))
    assert isinstance(error, OAuthError) and error.code == "platform_unreachable", error
    assert took < 1.0 + SLACK


# ------------------------------------------------------------------------- the guard


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "fec0::1",  # site-local
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b:1::a00:1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:10.0.0.1",  # IPv4-mapped
        "ff02::1",
    ],
)
def test_ipv6_forms_that_lead_inside_are_refused(address: str) -> None:
    assert address_problem(address)
    with pytest.raises(UnsafeURLError) as refused:
        resolve(f"http://[{address}]/x", allow_private=False)
    assert str(refused.value) == REFUSED


def test_every_refusal_reads_the_same() -> None:
    """A closed port, a forbidden port, a forbidden address, a name that does not resolve:
    the caller cannot tell them apart."""
    messages = set()
    for url in (
        "http://93.184.216.34:22/x",  # a public address on another port
        "http://10.0.0.1/x",
        "http://no-such-host.invalid/x",
        "http://localhost/x",
    ):
        with pytest.raises(UnsafeURLError) as refused:
            resolve(url, allow_private=False)
        messages.add(str(refused.value))
    closed = "http://127.0.0.1:1/x"  # a closed port, where private addresses are allowed
    with httpx.Client() as client, pytest.raises(UnsafeURLError) as refused:  # noqa: SIM117
        with safe_stream(client, "GET", closed, allow_private=True, deadline=2):
            pass
    messages.add(str(refused.value))
    assert messages == {REFUSED}
    assert resolve("http://93.184.216.34:8443/x", allow_private=False, ports=(8443,)).port == 8443
    assert resolve("http://127.0.0.1:9/x", allow_private=True).port == 9  # tests, `crier dev`
