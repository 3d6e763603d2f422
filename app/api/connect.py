"""Connect links: `POST /accounts/connect` (API), then the browser's side of the flow:
`/connect/{token}` → the platform's consent → `/oauth/{platform}/callback` → (a page
selection on Crier when several Pages were granted) → the caller's `redirect_url`.

The browser routes take no API key: the link's token and the signed state are their
credentials. They answer with redirects or small HTML pages, never a stack trace.
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask import Blueprint, Response, after_this_request, current_app, redirect, request
from marshmallow import ValidationError as SchemaError
from marshmallow import fields, validate, validates_schema

from app import access
from app.api import connect_forms
from app.api.auth import current_caller
from app.api.bodies import json_body, load_json
from app.api.envelope import ApiError, ValidationError, envelope, format_timestamp
from app.config import Settings
from app.connect_flows.mastodon import normalise_instance
from app.db import get_session, utcnow
from app.models import Account, ConnectLink
from app.oauth import (
    ClientApp,
    CredentialFlow,
    OAuthError,
    OAuthFlow,
    client_app,
    credential_flow_class,
    flow_class,
    get_flow,
    oauth_client,
    oauth_platforms,
)
from app.platforms import CONNECT_LOGINS, PLATFORM_KEYS, PLATFORMS, connect_logins
from app.schemas import MAX_ID, StrictInteger, StrictSchema, one_of
from app.services import connect as connect_service
from app.services import instance_apps
from app.services.outbound import UnsafeURLError, resolve

log = logging.getLogger(__name__)

blueprint = Blueprint("connect", __name__)


class ConnectLinkSchema(StrictSchema):
    platform = fields.String(required=True, validate=one_of(*PLATFORM_KEYS))
    profile_id = StrictInteger(allow_none=True, validate=validate.Range(min=1, max=MAX_ID))
    redirect_url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    state = fields.String(
        allow_none=True,
        validate=validate.Length(max=500),
        metadata={"description": "Your own value, echoed back on redirect_url."},
    )
    account_id = StrictInteger(
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Reconnect this account (it keeps its id and its posts)."},
    )
    login = fields.String(
        allow_none=True,
        validate=one_of(*sorted({lg for logins in CONNECT_LOGINS.values() for lg in logins})),
        metadata={
            "description": "The sign-in to go through, where the platform has several. "
            'Instagram: "instagram" (Instagram Login, the default) or "facebook" (Facebook '
            "Login: the user picks among the Instagram professional accounts linked to the "
            "Facebook Pages they grant; those accounts publish on graph.facebook.com with "
            'the Page\'s token). Discord: "discord" (a channel webhook, the default) or '
            '"bot" (Crier\'s bot is added to a server; the user picks among its text '
            'channels). WordPress: "wordpress" (a self-hosted site\'s application '
            "password, the default; the page also offers WordPress.com when Crier's app "
            'there is set) or "wordpress.com" (a WordPress.com blog through OAuth). Every '
            "other platform has only its own login."
        },
    )

    @validates_schema
    def _login_fits_platform(self, data: dict[str, Any], **_: Any) -> None:
        login, platform = data.get("login"), data.get("platform")
        if login is None or platform is None:
            return
        allowed = connect_logins(platform)
        if login not in allowed:
            message = (
                f"{platform} accounts connect through their own login only; leave login out."
                if len(allowed) == 1
                else f"{platform} accounts connect through one of: {', '.join(allowed)}."
            )
            raise SchemaError(message, field_name="login")


connect_link_schema = ConnectLinkSchema()


def _settings() -> Settings:
    return current_app.config["CRIER"]


def _credential_flow(platform: str, login: str | None) -> type[CredentialFlow] | None:
    """The page on Crier a link opens instead of a consent: the platform's only way
    (Telegram), or its fallback while Crier's app there is not set (Discord's webhook
    URL pasted instead of the `webhook.incoming` consent)."""
    credential = credential_flow_class(platform)
    oauth = flow_class(platform, login)
    if credential is None or login is not None:
        return None
    if oauth is not None and client_app(_settings(), oauth.client_platform(), "") is not None:
        return None
    return credential


def _callback_uri(platform: str) -> str:
    return f"{_settings().public_base_url}/oauth/{platform}/callback"


def _flow(link: ConnectLink, http: httpx.Client) -> OAuthFlow:
    settings = _settings()
    flow = get_flow(link.platform, http, settings.platform_base_url, link.login, settings)
    flow.instance = link.instance
    return flow


def _client(link: ConnectLink, flow: type[OAuthFlow] | OAuthFlow) -> ClientApp | None:
    """The app the flow signs in with (Facebook's for Instagram via Facebook Login; for a
    per-instance platform, the one Crier registered on the link's instance); the callback
    is the platform's either way."""
    if flow.per_instance:
        if not link.instance:
            return None
        return instance_apps.find_app(
            get_session(), _settings(), link.platform, link.instance, _callback_uri(link.platform)
        )
    return client_app(_settings(), flow.client_platform(), _callback_uri(link.platform))


def _configured(flow: type[OAuthFlow] | None) -> bool:
    """Whether accounts can connect here through the OAuth flow: an app registered per
    instance, or Crier's own app at the platform."""
    if flow is None:
        return False
    return flow.per_instance or client_app(_settings(), flow.client_platform(), "") is not None


@blueprint.post("/accounts/connect")
def create_connect_link() -> Response:
    """A connect link for an end client: send them to `url`; they come back on redirect_url."""
    caller = current_caller()
    data = load_json(connect_link_schema, json_body())
    parts = urlsplit(data["redirect_url"])
    if parts.scheme not in ("http", "https") or not parts.netloc:
        message = "redirect_url must be an absolute http(s) URL."
        raise ValidationError(message, details={"redirect_url": [message]})
    platform = data["platform"]
    # The platform's own login is stored as None: links made before `login` existed read so.
    login = data.get("login") if data.get("login") != platform else None
    flow = flow_class(platform, login)
    credential = _credential_flow(platform, login)
    if credential is not None:
        missing = credential.missing_setting(_settings())
        if missing:
            raise ApiError(
                f"Connecting {platform} accounts is not configured on this server: set {missing}.",
                code="platform_not_configured",
                status=409,
            )
    elif not _configured(flow):
        app_name = (flow.client_platform() if flow else platform).upper()
        via = f" through the {login} sign-in" if login else ""
        raise ApiError(
            f"Connecting {platform} accounts{via} is not configured on this server: set "
            f"CRIER_{app_name}_CLIENT_ID and CRIER_{app_name}_CLIENT_SECRET.",
            code="platform_not_configured",
            status=409,
        )
    elif flow is not None and (missing := flow.missing_setting(_settings())):
        raise ApiError(
            f"Connecting {platform} accounts through the {flow.login_name()} sign-in is not "
            f"configured on this server: set {missing}.",
            code="platform_not_configured",
            status=409,
        )
    profile_id = caller.profile_for_create(data.get("profile_id"))
    session = get_session()
    account_id = data.get("account_id")
    if account_id is not None:
        account = access.account(session, caller.scope, account_id)
        if account.platform != platform:
            message = f"Account {account_id} is a {account.platform} account, not {platform}."
            raise ValidationError(message, details={"account_id": [message]})
        if profile_id is None:
            profile_id = account.profile_id
        elif profile_id != account.profile_id:
            # A reconnect keeps the account where it is (save_identities refuses a move).
            message = (
                f"Account {account_id} is not in profile {profile_id}; a reconnect keeps "
                "it in its profile (move it with PATCH /accounts/{id})."
            )
            raise ValidationError(message, details={"profile_id": [message]})
    link, token = connect_service.create_link(
        session,
        organisation_id=caller.organisation_id,
        profile_id=profile_id,
        platform=platform,
        login=login,
        redirect_url=data["redirect_url"],
        client_state=data.get("state"),
        account_id=account_id,
    )
    session.commit()
    return envelope(
        {
            "id": str(link.id),
            "url": f"{_settings().public_base_url}/connect/{token}",
            "platform": platform,
            "login": flow.login_name() if flow is not None else platform,
            "profile_id": profile_id,
            "account_id": account_id,
            "redirect_url": link.redirect_url,
            "expires_at": format_timestamp(link.expires_at),
        },
        status=201,
    )


# ------------------------------------------------------------------------ browser side


_page = connect_forms.page


def _finish(link: ConnectLink, code: str, message: str) -> Response:
    if link.result != "connected":
        link.result = code
    get_session().commit()
    log.info("connect link %s ended with %s: %s", link.id, code, message)
    return redirect(
        connect_service.result_url(link, status="error", error=code, error_description=message)
    )


def _connected(link: ConnectLink, accounts: list[Account]) -> Response:
    get_session().commit()
    ids = ",".join(str(a.id) for a in accounts)
    return redirect(
        connect_service.result_url(
            link, status="connected", account_id=accounts[0].id, account_ids=ids
        )
    )


def _dead_link(link: ConnectLink, code: str, message: str) -> Response:
    """A used or expired link answers a page of its own and never redirects: whoever holds
    an old link must not be able to bounce browsers to its redirect_url."""
    if link.result is None:
        link.result = code
    get_session().commit()
    body = f"<p>{html.escape(message)} (<code>{code}</code>)</p>"
    return _page("Link no longer valid", body, 410)


def _cookie_path(platform: str) -> str:
    """Only the platform's callback receives the browser cookie."""
    return f"{urlsplit(_settings().public_base_url).path.rstrip('/')}/oauth/{platform}/callback"


def _bind_browser(response: Response, link: ConnectLink, nonce: str) -> Response:
    seconds = max(int((link.expires_at - utcnow()).total_seconds()), 1)
    response.set_cookie(
        connect_service.browser_cookie(link),
        nonce,
        max_age=seconds,
        path=_cookie_path(link.platform),
        secure=_settings().public_base_url.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )
    return response


def _forget_browser(response: Response, link: ConnectLink) -> Response:
    response.delete_cookie(
        connect_service.browser_cookie(link),
        path=_cookie_path(link.platform),
        secure=_settings().public_base_url.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )
    return response


@blueprint.get("/connect/<token>")
def open_connect_link(token: str) -> Response:
    """Start the flow: redirect to the platform's consent page with a fresh signed state,
    and keep in this browser the nonce the callback will ask for."""
    session = get_session()
    link = connect_service.find_link(session, token)
    if link is None:
        return _page("Link not found", "<p>This connect link does not exist.</p>", 404)
    if link.consumed_at is not None:
        return _dead_link(link, "link_used", "This connect link has already been used.")
    if link.expires_at <= utcnow():
        return _dead_link(link, "link_expired", "This connect link has expired; ask for a new one.")
    credential = _credential_flow(link.platform, link.login)
    if credential is not None and _chose_oauth(link, credential):
        credential = None
    if credential is not None:
        if credential.missing_setting(_settings()):
            return _finish(link, "platform_not_configured", f"{link.platform} is not configured.")
        return _credential_form(token, link, credential)
    cls = flow_class(link.platform, link.login)
    if cls is not None and cls.per_instance:
        return connect_forms.instance_form(token, link.platform, link.instance or "")
    client = _client(link, cls) if cls is not None else None
    if cls is None or client is None:
        return _finish(link, "platform_not_configured", f"{link.platform} is not configured.")
    with oauth_client(_settings()) as http:
        flow = _flow(link, http)
        started = connect_service.start(_settings(), link, flow.pkce)
        target = flow.authorize_url(client, started.state, started.challenge)
    session.commit()
    return _bind_browser(redirect(target), link, started.browser_nonce)


def _chose_oauth(link: ConnectLink, credential: type[CredentialFlow]) -> bool:
    """The credential page's OAuth offer followed (`?login=wordpress.com`): the link goes
    on through that sign-in, and its callback finishes it."""
    chosen = request.args.get("login")
    if not chosen or chosen != credential.oauth_login or link.login is not None:
        return False
    if not _configured(flow_class(link.platform, chosen)):
        return False
    link.login = chosen
    return True


def _credential_form(
    token: str,
    link: ConnectLink,
    flow: type[CredentialFlow],
    error: str = "",
    values: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The link's credential page; it also offers the platform's OAuth sign-in where the
    flow has one and Crier's app for it is set."""
    offered = flow_class(link.platform, flow.oauth_login) if flow.oauth_login else None
    return connect_forms.credential_form(
        token, link.platform, flow, error, values, status, offer_oauth=_configured(offered)
    )


@blueprint.post("/connect/<token>")
def submit_credentials(token: str) -> Response:
    """The link's own page sent: a credential to check at the platform, then stored (a
    value the platform refuses shows the page again with the reason; the link stays
    usable), or the server to sign in on (Mastodon: Crier's app is registered there, then
    its consent page follows)."""
    session = get_session()
    link = connect_service.find_link(session, token)
    if link is None:
        return _page("Link not found", "<p>This connect link does not exist.</p>", 404)
    if link.consumed_at is not None:
        return _dead_link(link, "link_used", "This connect link has already been used.")
    if link.expires_at <= utcnow():
        return _dead_link(link, "link_expired", "This connect link has expired; ask for a new one.")
    flow_cls = _credential_flow(link.platform, link.login)
    if flow_cls is None:
        cls = flow_class(link.platform, link.login)
        if cls is None or not cls.per_instance:
            return _page("Invalid request", "<p>This link takes no form.</p>", 400)
        return _start_on_instance(token, link, request.form.get("instance", "")[:500])
    settings = _settings()
    values = {f.name: request.form.get(f.name, "").strip()[:500] for f in flow_cls.fields}
    try:
        if values.get("pds"):
            _check_server(values["pds"])
        with oauth_client(settings) as http:
            identities = flow_cls(http, settings.platform_base_url, settings).verify(values)
    except OAuthError as exc:
        if exc.code == "platform_not_configured":
            return _finish(link, exc.code, exc.message)
        log.info("connect link %s: %s refused: %s", link.id, link.platform, exc.code)
        return _credential_form(token, link, flow_cls, exc.message, values, 400)
    if not connect_service.consume(session, link):
        return _dead_link(link, "link_used", "This connect link has already been used.")
    try:
        accounts = connect_service.save_identities(session, settings, link, identities)
    except OAuthError as exc:
        session.rollback()
        return _finish(_reload(link), exc.code, exc.message)
    return _connected(link, accounts)


def _start_on_instance(token: str, link: ConnectLink, given: str) -> Response:
    session = get_session()
    settings = _settings()
    try:
        instance = normalise_instance(given)
        _check_server(instance)
        with oauth_client(settings) as http:
            flow = _flow(link, http)
            client = instance_apps.app_for(
                session, settings, flow, instance, _callback_uri(link.platform)
            )
            link.instance = flow.instance = instance
            started = connect_service.start(settings, link, flow.pkce)
            target = flow.authorize_url(client, started.state, started.challenge)
    except OAuthError as exc:
        session.rollback()
        return connect_forms.instance_form(token, link.platform, given, exc.message)
    session.commit()
    return _bind_browser(redirect(target), link, started.browser_nonce)


def _check_server(url: str) -> None:
    """A server the user names is one Crier will call: a public address only (unless
    CRIER_ALLOW_PRIVATE_URLS), and nothing to check when the sandbox plays it."""
    settings = _settings()
    if settings.platform_base_url:
        return
    try:
        resolve(url, allow_private=settings.allow_private_urls, ports=settings.outbound_ports)
    except UnsafeURLError as exc:
        raise OAuthError("invalid_instance", "That server cannot be reached from here.") from exc


@blueprint.get("/oauth/<platform>/callback")
def oauth_callback(platform: str) -> Response:
    """The platform sends the user back here with a code (or an error) and our state."""
    if platform not in oauth_platforms():
        return _page("Unknown platform", "<p>No such platform.</p>", 404)
    session = get_session()
    settings = _settings()
    check = connect_service.check_state(
        session, settings, request.args.get("state", ""), platform, request.cookies
    )
    link = check.link
    if link is None:
        session.rollback()
        return _page(
            "Invalid request",
            "<p>This sign-in answer cannot be matched to a connect link "
            "(<code>state_invalid</code>). Start again from your app.</p>",
            400,
        )
    if check.error:
        return _finish(link, check.error, _STATE_ERRORS[check.error])
    # The state is spent before the platform is called: a failure below cannot revive it.
    session.commit()
    spent = link
    after_this_request(lambda response: _forget_browser(response, spent))
    error = request.args.get("error")
    if error:
        code = "access_denied" if error in ("access_denied", "user_denied") else "platform_error"
        description = request.args.get("error_description") or error
        return _finish(link, code, description)
    code = request.args.get("code")
    if not code:
        return _finish(link, "platform_error", "The platform sent neither a code nor an error.")
    cls = flow_class(platform, link.login)
    client = _client(link, cls) if cls is not None else None
    if cls is None or client is None:
        return _finish(link, "platform_not_configured", f"{platform} is not configured.")
    try:
        with oauth_client(_settings()) as http:
            flow = _flow(link, http)
            identities = flow.connect(client, code, connect_service.verifier_of(settings, link))
        if not identities:
            raise OAuthError("no_accounts", "The platform granted no account.")
        if len(identities) > 1 and flow.offers_choice and link.account_id is None:
            choice = connect_service.hold_choices(settings, link, identities)
            session.commit()
            return redirect(f"/connect/select/{choice}")
        accounts = connect_service.save_identities(session, settings, link, identities)
    except OAuthError as exc:
        session.rollback()
        return _finish(_reload(link), exc.code, exc.message)
    except Exception:  # a platform answering nonsense must not show a stack trace
        log.exception("connect flow for %s failed", platform)
        session.rollback()
        return _finish(_reload(link), "platform_error", "The platform's answer was not understood.")
    return _connected(link, accounts)


def _reload(link: ConnectLink) -> ConnectLink:
    found = get_session().get(ConnectLink, link.id)
    assert found is not None
    return found


_STATE_ERRORS = {
    "link_expired": "This connect link has expired; ask for a new one.",
    "state_replayed": "This sign-in answer was already used; start again from your app.",
    "state_invalid": "This sign-in answer cannot be matched to a connect link.",
    "browser_mismatch": "This sign-in was finished in another browser than the one that "
    "opened the connect link; open the link again and finish in that same browser.",
}


def _label(platform: str) -> str:
    rules = PLATFORMS.get(platform)
    return rules.label if rules else platform


def _choice_label(choice: Any) -> str:
    """The account's name and kind; for an Instagram account reached through Facebook
    Login, the Page it is linked to as well."""
    detail = choice.kind.replace("_", " ")
    if page := choice.settings.get("page_name"):
        detail += f" · Page: {page}"
    return f"{html.escape(choice.name)} <small>({html.escape(detail)})</small>"


def _choice_form(choice_token: str, link: ConnectLink, choices: list[Any]) -> Response:
    items = "".join(
        f"<label><input type='checkbox' name='choice' value='{html.escape(c.external_id)}' "
        f"{'checked' if i == 0 else ''}> {_choice_label(c)}</label>"
        for i, c in enumerate(choices)
    )
    body = (
        f"<p>You granted access to {len(choices)} {html.escape(_label(link.platform))} accounts. "
        "Pick the ones to connect.</p>"
        f"<form method='post' action='/connect/select/{html.escape(choice_token)}'>"
        f"{items}<p><button type='submit' id='connect'>Connect</button></p></form>"
    )
    return _page("Choose the accounts to connect", body)


@blueprint.get("/connect/select/<choice_token>")
def choose_pages(choice_token: str) -> Response:
    """The page selection: one checkbox per Page (or organisation) the user granted."""
    session = get_session()
    link, choices, error = connect_service.pending_choices(session, _settings(), choice_token)
    if link is None:
        return _page("Invalid request", "<p>This selection link is not valid.</p>", 400)
    if error:
        return _finish(link, error, _STATE_ERRORS[error])
    return _choice_form(choice_token, link, choices)


@blueprint.post("/connect/select/<choice_token>")
def submit_pages(choice_token: str) -> Response:
    """Store the accounts picked on the selection page, then go back to redirect_url."""
    session = get_session()
    settings = _settings()
    link, choices, error = connect_service.pending_choices(session, settings, choice_token)
    if link is None:
        return _page("Invalid request", "<p>This selection link is not valid.</p>", 400)
    if error:
        return _finish(link, error, _STATE_ERRORS[error])
    picked = set(request.form.getlist("choice"))
    chosen = [c for c in choices if c.external_id in picked]
    if not chosen:
        return _finish(link, "no_accounts_selected", "No account was selected.")
    if not connect_service.take_choices(session, link):
        return _finish(link, "state_replayed", _STATE_ERRORS["state_replayed"])
    try:
        accounts = connect_service.save_identities(session, settings, link, chosen)
    except OAuthError as exc:
        session.rollback()
        return _finish(_reload(link), exc.code, exc.message)
    return _connected(link, accounts)
