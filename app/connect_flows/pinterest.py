"""Pinterest: OAuth 2.0 authorization code (client authenticated with HTTP Basic), with
a refresh token. At connect the user's boards are read (GET /v5/boards) and kept in the
account's settings, so a caller can pick the `boardId` a Pin goes to."""

from __future__ import annotations

from typing import Any

from app.oauth import ClientApp, ConnectedIdentity, OAuthFlow, expires_at, register_flow

# Boards read at connect: Pinterest pages them by 250 at most.
BOARDS_PAGE_SIZE = 250
BOARDS_MAX_PAGES = 4


@register_flow
class PinterestFlow(OAuthFlow):
    platform = "pinterest"
    hosts = {"authorize": "www.pinterest.com", "api": "api.pinterest.com"}
    scopes = ("boards:read", "boards:write", "pins:read", "pins:write", "user_accounts:read")
    scope_separator = ","
    authorize_path = ("authorize", "/oauth/")

    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        token = self.exchange_code(self.url("/v5/oauth/token"), client, code, basic_auth=True)
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        user = self.call("GET", self.url("/v5/user_account"), "reading the user", headers=headers)
        return [
            ConnectedIdentity(
                external_id=str(user.get("id") or user["username"]),
                name=user.get("username") or str(user.get("id")),
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                expires_at=expires_at(token.get("expires_in")),
                kind=str(user.get("account_type") or "user").lower(),
                settings={"boards": self.boards(headers)},
            )
        ]

    def boards(self, headers: dict[str, str]) -> list[dict[str, Any]]:
        """The user's boards (id, name, privacy), for choosing a Pin's boardId."""
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": BOARDS_PAGE_SIZE}
        for _ in range(BOARDS_MAX_PAGES):
            page = self.call(
                "GET", self.url("/v5/boards"), "listing boards", params=params, headers=headers
            )
            found += [
                {"id": str(b["id"]), "name": b.get("name"), "privacy": b.get("privacy")}
                for b in page.get("items") or []
            ]
            if not page.get("bookmark"):
                break
            params["bookmark"] = page["bookmark"]
        return found
