"""The interface of a platform's OAuth connect flow, and the registry the API reads.

The flows themselves live one module per platform in `app/connect_flows/`, on the API
side because the API runs them. The app looks them up here by platform; importing that
package (as `create_app` does) registers each flow.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from app.config import Settings
from app.http_deadline import deadline_client

TIMEOUT = httpx.Timeout(20.0, connect=5.0)


def oauth_client(settings: Settings) -> httpx.Client:
    """The client a flow talks to the platform with: each call (a code exchange, a
    revoke) ends within CRIER_OAUTH_DEADLINE, however slowly the platform answers."""
    return deadline_client(settings.oauth_deadline, timeout=TIMEOUT, follow_redirects=False)


@dataclass(frozen=True)
class ClientApp:
    """Crier's app at the platform: CRIER_<PLATFORM>_CLIENT_ID / _CLIENT_SECRET."""

    client_id: str
    client_secret: str | None
    redirect_uri: str


@dataclass(frozen=True)
class ConnectedIdentity:
    """One account the user granted: a member, a Page, an organisation, a channel."""

    external_id: str
    name: str
    access_token: str
    refresh_token: str | None = None
    expires_at: datetime | None = None
    kind: str = "account"
    settings: dict[str, Any] = field(default_factory=dict)


class OAuthError(Exception):
    """A flow that cannot finish; `code` lands on the caller's redirect_url."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def client_app(settings: Settings, platform: str, redirect_uri: str) -> ClientApp | None:
    """Crier's app at the platform, or None when no client id is set (not configured)."""
    app = settings.platform_app(platform)
    if not app.client_id:
        return None
    return ClientApp(app.client_id, app.client_secret, redirect_uri)


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge), RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def expires_at(seconds: Any) -> datetime | None:
    try:
        value = int(seconds)
    except (TypeError, ValueError):
        return None
    return datetime.now(UTC) + timedelta(seconds=value) if value > 0 else None


