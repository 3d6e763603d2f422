"""A reset starts a clean ledger, also for requests still held in flight by added
latency: a cut-off worker's late publish must not land in the next test's ledger."""

from __future__ import annotations

import threading
import time

import httpx

from sandbox import create_sandbox_app

SEND = "/telegram/bot123:abc/sendMessage"


def test_a_request_in_flight_across_a_reset_is_answered_but_not_recorded() -> None:
    app = create_sandbox_app()
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://sandbox.test") as control:
        control.post("/_faults", json={"telegram": {"latency_ms": 400}})
        answers: list[httpx.Response] = []

        def send(text: str) -> None:
            with httpx.Client(transport=transport, base_url="http://sandbox.test") as client:
                answers.append(client.post(SEND, json={"chat_id": "@crier_news", "text": text}))

        held = threading.Thread(target=send, args=("before the reset",))
        held.start()
        deadline = time.monotonic() + 5
        while control.get("/_arrived").json().get("telegram", 0) < 1:
            assert time.monotonic() < deadline, "the request never arrived"
            time.sleep(0.01)
        control.post("/_reset")
        held.join(timeout=5)
        send("after the reset")

        assert [a.status_code for a in answers] == [200, 200]
        assert [e["text"] for e in control.get("/_ledger").json()] == ["after the reset"]
