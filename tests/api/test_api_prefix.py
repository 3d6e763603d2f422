"""Every route answers under `/api/v1` too, where the seed product's clients call it; the
short paths stay as they are."""

from __future__ import annotations

from tests.conftest import Tenant


def test_a_route_answers_the_same_under_the_version_prefix(tenant: Tenant) -> None:
    short = tenant.api.get("/me")
    prefixed = tenant.api.get("/api/v1/me")
    assert short.status_code == prefixed.status_code == 200
    assert prefixed.json()["data"] == short.json()["data"]


def test_errors_and_writes_keep_the_envelope_under_the_prefix(tenant: Tenant) -> None:
    missing = tenant.api.get("/api/v1/posts/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    refused = tenant.api.post("/api/v1/posts", json={"content": "no accounts"})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "validation_error"
    unknown = tenant.api.get("/api/v1/nowhere")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_only_the_whole_prefix_counts(tenant: Tenant) -> None:
    # `/api/v10` or `/api/v1x` are not the prefix: they are unknown paths.
    assert tenant.api.get("/api/v1x/me").status_code == 404
    assert tenant.api.get("/api/v10/me").status_code == 404
    assert tenant.api.get("/api/v1/health").status_code == 200
