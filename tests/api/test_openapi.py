"""/openapi.json describes every route, and POST /posts with the API contract's request fields.

No validator package is a dependency, so the structural rules of OpenAPI 3.0 that matter
to generators (resolvable refs, declared path parameters, unique operation ids, no siblings
beside $ref) are checked here directly.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from flask import Flask

from app.openapi import NOT_API

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
SCHEMA_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


@pytest.fixture(scope="module")
def spec(live_url: str) -> dict[str, Any]:
    response = httpx.get(f"{live_url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


def resolve(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = spec
    for part in ref[2:].split("/"):
        assert part in node, f"unresolvable $ref {ref}"
        node = node[part]
    return dict(node)


def walk(node: Any, path: str = "$") -> Any:
    """Every (path, dict) in the document."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def test_document_header(spec: dict[str, Any]) -> None:
    assert spec["openapi"] == "3.0.3"
    assert spec["info"]["title"] == "Crier API"
    assert spec["info"]["version"]
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "apiKey"}


def test_every_route_is_described(spec: dict[str, Any], app: Flask) -> None:
    expected: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint in NOT_API:  # the docs page's own files
            continue
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                expected.add((path, method.lower()))
    described = {
        (path, method)
        for path, operations in spec["paths"].items()
        for method in operations
        if method in HTTP_METHODS
    }
    assert described == expected
    for must in (
        ("/posts", "post"),
        ("/posts", "get"),
        ("/posts/{post_id}", "patch"),
        ("/posts/{post_id}", "delete"),
        ("/posts/{post_id}/retry", "post"),
        ("/posts/bulk", "post"),
        ("/media/upload", "post"),
        ("/accounts/{account_id}", "get"),
    ):
        assert must in described


