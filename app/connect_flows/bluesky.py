"""Bluesky: an account connects with its handle and an app password, typed on Crier's
connect page and checked with `com.atproto.server.createSession`.

A session made with an app password is scoped `com.atproto.appPass` (or
`appPassPrivileged`); one made with the account's main password is scoped
`com.atproto.access`. The page refuses the latter (and ends that session): Crier keeps
only app passwords, which the user can revoke on their own. The app password is stored
as the account's access token and the session as its refresh token, both encrypted.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from app.config import Settings
from app.oauth import (
    ConnectedIdentity,
    CredentialField,
    CredentialFlow,
    OAuthError,
    register_credential_flow,
)

DEFAULT_PDS = "https://bsky.social"
APP_PASSWORD_SCOPES = ("com.atproto.appPass", "com.atproto.appPassPrivileged")
MAIN_PASSWORD_SCOPE = "com.atproto.access"


def jwt_claims(token: str) -> dict[str, Any]:
    """A JWT's claims, read without verifying (the PDS that issued it checks them)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


def pds_of(did_doc: Any) -> str | None:
    if not isinstance(did_doc, dict):
        return None
    for service in did_doc.get("service") or []:
        if isinstance(service, dict) and str(service.get("id", "")).endswith("#atproto_pds"):
            endpoint = str(service.get("serviceEndpoint") or "")
            if endpoint.startswith("https://"):
                return endpoint.rstrip("/")
    return None


def session_json(body: dict[str, Any], pds: str) -> str:
    """A createSession answer as the adapter keeps it (the account's refresh token)."""
    return json.dumps(
        {
            "access_jwt": body["accessJwt"],
            "refresh_jwt": body["refreshJwt"],
            "did": body["did"],
            "handle": body.get("handle") or body["did"],
            "pds": pds_of(body.get("didDoc")) or pds,
        }
    )


@register_credential_flow
class BlueskyFlow(CredentialFlow):
    platform = "bluesky"
    hosts = {"api": "bsky.social"}
    why = "Bluesky has no consent page for apps like Crier: accounts connect with an app password"
    fields = (
        CredentialField("handle", "Handle", "For example alice.bsky.social"),
        CredentialField(
            "app_password",
            "App password",
            "Made for Crier in Bluesky: Settings → Privacy and security → App passwords. "
            "Never your account password.",
            secret=True,
        ),
        CredentialField(
            "pds",
            "Hosting provider (optional)",
            "Only for accounts hosted outside Bluesky: your PDS, e.g. https://pds.example.com",
            required=False,
        ),
    )
    intro = (
        "<p>Connect your Bluesky account with an <strong>app password</strong>: a password "
        "made for one app, which you can revoke at any time without changing your own. "
        "Create one in Bluesky under <em>Settings → Privacy and security → App "
        "passwords</em> (it looks like <code>abcd-efgh-ijkl-mnop</code>) and paste it "
        "below. Crier refuses your account password.</p>"
    )

    @classmethod
    def missing_setting(cls, settings: Settings) -> str | None:
        """None: an app password is all a Bluesky connect needs."""
        return None

    def xrpc(self, method: str, pds: str) -> str:
        if self.base_url:
            return f"{self.base_url}/{self.platform}/xrpc/{method}"
        return f"{pds}/xrpc/{method}"

    def verify(self, values: dict[str, str]) -> list[ConnectedIdentity]:
        handle = values.get("handle", "").strip().lstrip("@").lower()
        password = values.get("app_password", "").strip()
        pds = (values.get("pds") or "").strip().rstrip("/") or DEFAULT_PDS
        if not handle or not password:
            raise OAuthError("invalid_credentials", "Give your handle and an app password.")
        response = self._post(
            self.xrpc("com.atproto.server.createSession", pds),
            {"identifier": handle, "password": password},
        )
        body = _json(response)
        if response.status_code != 200:
            raise _sign_in_error(response.status_code, body)
        scope = str(jwt_claims(str(body.get("accessJwt", ""))).get("scope") or "")
        if scope == MAIN_PASSWORD_SCOPE or (scope and scope not in APP_PASSWORD_SCOPES):
            self._end_session(str(body.get("refreshJwt", "")), pds)
            raise OAuthError(
                "main_password_refused",
                "That is your account password. Crier only takes an app password: create "
                "one in Bluesky under Settings → Privacy and security → App passwords.",
            )
        session = session_json(body, pds)
        account_handle = str(body.get("handle") or handle)
        return [
            ConnectedIdentity(
                external_id=account_handle,
                name=f"@{account_handle}",
                access_token=password,
                refresh_token=session,
                kind="user",
                settings={
                    "did": body.get("did"),
                    "handle": account_handle,
                    "pds": json.loads(session)["pds"],
                },
            )
        ]

    def _post(self, url: str, body: dict[str, Any], token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            return self.http.post(url, json=body, headers=headers)
        except Exception as exc:  # httpx errors and the deadline client's own
            raise OAuthError(
                "platform_unreachable", f"Bluesky could not be reached: {exc}"
            ) from exc

    def _end_session(self, refresh_jwt: str, pds: str) -> None:
        """Sign out the session a main password made: Crier keeps nothing of it."""
        try:
            self.http.post(
                self.xrpc("com.atproto.server.deleteSession", pds),
                headers={"Authorization": f"Bearer {refresh_jwt}"},
            )
        except Exception:  # best effort: the session expires on its own
            return


def _json(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _sign_in_error(status: int, body: dict[str, Any]) -> OAuthError:
    error = str(body.get("error") or "")
    if error == "AuthFactorTokenRequired":
        return OAuthError(
            "two_factor_required",
            "Bluesky asked for a sign-in code: use an app password, which needs none.",
        )
    if status == 429:
        return OAuthError(
            "rate_limited", "Bluesky refused more sign-ins for now; try again in a few minutes."
        )
    if status in (400, 401):
        return OAuthError("invalid_credentials", "Bluesky refused this handle and app password.")
    return OAuthError("platform_error", f"Bluesky answered HTTP {status}: {error or 'error'}")