class OAuthFlow(ABC):
    """One platform's authorization-code flow: the authorize URL, the code exchange
    (ending in the accounts the user granted), and the revoke call where there is one."""

    platform: str
    # Which sign-in this is, where a platform has several (Instagram: "instagram" for
    # Instagram Login, "facebook" for Facebook Login by way of the linked Pages); empty
    # means the platform's own, which is also its default.
    login: str = ""
    # The platform whose app (CRIER_<X>_CLIENT_ID / _SECRET) and hosts the flow uses, when
    # that is another platform's: Instagram through Facebook Login is Facebook's app and
    # graph.facebook.com (and, under CRIER_PLATFORM_BASE_URL, the paths under /facebook).
    app_platform: str = ""
    # The platform's real hosts, by role ("authorize", "api", ...).
    hosts: dict[str, str]
    scopes: tuple[str, ...]
    scope_separator: str = " "
    # PKCE (S256) is required by the platform (X, TikTok).
    pkce: bool = False
    # Facebook Pages (and LinkedIn pages) may be several: the user picks on Crier.
    offers_choice: bool = False
    has_revoke: bool = False
    # Accounts live on servers of their own (Mastodon instances): the link's page asks
    # for the server first, and Crier registers its app there (no CRIER_<X>_CLIENT_ID).
    per_instance: bool = False

    def __init__(
        self, http: httpx.Client, base_url: str | None = None, settings: Settings | None = None
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/") if base_url else None
        # The process's settings (LinkedIn's API version); the defaults where none are given.
        self.settings = settings or Settings()
        # The account's server (`https://host`) for a per-instance flow.
        self.instance: str | None = None

    @classmethod
    def login_name(cls) -> str:
        return cls.login or cls.platform

    @classmethod
    def missing_setting(cls, settings: Settings) -> str | None:
        """A variable this server must set, beside the client app, before the flow can
        connect (Crier's Discord bot for a bot install); None when nothing is missing."""
        return None

    @classmethod
    def client_platform(cls) -> str:
        """Whose app credentials this flow signs in with."""
        return cls.app_platform or cls.platform

    def url(self, path: str, host: str = "api") -> str:
        """The platform's URL, or `{CRIER_PLATFORM_BASE_URL}/{platform}{path}` when set."""
        if self.base_url:
            return f"{self.base_url}/{self.client_platform()}{path}"
        if self.per_instance:
            if not self.instance:
                raise OAuthError("instance_required", "The account's server is not known.")
            return f"{self.instance}{path}"
        return f"https://{self.hosts[host]}{path}"

    def register_app(self, redirect_uri: str) -> tuple[ClientApp, dict[str, Any]]:
        """A per-instance flow's app on `self.instance`, and the server's limits."""
        raise NotImplementedError

    def authorize_params(
        self, client: ClientApp, state: str, code_challenge: str | None
    ) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": self.scope_separator.join(self.scopes),
            "state": state,
        }
        if code_challenge:
            params["code_challenge"] = code_challenge
            params["code_challenge_method"] = "S256"
        return params

    @property
    @abstractmethod
    def authorize_path(self) -> tuple[str, str]:
        """(host role, path) of the platform's consent page."""

    def authorize_url(self, client: ClientApp, state: str, code_challenge: str | None) -> str:
        host, path = self.authorize_path
        query = urlencode(self.authorize_params(client, state, code_challenge))
        return f"{self.url(path, host)}?{query}"

    @abstractmethod
    def connect(
        self, client: ClientApp, code: str, code_verifier: str | None
    ) -> list[ConnectedIdentity]:
        """Exchange the code and read who granted what: the accounts to add."""

    def revoke(self, client: ClientApp | None, identity_token: str) -> bool:
        """Revoke the token at the platform; False where the platform has no revoke call."""
        return False

    # -- helpers ----------------------------------------------------------------------------

    def exchange_code(
        self,
        url: str,
        client: ClientApp,
        code: str,
        *,
        basic_auth: bool = False,
        **extra: str,
    ) -> dict[str, Any]:
        """The authorization-code exchange (RFC 6749 4.1.3): the app's credentials in the
        form, or as HTTP Basic where the platform wants them there; `extra` adds fields."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            **extra,
        }
        secret = client.client_secret or ""
        if basic_auth:
            auth = (client.client_id, secret)
            return self.call("POST", url, "the token exchange", data=form, auth=auth)
        form |= {"client_id": client.client_id, "client_secret": secret}
        return self.call("POST", url, "the token exchange", data=form)

    def call(self, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
        """One request; anything but a JSON object from a 2xx is a platform error."""
        try:
            response = self.http.request(method, url, timeout=TIMEOUT, **kwargs)
        except httpx.HTTPError as exc:
            raise OAuthError(
                "platform_unreachable", f"{self.platform}: {what} failed: {exc}"
            ) from exc
        if response.is_success and not response.content:
            return {}  # revoke calls often answer 200 with no body
        try:
            body = response.json()
        except ValueError:
            body = None
        if not response.is_success or not isinstance(body, dict):
            raise token_error(self.platform, what, response.status_code, body)
        return body


def token_error(platform: str, what: str, status: int, body: Any) -> OAuthError:
    """The platform refused: a PKCE mismatch, a bad code, or its own error."""
    detail = ""
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Graph and TikTok v2 shapes
            detail = str(error.get("message") or error.get("code") or "")
        else:
            detail = " ".join(str(x) for x in (error, body.get("error_description")) if x) or str(
                body.get("message") or ""
            )
    message = f"{platform}: {what} answered HTTP {status}" + (f": {detail}" if detail else "")
    lowered = detail.lower()
    if "verifier" in lowered or "code_challenge" in lowered or "pkce" in lowered:
        return OAuthError("pkce_mismatch", message)
    if status in (400, 401) and "invalid_grant" in lowered:
        return OAuthError("invalid_grant", message)
    return OAuthError("platform_error", message)


# platform → login → flow; a platform's own login (keyed by its name) is its default.
_FLOWS: dict[str, dict[str, type[OAuthFlow]]] = {}


def register_flow(cls: type[OAuthFlow]) -> type[OAuthFlow]:
    _FLOWS.setdefault(cls.platform, {})[cls.login_name()] = cls
    return cls


def flow_classes() -> dict[str, type[OAuthFlow]]:
    """Each platform's default flow (its own login)."""
    return {p: logins[p] for p, logins in _FLOWS.items() if p in logins}


