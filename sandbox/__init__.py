"""A local stand-in for the platforms' publishing APIs (`crier sandbox --port N`)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request

from sandbox import comments, insights_routes, oauth, openai_api
from sandbox.core import SandboxState, blueprint, json_response

SANDBOX_PLATFORMS = (
    "instagram",
    "facebook",
    "threads",
    "x",
    "linkedin",
    "tiktok",
    "youtube",
    "telegram",
    "discord",
    "bluesky",
    "mastodon",
    "pinterest",
    "wordpress",
)
# Other services played beside the platforms, with faults of their own: an
# OpenAI-compatible model server for AI captions, under /openai/v1.
SANDBOX_SERVICES = ("openai",)


def create_sandbox_app(state: SandboxState | None = None, fetch_media: bool = False) -> Flask:
    """`fetch_media`: pull media from the URLs posts name, as Instagram, Threads and
    Facebook do; the default for every platform, which POST /_faults can override."""
    app = Flask("crier-sandbox")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if state is None:
        state = SandboxState(fetch_media_default=fetch_media)
    elif fetch_media:
        state.fetch_media_default = True
    app.extensions["sandbox.state"] = state

    @app.before_request
    def note_generation() -> None:
        # Which ledger this request may write to: one reset later, none (SandboxState).
        g.sandbox_generation = state.generation

    for platform in SANDBOX_PLATFORMS:
        try:
            module = importlib.import_module(f"sandbox.{platform}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sandbox.{platform}":
                raise
            continue
        routes = blueprint(module.BLUEPRINT_NAME, module.ROUTES)
        app.register_blueprint(routes, url_prefix=f"/{platform}")
        # Insights: post and account figures that grow with the sandbox clock (first:
        # TikTok's user info answers the connect flows' identity read too).
        extra = insights_routes.ROUTES.get(platform)
        if extra:
            app.register_blueprint(
                blueprint(f"{platform}_insights", extra), url_prefix=f"/{platform}"
            )
        if platform in comments.ROUTES:
            # Comments under a post (first comments), beside the platform's own routes.
            comment_routes = blueprint(f"{platform}_comments", comments.ROUTES[platform])
            app.register_blueprint(comment_routes, url_prefix=f"/{platform}")
        # Consent pages, code exchange, identities and revocation (connect flows); Telegram
        # has no OAuth (a bot token and a chat).
        if platform in oauth.AUTHORIZE:
            app.register_blueprint(oauth.make_blueprint(state, platform), url_prefix=f"/{platform}")

    app.register_blueprint(
        blueprint(openai_api.BLUEPRINT_NAME, openai_api.ROUTES), url_prefix="/openai"
    )

    def of_platform(entries: Callable[[], list[dict[str, Any]]]) -> Response:
        """The entries, only those of `?platform=` when it is given."""
        platform = request.args.get("platform")
        with state.lock:
            shown = [e for e in entries() if platform is None or e["platform"] == platform]
        return json_response(shown)

    @app.get("/_ledger")
    def ledger() -> Response:
        return of_platform(lambda: state.ledger)

    @app.get("/_arrived")
    def arrived() -> Response:
        """Publishing requests that arrived per platform, answered or still in flight."""
        with state.lock:
            return json_response(dict(state.arrived))

    @app.get("/_uploads")
    def uploads() -> Response:
        return of_platform(lambda: state.uploads)

    @app.post("/_faults")
    def faults() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return json_response({"error": "expected a JSON object"}, 400)
        with state.lock:
            if not body:
                state.faults.clear()
            for platform, config in body.items():
                known = platform in SANDBOX_PLATFORMS or platform in SANDBOX_SERVICES
                if not known or not isinstance(config, dict):
                    return json_response({"error": f"unknown platform {platform!r}"}, 400)
                state.set_faults(platform, config)
                if platform == openai_api.SERVICE:
                    openai_api.remember_extras(config)
        return json_response({"ok": True})

    @app.get("/_oauth")
    def oauth_state() -> Response:
        """What the consent side saw: tokens revoked, codes issued and used."""
        with state.lock:
            data = state.store("_oauth")
            codes = data.get("codes", {})
            return json_response(
                {
                    "revoked": list(data.get("revoked", [])),
                    "codes_issued": len(codes),
                    "codes_used": sum(1 for c in codes.values() if c["used"]),
                }
            )

    @app.post("/_clock")
    def clock() -> Response:
        """Move the sandbox clock on by `advance_seconds`: insights age with it."""
        body = request.get_json(silent=True)
        advance = body.get("advance_seconds") if isinstance(body, dict) else None
        if not isinstance(advance, int | float) or isinstance(advance, bool) or advance < 0:
            return json_response({"error": "advance_seconds: a number of seconds >= 0"}, 400)
        with state.lock:
            state.clock_offset += float(advance)
            return json_response({"offset_seconds": state.clock_offset, "now": state.now()})

    @app.get("/_insights")
    def insights_log() -> Response:
        """Every insights answer given: platform, id, age_seconds and figures."""
        platform = request.args.get("platform")
        with state.lock:
            rows = [r for r in state.readings if platform is None or r["platform"] == platform]
        return json_response(rows)

    @app.post("/_reset")
    def reset() -> Response:
        state.reset()
        return json_response({"ok": True})

    return app
