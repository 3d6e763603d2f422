"""Each delivery carries `X-Crier-Signature` (the body alone, unchanged for existing
receivers) and `X-Crier-Signature-V2`, which also covers `X-Crier-Timestamp`, so a
receiver can refuse a captured delivery sent again later."""

from __future__ import annotations

import hashlib
import hmac
import time

from flask import Flask

from app.services.webhooks import sign_v2, verify_signature, verify_signature_v2
from tests.conftest import Tenant
from tests.workers.conftest import Receiver
from tests.workers.test_rotation import deliver_all


def test_the_v2_signature_covers_the_timestamp(
    app: Flask,
    tenant: Tenant,
    receiver: tuple[Receiver, str],
) -> None:
    hook, hook_url = receiver
    endpoint = tenant.api.post("/webhooks", json={"url": hook_url}).json()["data"]
    secret = endpoint["secret"]
    assert tenant.api.post(f"/webhooks/{endpoint['id']}/test").status_code == 202
    assert deliver_all(app, app.config["CRIER"]) == ["ok"]
    [(headers, body)] = hook.requests

    # The body-only signature is exactly what receivers verify today.
    assert headers["X-Crier-Signature"] == (
        "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    )
    assert verify_signature(secret, body, headers["X-Crier-Signature"])

    timestamp = headers["X-Crier-Timestamp"]
    v2 = headers["X-Crier-Signature-V2"]
    assert abs(int(timestamp) - time.time()) < 60
    # The recipe, done by hand: HMAC-SHA256 of "<t>.<raw body>".
    signed = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    assert v2 == f"t={timestamp},v1={expected}"
    assert verify_signature_v2(secret, body, v2)

    # A replay with a fresh timestamp, or the same one past the tolerance, is refused.
    later = int(timestamp) + 3600
    forged = v2.replace(f"t={timestamp}", f"t={later}")
    assert not verify_signature_v2(secret, body, forged, now=later)
    assert not verify_signature_v2(secret, body, v2, now=int(timestamp) + 301)
    assert verify_signature_v2(secret, body, v2, now=int(timestamp) + 299)
    # The body and the secret still matter.
    assert not verify_signature_v2(secret, body + b" ", v2)
    assert not verify_signature_v2("whsec_other", body, v2)
    assert not verify_signature_v2(secret, body, "v1=" + expected)


def test_a_new_timestamp_needs_a_new_signature() -> None:
    body = b'{"id":"e1"}'
    first = sign_v2("whsec_s", 1_700_000_000, body)
    second = sign_v2("whsec_s", 1_700_000_001, body)
    assert first.split(",v1=")[1] != second.split(",v1=")[1]
