"""Instagram API with Instagram Login (the host the publishing adapter uses)."""

from __future__ import annotations

from app.oauth import register_flow
from workers.adapters.instagram import GRAPH_VERSION
from workers.adapters.oauth._meta_login import MetaLoginFlow


@register_flow
class InstagramFlow(MetaLoginFlow):
    platform = "instagram"
    hosts = {
        "authorize": "www.instagram.com",
        "oauth": "api.instagram.com",
        "api": "graph.instagram.com",
    }
    scopes = ("instagram_business_basic", "instagram_business_content_publish")
    authorize_path = ("authorize", "/oauth/authorize")
    exchange_grant = "ig_exchange_token"
    me_path = f"/{GRAPH_VERSION}/me"
    me_fields = "user_id,username"
    id_field = "user_id"
    kind = "professional_account"
