"""The OpenAPI 3 document, generated from the routes and the marshmallow schemas."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask
from werkzeug.routing import IntegerConverter

from app import openapi_extra as extra
from app import response_schemas, schemas, webhook_schemas
from app.api import accounts, ai, campaigns, connect, keys, profiles
from app.openapi_examples import EXAMPLES
from app.services.uploads import UploadRequest

# endpoint → (request body schema, response data schema, success status)
OPERATIONS: dict[str, tuple[Any, Any, int]] = {
    "posts.create_post": (schemas.CreatePostSchema, response_schemas.PostCreatedOut, 201),
    "posts.bulk_create_posts": (schemas.BulkCreateSchema, None, 201),
    "posts.list_posts": (None, response_schemas.PostOut(many=True), 200),
    "posts.get_post": (None, response_schemas.PostOut, 200),
    "posts.get_post_results": (None, None, 200),
    "posts.update_post": (schemas.UpdatePostSchema, response_schemas.PostOut, 200),
    "posts.cancel_post": (None, response_schemas.PostOut, 200),
    "posts.retry_post": (schemas.RetryPostSchema, response_schemas.PostOut, 200),
    "posts.retry_failed_posts": (schemas.RetryFailedSchema, extra.RetryFailedOut, 200),
    "posts.schedule_post": (schemas.SchedulePostSchema, response_schemas.PostOut, 200),
    "accounts.list_accounts": (None, response_schemas.AccountOut(many=True), 200),
    "accounts.get_account": (None, response_schemas.AccountOut, 200),
    "accounts.get_account_health": (None, extra.AccountHealthOut, 200),
    "media.upload_media": ("multipart", response_schemas.MediaOut, 201),
    "media.upload_media_from_url": (schemas.UploadFromUrlSchema, response_schemas.MediaOut, 202),
    "media.list_media": (None, response_schemas.MediaOut(many=True), 200),
    "media.get_media": (None, response_schemas.MediaOut, 200),
    "media.delete_media": (None, extra.MediaDeletedOut, 200),
    "webhooks.list_webhooks": (None, webhook_schemas.WebhookOut(many=True), 200),
    "webhooks.create_webhook": (
        webhook_schemas.WebhookCreateSchema,
        webhook_schemas.WebhookCreatedOut,
        201,
    ),
    "webhooks.get_webhook": (None, webhook_schemas.WebhookOut, 200),
    "webhooks.update_webhook": (
        webhook_schemas.WebhookUpdateSchema,
        webhook_schemas.WebhookOut,
        200,
    ),
    "webhooks.delete_webhook": (None, extra.DeletedOut, 200),
    "webhooks.test_webhook": (None, webhook_schemas.WebhookDeliveryOut, 202),
    "webhooks.list_deliveries": (None, webhook_schemas.WebhookDeliveryOut(many=True), 200),
    "webhooks.redeliver": (None, webhook_schemas.WebhookDeliveryOut, 202),
    "campaigns.list_campaigns": (None, campaigns.CampaignOut(many=True), 200),
    "campaigns.create_campaign": (campaigns.CampaignCreateSchema, campaigns.CampaignOut, 201),
    "campaigns.get_campaign": (None, campaigns.CampaignOut, 200),
    "campaigns.update_campaign": (campaigns.CampaignUpdateSchema, campaigns.CampaignOut, 200),
    "campaigns.delete_campaign": (None, extra.CampaignDeletedOut, 200),
    "me.me": (None, extra.MeOut, 200),
    "me.platform_rules": (None, extra.PlatformRulesOut, 200),
    # onboarding: profiles, keys, accounts over HTTP, connect links
    "profiles.list_profiles": (None, extra.ProfileOut(many=True), 200),
    "profiles.create_profile": (profiles.ProfileCreateSchema, extra.ProfileOut, 201),
    "profiles.get_profile": (None, extra.ProfileOut, 200),
    "profiles.update_profile": (profiles.ProfileUpdateSchema, extra.ProfileOut, 200),
    "profiles.delete_profile": (None, extra.ProfileDeletedOut, 200),
    "keys.list_keys": (None, extra.KeyOut(many=True), 200),
    "keys.create_key": (keys.KeyCreateSchema, extra.KeyCreatedOut, 201),
    "keys.revoke_key": (None, extra.KeyOut, 200),
    "accounts.create_account": (accounts.AccountCreateSchema, response_schemas.AccountOut, 201),
    "accounts.update_account": (accounts.AccountUpdateSchema, response_schemas.AccountOut, 200),
    "accounts.delete_account": (None, extra.AccountDeletedOut, 200),
    "connect.create_connect_link": (connect.ConnectLinkSchema, extra.ConnectLinkOut, 201),
    "media.start_media_upload": (UploadRequest, None, 201),
    "media.complete_media_upload": (None, extra.MediaCompletedOut, 201),
    "audit.list_audit_log": (None, response_schemas.AuditEventOut(many=True), 200),
    "ai.generate_caption": (ai.GenerateCaptionSchema, ai.CaptionsOut, 200),
}
# Other successes of an operation, with the same body as its main one.
ALSO_SUCCESS = {
    "accounts.create_account": {
        200: "An account already known by platform and external_id was reconnected: same id."
    },
}
# Routes a browser walks during a connect flow: redirects and small HTML pages, no key.
BROWSER = {
    "connect.open_connect_link": "Redirect to the platform's consent page, setting the "
    "cookie that binds the flow to this browser (HttpOnly, SameSite=Lax, scoped to the "
    "callback). A used or expired link answers an HTML page (410), never a redirect. "
    "Bluesky links answer a form (handle and app password) and Mastodon links ask for "
    "the instance first (200, HTML).",
    "connect.oauth_callback": "Redirect to redirect_url with status=connected&account_id="
    "…&account_ids=…&platform=…&profile_id=…&state=…, or status=error&error=<code>&"
    "error_description=… (access_denied, state_replayed, state_invalid, link_expired, "
    "browser_mismatch (the consent came back to another browser than the one that "
    "opened the link), pkce_mismatch, platform_error, no_accounts, account_mismatch); "
    "or to the page "
    "selection when several Pages were granted.",
    "connect.choose_pages": "An HTML page: one checkbox per Page or organisation granted.",
    "connect.submit_pages": "Redirect to redirect_url with the accounts picked.",
    "connect.submit_credentials": "The form of a platform that connects on Crier's own page "
    "(Telegram's chat; a Discord webhook URL while Crier's Discord app is not set; Bluesky's "
    "handle and app password; a WordPress site's site_url, username and "
    "application_password), checked at the platform: redirect to redirect_url as after a "
    "consent, or the page again (400) with the platform's reason. Mastodon: Crier's app is "
    "registered on the instance named, then a redirect to its consent page.",
}
# How a receiver checks a delivery (app/services/webhooks.py signs them).
WEBHOOK_DELIVERIES = (
    "Each event is POSTed as JSON `{id, type, created_at, data}` with the headers "
    "`X-Crier-Event`, `X-Crier-Delivery`, `X-Crier-Timestamp` (unix seconds), "
    "`X-Crier-Signature: sha256=<hex HMAC-SHA256 of the raw body>` and "
    '`X-Crier-Signature-V2: t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">`, '
    "both keyed with the endpoint's secret (`whsec_…`). To refuse replays, verify V2: "
    "split the header on commas into `t` and `v1`, compute the HMAC of the bytes "
    '`t + "." + raw body`, compare it with `v1` in constant time, and refuse a `t` more '
    "than 5 minutes from your clock (and, ideally, an `X-Crier-Delivery` already seen)."
)
QUERY_SCHEMAS = {
    "posts.list_posts": schemas.ListPostsQuery,
    "accounts.list_accounts": schemas.PageQuery,
    "media.list_media": schemas.ListMediaQuery,
    "media.delete_media": extra.DeleteMediaQuery,
    "posts.cancel_post": extra.DeletePostQuery,
    "webhooks.list_webhooks": schemas.PageQuery,
    "webhooks.list_deliveries": webhook_schemas.DeliveriesQuery,
    "campaigns.list_campaigns": campaigns.CampaignsQuery,
    "profiles.list_profiles": extra.ProfilesQuery,
    "profiles.delete_profile": extra.DeleteProfileQuery,
    "keys.list_keys": schemas.PageQuery,
    "audit.list_audit_log": schemas.AuditLogQuery,
    "analytics.summary": extra.AnalyticsPeriodQuery,
    "analytics.export_csv": extra.AnalyticsPeriodQuery,
    "analytics.account_analytics": extra.AnalyticsPeriodQuery,
}
PUBLIC = {
    "meta.health",
    "meta.openapi",
    "meta.docs",
    "media.public_file",
    "metrics.metrics",
    *BROWSER,
}
# Errors of the public endpoints (the others document every code in ERROR_CODES).
PUBLIC_ERRORS = {
    "meta.health": {503: "unhealthy"},
    "media.public_file": {404: "not_found", 410: "link_expired"},
}
# Errors of an authenticated endpoint of its own, on top of ERROR_CODES.
OWN_ERRORS = {
    "ai.generate_caption": {
        402: "insufficient_credits (this month's AI credits are spent)",
        501: "ai_not_configured (the operator set no model)",
        502: "ai_unreachable, ai_rate_limited, ai_auth_failed, ai_model_not_found, "
        "ai_upstream_error, ai_request_rejected, ai_bad_answer (the model's server)",
        504: "ai_timeout (the model did not answer within CRIER_AI_DEADLINE)",
    },
}
# OpenAPI links: where the id a response returns can be used next (clients and
# schemathesis's stateful runs follow them).
LINKS: dict[str, dict[str, tuple[str, str, str]]] = {
    "posts.create_post": {
        "GetPost": ("posts_get_post", "post_id", "$response.body#/data/post_id"),
        "GetPostResults": ("posts_get_post_results", "post_id", "$response.body#/data/post_id"),
        "UpdatePost": ("posts_update_post", "post_id", "$response.body#/data/post_id"),
        "CancelPost": ("posts_cancel_post", "post_id", "$response.body#/data/post_id"),
        "RetryPost": ("posts_retry_post", "post_id", "$response.body#/data/post_id"),
    },
    "media.upload_media": {
        "GetMedia": ("media_get_media", "media_id", "$response.body#/data/id"),
        "DeleteMedia": ("media_delete_media", "media_id", "$response.body#/data/id"),
    },
}
# Success bodies that are not the JSON envelope.
RAW_SUCCESS = {
    "meta.docs": {"text/html": {"schema": {"type": "string"}}},
    "media.public_file": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    "metrics.metrics": {"text/plain": {"schema": {"type": "string"}}},
    "analytics.export_csv": {"text/csv": {"schema": {"type": "string"}}},
}
ERROR_CODES = {
    400: "validation_error",
    401: "invalid_api_key",
    403: "insufficient_scope (the key lacks the route's scope)",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable (bulk: every item failed; media_fetch_failed)",
    429: "rate_limited",
}


def _envelope(data_schema: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"nullable": True}
    if data_schema is not None:
        data = data_schema
    return {
        "type": "object",
        "properties": {
            "data": data,
            # OpenAPI 3.0 ignores siblings of $ref, so nullable goes around it.
            "error": {"allOf": [{"$ref": "#/components/schemas/Error"}], "nullable": True},
            "meta": {"$ref": "#/components/schemas/Meta"},
        },
    }


# Path parameters that are UUIDs although their route converter is a plain string.
UUID_PARAMETERS = {"post_id", "media_id", "webhook_id", "delivery_id"}
INTEGER_PARAMETER = {"type": "integer", "format": "int64", "minimum": 1}
RuleInfo = tuple[str, str, tuple[str, ...], str, tuple[str, ...]]
# POSTs whose body may be left out.
OPTIONAL_BODIES = {"posts.retry_post"}


def _path_schema(name: str, integer_params: tuple[str, ...]) -> dict[str, Any]:
    if name in integer_params:
        return dict(INTEGER_PARAMETER)
    if name in UUID_PARAMETERS:
        return {"type": "string", "format": "uuid"}
    return {"type": "string"}


@lru_cache(maxsize=4)
def _build(app_name: str, rules: tuple[RuleInfo, ...]) -> dict[str, Any]:
    spec = APISpec(
        title="Crier API",
        version="1.0.0",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Publish social media posts on time, once, to every platform."},
    )
    spec.tag({"name": "webhooks", "description": WEBHOOK_DELIVERIES})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme(
        "apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )
    spec.components.schema(
        "Error",
        {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "code": {"type": "string"},
                "details": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    )
    spec.components.schema(
        "Meta",
        {
            "type": "object",
            "properties": {"request_id": {"type": "string"}, "timestamp": {"type": "string"}},
        },
    )
    for endpoint, path, methods, doc, integer_params in rules:
        body, data, status = OPERATIONS.get(endpoint, (None, None, 200))
        for method in methods:
            if endpoint in BROWSER:
                spec.path(
                    path=path, operations={method.lower(): _browser_operation(endpoint, doc, path)}
                )
                continue
            operation: dict[str, Any] = {
                "summary": doc,
                "operationId": endpoint.replace(".", "_"),
                "tags": [endpoint.split(".")[0]],
                "responses": {
                    str(status): {
                        "description": "Success",
                        "content": RAW_SUCCESS.get(
                            endpoint, {"application/json": {"schema": _envelope(data)}}
                        ),
                    }
                },
            }
            request_example, response_example = EXAMPLES.get(endpoint, (None, None))
            if response_example is not None:
                operation["responses"][str(status)]["content"]["application/json"]["example"] = {
                    "data": response_example,
                    "error": None,
                    "meta": {"request_id": "a1b2c3d4", "timestamp": "2026-04-10T12:00:00.000Z"},
                }
            if endpoint in LINKS:
                operation["responses"][str(status)]["links"] = {
                    name: {"operationId": target, "parameters": {param: source}}
                    for name, (target, param, source) in LINKS[endpoint].items()
                }
            for code, description in ALSO_SUCCESS.get(endpoint, {}).items():
                operation["responses"][str(code)] = {
                    "description": description,
                    "content": {"application/json": {"schema": _envelope(data)}},
                }
            own = {**PUBLIC_ERRORS.get(endpoint, {}), **OWN_ERRORS.get(endpoint, {})}
            for code, name in own.items():
                operation["responses"][str(code)] = {
                    "description": name,
                    "content": {"application/json": {"schema": _envelope(None)}},
                }
            if endpoint not in PUBLIC:
                operation["security"] = [{"bearer": []}, {"apiKey": []}]
                for code, name in ERROR_CODES.items():
                    operation["responses"][str(code)] = {
                        "description": name,
                        "content": {"application/json": {"schema": _envelope(None)}},
                    }
            if body == "multipart":
                operation["requestBody"] = {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": {"type": "string", "format": "binary"}},
                                "required": ["file"],
                            }
                        }
                    },
                }
            elif body is not None:
                content: dict[str, Any] = {"schema": body}
                if request_example is not None:
                    content["example"] = request_example
                operation["requestBody"] = {
                    "required": endpoint not in OPTIONAL_BODIES,
                    "content": {"application/json": content},
                }
            parameters: list[dict[str, Any]] = [
                {
                    "in": "path",
                    "name": name,
                    "required": True,
                    "schema": _path_schema(name, integer_params),
                }
                for name in re.findall(r"{(\w+)}", path)
            ]
            if endpoint in QUERY_SCHEMAS:
                parameters.append({"in": "query", "schema": QUERY_SCHEMAS[endpoint]})
            if endpoint == "posts.create_post":
                parameters.append(
                    {
                        "in": "header",
                        "name": "Idempotency-Key",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 255},
                        "description": "A repeat with the same key and body within 24 h "
                        "returns the original post.",
                    }
                )
            if parameters:
                operation["parameters"] = parameters
            spec.path(path=path, operations={method.lower(): operation})
    return spec.to_dict()


def _browser_operation(endpoint: str, doc: str, path: str) -> dict[str, Any]:
    page = endpoint == "connect.choose_pages"
    html = {"text/html": {"schema": {"type": "string"}}}
    response: dict[str, Any] = {"description": BROWSER[endpoint]}
    if page:
        response["content"] = html
    responses: dict[str, Any] = {"200" if page else "302": response}
    if page:
        responses["302"] = {"description": "Redirect to redirect_url with the error code."}
    # A link, state or selection that matches nothing gets a small HTML page: there is no
    # redirect_url to send the browser back to.
    responses["400"] = {"description": "An invalid state or selection link.", "content": html}
    responses["404"] = {"description": "An unknown link or platform.", "content": html}
    if endpoint in ("connect.open_connect_link", "connect.submit_credentials"):
        responses["410"] = {"description": "A used or expired link.", "content": html}
    if endpoint == "connect.open_connect_link":
        responses["200"] = {
            "description": "Crier's own connect page, for a platform without a consent page "
            "(Telegram, Discord without Crier's app, WordPress).",
            "content": html,
        }
    operation: dict[str, Any] = {
        "summary": doc,
        "operationId": endpoint.replace(".", "_"),
        "tags": ["connect"],
        "responses": responses,
    }
    names = re.findall(r"{(\w+)}", path)
    if names:
        operation["parameters"] = [
            {"in": "path", "name": n, "required": True, "schema": {"type": "string"}} for n in names
        ]
    return operation


# The docs page's own script and Swagger UI's files: served for /docs, not API operations.
NOT_API = {"static", "meta.docs_init", "meta.docs_static"}


def build_spec(app: Flask) -> dict[str, Any]:
    rules = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint in NOT_API:
            continue
        view = app.view_functions[rule.endpoint]
        doc = (view.__doc__ or "").strip().splitlines()[0] if view.__doc__ else rule.endpoint
        path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule)
        methods = tuple(sorted(m for m in rule.methods or () if m not in {"HEAD", "OPTIONS"}))
        integer_params = tuple(
            sorted(
                name
                for name, converter in rule._converters.items()
                if isinstance(converter, IntegerConverter)
            )
        )
        rules.append((rule.endpoint, path, methods, doc, integer_params))
    return _build(app.name, tuple(rules))