def oauth_platforms() -> frozenset[str]:
    """The platforms with an OAuth callback: any login of theirs is an OAuth flow
    (WordPress's own is a credential page; its WordPress.com sign-in is OAuth)."""
    return frozenset(_FLOWS)


def flow_class(platform: str, login: str | None = None) -> type[OAuthFlow] | None:
    return _FLOWS.get(platform, {}).get(login or platform)


def get_flow(
    platform: str,
    http: httpx.Client,
    base_url: str | None,
    login: str | None = None,
    settings: Settings | None = None,
) -> OAuthFlow:
    cls = flow_class(platform, login)
    if cls is None:
        raise KeyError(f"no {login or platform} login flow for {platform}")
    return cls(http, base_url, settings)


# -- connecting with a credential entered on Crier's page -------------------------------


@dataclass(frozen=True)
class CredentialField:
    """One input of a credential connect page; `secret` inputs are masked and never
    shown again after a refusal."""

    name: str
    label: str
    hint: str = ""
    required: bool = True
    secret: bool = False


class CredentialFlow(ABC):
    """A platform that connects with what the client enters on Crier's connect page (the
    chat in which Crier's Telegram bot posts), not with an OAuth consent: `verify` checks
    it at the platform and returns the account to add."""

    platform: str
    hosts: dict[str, str]
    # Why the platform has no consent page, for the connect page and the contract suite.
    why: str
    fields: tuple[CredentialField, ...]
    # What the page tells the user first (HTML), beside `why`.
    intro: str = ""
    # An OAuth sign-in the page also offers, when Crier's app for it is set (WordPress:
    # a blog on WordPress.com): the sentence that offers it and the link's text.
    oauth_login: str = ""
    oauth_offer: str = ""
    oauth_action: str = ""

    def __init__(
        self, http: httpx.Client, base_url: str | None = None, settings: Settings | None = None
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/") if base_url else None
        self.settings = settings or Settings()

    def url(self, path: str, host: str = "api") -> str:
        """The platform's URL, or `{CRIER_PLATFORM_BASE_URL}/{platform}{path}` when set."""
        if self.base_url:
            return f"{self.base_url}/{self.platform}{path}"
        return f"https://{self.hosts[host]}{path}"

    @classmethod
    @abstractmethod
    def missing_setting(cls, settings: Settings) -> str | None:
        """The variable this server must set before its links can connect; None when set."""

    @abstractmethod
    def verify(self, values: dict[str, str]) -> list[ConnectedIdentity]:
        """Check what the client entered at the platform; raise OAuthError with a message
        the client can act on when it does not do."""


_CREDENTIAL_FLOWS: dict[str, type[CredentialFlow]] = {}


def register_credential_flow(cls: type[CredentialFlow]) -> type[CredentialFlow]:
    _CREDENTIAL_FLOWS[cls.platform] = cls
    return cls


def credential_flow_class(platform: str) -> type[CredentialFlow] | None:
    return _CREDENTIAL_FLOWS.get(platform)


def credential_connect_reason(platform: str) -> str:
    """Why `platform` connects on Crier's own page rather than through an OAuth consent."""
    cls = credential_flow_class(platform)
    return cls.why if cls is not None else f"{platform} has no connect flow"
