"""HTTP blueprints."""

from __future__ import annotations

from flask import Flask

from app.api import (
    accounts,
    ai,
    analytics,
    audit,
    campaigns,
    connect,
    keys,
    me,
    media,
    meta,
    metrics,
    posts,
    profiles,
    webhooks,
)


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(meta.blueprint)
    app.register_blueprint(posts.blueprint)
    app.register_blueprint(accounts.blueprint)
    app.register_blueprint(media.blueprint)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(campaigns.blueprint)
    app.register_blueprint(me.blueprint)
    app.register_blueprint(profiles.blueprint)
    app.register_blueprint(keys.blueprint)
    app.register_blueprint(connect.blueprint)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(audit.blueprint)
    app.register_blueprint(ai.blueprint)
    app.register_blueprint(analytics.blueprint)