def test_create_post_request_body_has_the_seed_fields(spec: dict[str, Any]) -> None:
    operation = spec["paths"]["/posts"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    schema = resolve(spec, body["content"]["application/json"]["schema"]["$ref"])
    assert set(schema["properties"]) == {
        "content",
        "account_ids",
        "scheduled_at",
        "timezone",
        "media_ids",
        "platform_content",
        # The API contract's fields beyond the basic create.
        "draft",
        "campaign_id",
        "cover_photo",
        # Onboarding: profiles.
        "profile_id",
    }
    assert sorted(schema["required"]) == ["account_ids", "content"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["content"]["type"] == "string"
    assert props["account_ids"] == {**props["account_ids"], "type": "array"}
    assert props["account_ids"]["items"]["type"] == "integer"
    assert props["media_ids"]["items"] == {"type": "string", "format": "uuid"}
    [ref] = [item["$ref"] for item in props["platform_content"]["allOf"]]
    platform_content = resolve(spec, ref)
    assert set(platform_content["properties"]) == {
        "instagram",
        "tiktok",
        "youtube",
        "linkedin",
        "x",
        "facebook",
        "threads",
        "telegram",
        "discord",
        "bluesky",
        "mastodon",
        "pinterest",
        "wordpress",
    }
    instagram = resolve(spec, platform_content["properties"]["instagram"]["$ref"])
    assert instagram["properties"]["contentType"]["enum"] == [
        "Post",
        "Story",
        "Reels",
        "Trial Reel",
    ]
    settings = resolve(spec, instagram["properties"]["settings"]["$ref"])
    assert settings["properties"]["altText"]["maxLength"] == 100
    tiktok = resolve(spec, platform_content["properties"]["tiktok"]["$ref"])
    tiktok_settings = resolve(spec, tiktok["properties"]["settings"]["$ref"])
    assert set(tiktok_settings["properties"]) == {
        "privacyLevel",
        "allowComments",
        "allowDuet",
        "allowStitch",
    }
    youtube = resolve(spec, platform_content["properties"]["youtube"]["$ref"])
    youtube_settings = resolve(spec, youtube["properties"]["settings"]["$ref"])
    assert set(youtube_settings["properties"]) == {"title", "privacyStatus", "tags"}
    telegram = resolve(spec, platform_content["properties"]["telegram"]["$ref"])
    telegram_settings = resolve(spec, telegram["properties"]["settings"]["$ref"])
    assert telegram_settings["properties"]["parseMode"]["enum"] == ["HTML", "MarkdownV2"]
    discord = resolve(spec, platform_content["properties"]["discord"]["$ref"])
    discord_settings = resolve(spec, discord["properties"]["settings"]["$ref"])
    assert discord_settings["properties"]["embeds"]["maxItems"] == 10
    assert operation["responses"]["201"]["content"]["application/json"]["schema"]
    header_params = [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert header_params == ["Idempotency-Key"]


def test_operations_are_well_formed(spec: dict[str, Any]) -> None:
    operation_ids: list[str] = []
    for path, operations in spec["paths"].items():
        template_params = set(re.findall(r"{(\w+)}", path))
        for method, operation in operations.items():
            assert method in HTTP_METHODS, (path, method)
            operation_ids.append(operation["operationId"])
            assert operation["summary"], (path, method)
            responses = operation["responses"]
            # Success is a 2xx, or a redirect for the browser's side of a connect flow.
            assert any(code[0] in "23" for code in responses), (path, method)
            for code, response in responses.items():
                assert re.fullmatch(r"[1-5]\d\d|default", code)
                assert response["description"], (path, method, code)
            params = operation.get("parameters", [])
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == template_params, (path, method)
            for param in params:
                assert param["in"] in {"path", "query", "header", "cookie"}
                assert "schema" in param
                if param["in"] == "path":
                    assert param["required"] is True
            for requirement in operation.get("security", []):
                assert set(requirement) <= set(spec["components"]["securitySchemes"])
    assert len(operation_ids) == len(set(operation_ids))


def test_path_parameter_types(spec: dict[str, Any]) -> None:
    [account_id] = spec["paths"]["/accounts/{account_id}"]["get"]["parameters"]
    assert account_id["schema"] == {"type": "integer", "format": "int64", "minimum": 1}
    [post_id] = spec["paths"]["/posts/{post_id}"]["get"]["parameters"]
    assert post_id["schema"] == {"type": "string", "format": "uuid"}


def test_refs_resolve_and_stand_alone(spec: dict[str, Any]) -> None:
    refs = 0
    for where, node in walk(spec):
        if "$ref" in node:
            refs += 1
            resolve(spec, node["$ref"])
            # OpenAPI 3.0 ignores anything beside $ref, so nothing may be put there.
            assert set(node) == {"$ref"}, f"{where} has siblings beside $ref: {sorted(node)}"
        if "type" in node and isinstance(node["type"], str) and not where.endswith("properties"):
            assert node["type"] in SCHEMA_TYPES | {"http", "apiKey"}, where
    assert refs > 20


def test_docs_page(live_url: str) -> None:
    response = httpx.get(f"{live_url}/docs")
    assert response.status_code == 200
    assert "<title>Crier API</title>" in response.text
    assert "cdn" not in response.text.lower() and "https://" not in response.text
    init = httpx.get(f"{live_url}/docs/init.js")
    assert init.status_code == 200 and "url: '/openapi.json'" in init.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert f"/docs/static/{name}" in response.text
        asset = httpx.get(f"{live_url}/docs/static/{name}")
        assert asset.status_code == 200 and len(asset.content) > 1000, name
    assert httpx.get(f"{live_url}/docs/static/index.j2").status_code == 404


# The API contract's routes beyond POST /posts, each with schemas and examples.
ONBOARDING_ROUTES = [
    ("/profiles", "get"),
    ("/profiles", "post"),
    ("/profiles/{profile_id}", "get"),
    ("/profiles/{profile_id}", "patch"),
    ("/profiles/{profile_id}", "delete"),
    ("/keys", "get"),
    ("/keys", "post"),
    ("/keys/{key_id}", "delete"),
    ("/accounts", "post"),
    ("/accounts/{account_id}", "patch"),
    ("/accounts/{account_id}", "delete"),
    ("/accounts/connect", "post"),
]
SEED_PRODUCT_ROUTES = [
    *ONBOARDING_ROUTES,
    ("/me", "get"),
    ("/platform-rules", "get"),
    ("/accounts/{account_id}/health", "get"),
    ("/media/upload-from-url", "post"),
    ("/media", "get"),
    ("/media/{media_id}", "delete"),
    ("/webhooks", "get"),
    ("/webhooks", "post"),
    ("/webhooks/{webhook_id}", "get"),
    ("/webhooks/{webhook_id}", "patch"),
    ("/webhooks/{webhook_id}", "delete"),
    ("/webhooks/{webhook_id}/test", "post"),
    ("/webhooks/{webhook_id}/deliveries", "get"),
    ("/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", "post"),
    ("/campaigns", "get"),
    ("/campaigns", "post"),
    ("/campaigns/{campaign_id}", "get"),
    ("/campaigns/{campaign_id}", "patch"),
    ("/campaigns/{campaign_id}", "delete"),
    ("/posts/retry-failed", "post"),
    ("/posts/{post_id}/schedule", "post"),
    ("/ai/generate-caption", "post"),
    ("/posts/{post_id}/retry", "post"),
    ("/posts", "get"),
]


def test_seed_product_routes_have_schemas_and_examples(spec: dict[str, Any]) -> None:
    for path, method in SEED_PRODUCT_ROUTES:
        operation = spec["paths"][path][method]
        # The main success (POST /accounts also documents 200 for a reconnect).
        [(_status, response)] = [
            (code, r)
            for code, r in operation["responses"].items()
            if code.startswith("2") and "example" in r["content"].get("application/json", {})
        ]
        content = response["content"]["application/json"]
        data = content["schema"]["properties"]["data"]
        assert data != {"nullable": True}, (path, method, "no response schema")
        assert content["example"]["data"] is not None, (path, method, "no response example")
        if "requestBody" in operation:
            body = operation["requestBody"]["content"]["application/json"]
            assert "$ref" in body["schema"] and body["example"], (path, method)
    created = spec["paths"]["/webhooks"]["post"]["responses"]["201"]
    assert created["content"]["application/json"]["example"]["data"]["secret"].startswith("whsec_")
    list_posts = spec["paths"]["/posts"]["get"]["parameters"]
    names = {p["name"] for p in list_posts if p["in"] == "query"}
    assert {
        "created_after",
        "scheduled_before",
        "published_after",
        "updated_after",
        "search",
        "sort",
        "order",
        "campaign_id",
    } <= names


def test_connect_browser_routes_are_documented_as_redirects(spec: dict[str, Any]) -> None:
    callback = spec["paths"]["/oauth/{platform}/callback"]["get"]
    assert "302" in callback["responses"] and "security" not in callback
    assert "pkce_mismatch" in callback["responses"]["302"]["description"]
    assert "302" in spec["paths"]["/connect/{token}"]["get"]["responses"]
    page = spec["paths"]["/connect/select/{choice_token}"]["get"]["responses"]["200"]
    assert "text/html" in page["content"]
    assert "403" in spec["paths"]["/posts"]["post"]["responses"]
