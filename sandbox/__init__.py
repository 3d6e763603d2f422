"""A local stand-in for the platforms' publishing APIs (`crier sandbox --port N`)."""

from __future__ import annotations

import importlib

from flask import Flask, Response, request

from sandbox import oauth
from sandbox.core import SandboxState, blueprint, json_response

SANDBOX_PLATFORMS = (
    "instagram",
    "facebook",
    "threads",
    "x",
    "linkedin",
    "tiktok",
    "youtube",
    "bluesky",
    "mastodon",
)


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

    for platform in SANDBOX_PLATFORMS:
        try:
            module = importlib.import_module(f"sandbox.{platform}")
        except ModuleNotFoundError as exc:
            if exc.name != f"sandbox.{platform}":
                raise
            continue
        routes = blueprint(module.BLUEPRINT_NAME, module.ROUTES)
        app.register_blueprint(routes, url_prefix=f"/{platform}")
        # Consent pages, code exchange, identities and revocation (connect flows).
        app.register_blueprint(oauth.make_blueprint(state, platform), url_prefix=f"/{platform}")

    @app.get("/_ledger")
    def ledger() -> Response:
        platform = request.args.get("platform")
        with state.lock:
            entries = [e for e in state.ledger if platform is None or e["platform"] == platform]
        return json_response(entries)

    @app.get("/_arrived")
    def arrived() -> Response:
        """Publishing requests that arrived per platform, answered or still in flight."""
        with state.lock:
            return json_response(dict(state.arrived))

    @app.get("/_uploads")
    def uploads() -> Response:
        platform = request.args.get("platform")
        with state.lock:
            entries = [e for e in state.uploads if platform is None or e["platform"] == platform]
        return json_response(entries)

    @app.post("/_faults")
    def faults() -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return json_response({"error": "expected a JSON object"}, 400)
        with state.lock:
            if not body:
                state.faults.clear()
            for platform, config in body.items():
                if platform not in SANDBOX_PLATFORMS or not isinstance(config, dict):
                    return json_response({"error": f"unknown platform {platform!r}"}, 400)
                state.set_faults(platform, config)
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

    @app.post("/_reset")
    def reset() -> Response:
        state.reset()
        return json_response({"ok": True})

    return app
