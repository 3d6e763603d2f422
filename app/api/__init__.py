"""HTTP blueprints."""

from __future__ import annotations

from flask import Flask


def register_blueprints(app: Flask) -> None:
    from app.api import accounts, audit, media, meta, posts

    app.register_blueprint(meta.blueprint)
    app.register_blueprint(posts.blueprint)
    app.register_blueprint(accounts.blueprint)
    app.register_blueprint(media.blueprint)
    app.register_blueprint(audit.blueprint)
