"""Instagram Login and Threads share Meta's shape: code → short token (POST), then a
long-lived token (GET `grant_type=<exchange>`), then `/me`. Neither has a revoke call."""

from __future__ import annotations

from typing import Any, ClassVar

from app.oauth import ClientApp, ConnectedIdentity, OAuthFlow, expires_at


class MetaLoginFlow(OAuthFlow):
    scope_separator = ","
    exchange_grant: str
    me_path: str
    me_fields: str
    id_field: str
    kind: str
    # Settings each connected account gets (None removes a key a reconnect carried over).
    identity_settings: ClassVar[dict[str, Any]] = {}

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        short = self.exchange_code(self.url("/oauth/access_token", "oauth"), client, code)
        long_lived = self.call(
            "GET",
            self.url("/access_token"),
            "the long-lived token exchange",
            params={
                "grant_type": self.exchange_grant,
                "client_secret": client.client_secret or "",
                "access_token": short["access_token"],
            },
        )
        me = self.call(
            "GET",
            self.url(self.me_path),
            "reading the account",
            params={"fields": self.me_fields, "access_token": long_lived["access_token"]},
        )
        external_id = str(me.get(self.id_field) or short.get("user_id"))
        return [
            ConnectedIdentity(
                external_id=external_id,
                name=f"@{me['username']}" if me.get("username") else external_id,
                access_token=long_lived["access_token"],
                expires_at=expires_at(long_lived.get("expires_in")),
                kind=self.kind,
                settings=dict(self.identity_settings),
            )
        ]
