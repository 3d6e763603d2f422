"""Threads: Meta's Threads login; long-lived tokens refreshed with th_refresh_token."""

from __future__ import annotations

from app.connect_flows._meta_login import MetaLoginFlow
from app.oauth import register_flow


@register_flow
class ThreadsFlow(MetaLoginFlow):
    platform = "threads"
    hosts = {"authorize": "threads.net", "oauth": "graph.threads.net", "api": "graph.threads.net"}
    scopes = ("threads_basic", "threads_content_publish")
    authorize_path = ("authorize", "/oauth/authorize")
    exchange_grant = "th_exchange_token"
    me_path = "/v1.0/me"
    me_fields = "id,username"
    id_field = "id"
    kind = "profile"
