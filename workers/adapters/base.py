"""The one small interface every platform adapter implements.

An adapter turns a post target into the platform's real request sequence and
classifies every answer into an outcome the pipeline acts on. It never touches the
database: it reports through `PublishContext` and raises `PlatformError`s.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import httpx

from app.config import Settings
from workers.adapters.errors import (
    AuthExpiredError as AuthExpiredError,
)
from workers.adapters.errors import (
    AuthRevokedError as AuthRevokedError,
)
from workers.adapters.errors import (
    DuplicateError as DuplicateError,
)
from workers.adapters.errors import (
    MetricsPermissionError as MetricsPermissionError,
)
from workers.adapters.errors import (
    Outcome as Outcome,
)
from workers.adapters.errors import (
    PermanentError as PermanentError,
)
from workers.adapters.errors import (
    PlatformError as PlatformError,
)
from workers.adapters.errors import (
    QuotaExhaustedError as QuotaExhaustedError,
)
from workers.adapters.errors import (
    RateLimitedError as RateLimitedError,
)
from workers.adapters.errors import (
    TransientError as TransientError,
)


@dataclass(frozen=True)
class Metrics:
    """One post's figures as its platform reports them; None where the platform has no
    such figure (docs/analytics.md). `raw` keeps the platform's own answer for the post."""

    views: int | None = None
    likes: int | None = None
    comments: int | None = None
    shares: int | None = None
    impressions: int | None = None
    clicks: int | None = None
    saves: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountMetrics:
    """An account's audience figures where its platform reports them."""

    followers: int | None = None
    following: int | None = None
    posts_count: int | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def count(value: Any) -> int | None:
    """A platform's number (an int, or a numeric string as YouTube sends), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def sum_counts(*values: Any) -> int | None:
    """The sum of the numbers present; None when none is."""
    present = [c for c in (count(v) for v in values) if c is not None]
    return sum(present) if present else None


_PERMISSION_MARKERS = ("permission", "scope", "forbidden", "access_denied")


def as_metrics_error(error: PlatformError) -> PlatformError:
    """A metrics call's failure as the collector treats it: a refusal for want of a
    permission or scope (HTTP 403, Graph's permission codes, TikTok's and YouTube's scope
    codes) becomes MetricsPermissionError, which never disconnects an account that may
    still publish. Limits, transient failures and dead tokens stay what they are."""
    if error.outcome in (
        Outcome.RATE_LIMITED,
        Outcome.QUOTA_EXHAUSTED,
        Outcome.TRANSIENT,
        Outcome.AUTH_EXPIRED,
    ):
        return error
    if error.http_status == 403 or any(m in error.code for m in _PERMISSION_MARKERS):
        return MetricsPermissionError(
            error.message, code=error.code, http_status=error.http_status, details=error.details
        )
    return error


@dataclass(frozen=True)
class AccountCredentials:
    account_id: int
    platform: str
    name: str
    external_id: str | None
    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    token_expires_at: datetime | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MediaItem:
    id: str
    kind: str  # "image" | "video"
    mime_type: str
    size_bytes: int
    path: str  # local file holding the bytes, for platforms that take uploads
    public_url: str  # signed, expiring link, for platforms that pull
    filename: str = ""
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None

    def read_bytes(self) -> bytes:
        with open(self.path, "rb") as handle:
            return handle.read()


@dataclass(frozen=True)
class FollowUp:
    """One item posted after the post: its first comment (position 0) or a thread item
    (1..n), each thread item replying to the one before. `handle` and `started_at` are
    what an earlier attempt at this item saved: an adapter resumes from them, and looks
    for the item on the platform from `started_at` on."""

    kind: str  # "comment" | "thread_item"
    position: int
    text: str
    media: list[MediaItem] = field(default_factory=list)
    handle: dict[str, Any] | None = None
    started_at: datetime | None = None

    @property
    def label(self) -> str:
        return "first comment" if self.kind == "comment" else f"thread item {self.position}"


@dataclass(frozen=True)
class PublishRequest:
    target_id: int
    platform: str
    account: AccountCredentials
    text: str  # the platform's content override already applied
    settings: dict[str, Any]  # validated platform settings (contentType folded in)
    media: list[MediaItem]
    handle: dict[str, Any] | None = None  # saved by an earlier attempt, to resume
    # When an earlier delivery began the irreversible call: reconcile looks for posts made
    # from then on, so an older post with the same text is never adopted.
    irreversible_started_at: datetime | None = None
    # The post's cover_photo: the image shown for the video where the platform has one.
    cover: MediaItem | None = None
    # What follows the post, in order: its first comment, then its thread's items.
    follow_ups: tuple[FollowUp, ...] = ()


@dataclass(frozen=True)
class PublishResult:
    platform_post_id: str
    url: str | None
    details: dict[str, Any] = field(default_factory=dict)


class ReconcileStatus(StrEnum):
    FOUND = "found"
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReconcileResult:
    status: ReconcileStatus
    result: PublishResult | None = None
    reason: str = ""


@dataclass(frozen=True)
class TokenSet:
    # Tokens never appear in a repr: credential objects end up in logs and tracebacks.
    access_token: str = field(repr=False)
    # None keeps the stored refresh token: an empty answer never overwrites a good one.
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None


def token_set_from(body: dict[str, Any]) -> TokenSet:
    """An OAuth 2 token response (RFC 6749 5.1); an empty refresh token becomes None."""
    expires_in = body.get("expires_in")
    return TokenSet(
        access_token=body["access_token"],
        refresh_token=body.get("refresh_token") or None,
        expires_at=datetime.now(UTC) + timedelta(seconds=int(expires_in)) if expires_in else None,
    )


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or {}: error answers are often HTML or empty, and a
    classifier must still be able to read them."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# An adapter's own reading of a failed answer (status, body, headers) as a PlatformError.
Classifier = Callable[[httpx.Response], PlatformError]


def single_video(request: PublishRequest, message: str, code: str) -> MediaItem:
    """The post's one video: video-only platforms refuse anything else before any call."""
    videos = [item for item in request.media if item.kind == "video"]
    if len(videos) != 1 or len(request.media) != 1:
        raise PermanentError(message, code=code)
    return videos[0]


class PublishContext(Protocol):
    """What the pipeline gives an adapter during one publish."""

    def save_handle(self, handle: dict[str, Any]) -> None:
        """Persist (and commit) an intermediate platform handle before going on."""

    def mark_irreversible(self) -> None:
        """Record, committed, that the request that makes the post public starts now."""


class NullContext:
    """A context that records in memory: for tools and tests that run an adapter alone."""

    def __init__(self) -> None:
        self.handle: dict[str, Any] | None = None
        self.irreversible = False

    def save_handle(self, handle: dict[str, Any]) -> None:
        self.handle = dict(handle)

    def mark_irreversible(self) -> None:
        self.irreversible = True


class ReadyToPublish(Exception):
    """Raised by a preparing context at `mark_irreversible()`: every step that makes
    nothing public is done and its handle saved; only the irreversible request is left."""


# Set in a handle saved by a prepare run (a unix time): what the handle records was done
# ahead of the instant, and the attempt it names stopped before the irreversible request.
PREPARED_KEY = "prepared_at"


class PreparingContext(NullContext):
    """Runs `publish()` ahead of the instant and stops just before the irreversible
    request, with every step that makes nothing public done and its handle saved. The
    pipeline persists `handle` (stamped with PREPARED_KEY) and at the instant runs
    `publish()` again with it: the adapter resumes and makes exactly one irreversible
    request. An adapter whose `can_prepare` is False must not be prepared this way."""

    def mark_irreversible(self) -> None:
        if self.handle is not None:
            self.handle[PREPARED_KEY] = time.time()
        raise ReadyToPublish()


def resuming_prepared(request: PublishRequest) -> bool:
    """True when the handle was saved by a prepare run and no delivery has begun the
    irreversible call since: the attempt times it records (posted_at, started_at) are
    when it was prepared, not a send whose fate is unknown, so there is nothing on the
    platform to look for before publishing."""
    return (
        bool((request.handle or {}).get(PREPARED_KEY)) and request.irreversible_started_at is None
    )


def working_handle(request: PublishRequest) -> dict[str, Any]:
    """A copy of the request's handle to carry on from, without the prepare and check
    stamps: a handle saved from here on belongs to a delivery that may send the
    irreversible call."""
    handle = dict(request.handle or {})
    handle.pop(PREPARED_KEY, None)
    handle.pop(CHECKED_KEY, None)
    return handle


# Set by `Adapter.check_prepared` in the handle of the request it returns (never saved):
# {"at": unix time, "state": what the look on the platform found}.
CHECKED_KEY = "checked"
# A look this recent stands in for the one publish() would make before its irreversible
# request: a prepared container or upload does not change state unseen in a minute,
# except by expiring after a day or by being published, which only Crier does.
CHECK_FRESH_SECONDS = 60.0


def stamp_checked(request: PublishRequest, state: Any) -> PublishRequest:
    """The request with what `check_prepared` just saw on the platform."""
    checked = {"at": time.time(), "state": state}
    return replace(request, handle={**(request.handle or {}), CHECKED_KEY: checked})


def checked_state(request: PublishRequest) -> Any:
    """What `check_prepared` saw, if it looked within CHECK_FRESH_SECONDS; else None."""
    checked = (request.handle or {}).get(CHECKED_KEY)
    if not isinstance(checked, dict):
        return None
    if time.time() - float(checked.get("at") or 0) > CHECK_FRESH_SECONDS:
        return None
    return checked.get("state")


class Adapter(ABC):
    """One platform's publishing API. Subclasses live one per module in this package."""

    platform: str
    # The platform's real hosts, by role, e.g. {"api": "api.x.com"}.
    hosts: dict[str, str]
    # Roles whose host is another platform's API (Instagram accounts connected through
    # Facebook Login publish on graph.facebook.com): under CRIER_PLATFORM_BASE_URL their
    # paths go under that platform's prefix, where the sandbox serves that host.
    host_platforms: dict[str, str] = {}
    supports_refresh: bool = False
    # Instagram and Threads exchange the long-lived access token itself: no refresh token.
    refreshes_access_token: bool = False
    # Whether a network error's message names the exception class (TikTok, YouTube do).
    network_error_names_class: bool = False
    # Whether `publish()` can be run ahead with a PreparingContext: it stops before the one
    # request that makes the post public, every other step done and saved in its handle.
    # False where the platform publishes on its own once its processing ends (TikTok
    # Direct Post): such a target is published whole at its instant, never early.
    can_prepare: bool = True
    # Why the platform cannot tell whether a post whose answer was lost went out (no way
    # to read the account's posts, no idempotency key); empty where reconcile can look.
    # Such an adapter's reconcile answers UNKNOWN and the target ends unconfirmed.
    cannot_reconcile: str = ""

    def __init__(
        self, http: httpx.Client, base_url: str | None = None, settings: Settings | None = None
    ) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/") if base_url else None
        # The process's settings, parsed once at start (Crier's app at the platform,
        # LinkedIn's API version); the defaults where none are given.
        self.settings = settings or Settings()

    def client_credentials(self) -> tuple[str | None, str | None]:
        """Crier's OAuth client id and secret at this platform, for refresh flows."""
        app = self.settings.platform_app(self.platform)
        return app.client_id, app.client_secret

    def url(self, path: str, host: str = "api") -> str:
        """The platform's URL, or `{CRIER_PLATFORM_BASE_URL}/{platform}{path}` when set
        (the host's own platform for a host in `host_platforms`)."""
        if self.base_url:
            return f"{self.base_url}/{self.host_platforms.get(host, self.platform)}{path}"
        return f"https://{self.hosts[host]}{path}"

    def can_refresh(self, account: AccountCredentials) -> bool:
        """Whether this account's token can be refreshed at all (the publish path asks
        before trying once on an auth error)."""
        return self.supports_refresh and bool(account.refresh_token or self.refreshes_access_token)

    def send(
        self,
        method: str,
        url: str,
        *,
        failure: str,
        classify: Classifier | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP request. No answer at all is worth a retry: a TransientError reading
        `{failure}: {exc}`, coded `{platform}_network_error`. With `classify`, an answer of
        300 or more raises what it makes of it; without, the caller reads every answer."""
        try:
            response = self.http.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            reason = (
                f"{exc.__class__.__name__}: {exc}" if self.network_error_names_class else str(exc)
            )
            raise TransientError(
                f"{failure}: {reason}", code=f"{self.platform}_network_error"
            ) from exc
        if classify is not None and response.status_code >= 300:
            raise classify(response)
        return response

    def stored_refresh_token(self, account: AccountCredentials, missing: str) -> str:
        """The account's refresh token; without one only reconnecting the account helps."""
        if not account.refresh_token:
            raise AuthRevokedError(missing, code=f"{self.platform}_no_refresh_token")
        return account.refresh_token

    def exchange_refresh_token(
        self,
        url: str,
        form: dict[str, str],
        *,
        name: str,
        classify: Classifier,
        timeout: httpx.Timeout,
        headers: dict[str, str] | None = None,
    ) -> TokenSet:
        """POST the refresh grant to a token endpoint that answers by HTTP status (X,
        LinkedIn). A 400/401 means the grant is dead (RFC 6749 5.2): AuthRevokedError with
        the endpoint's reason. Any other failure is the platform's to classify."""
        response = self.send(
            "POST",
            url,
            failure=f"{name} token refresh failed",
            data=form,
            headers=headers,
            timeout=timeout,
        )
        if response.status_code in (400, 401):
            body = json_body(response)
            reason = body.get("error_description") or body.get("error")
            raise AuthRevokedError(
                f"{name} refused the refresh token: {reason}",
                code=f"{self.platform}_refresh_refused",
                http_status=response.status_code,
            )
        if response.status_code >= 300:
            raise classify(response)
        return token_set_from(response.json())

    def exchange_refresh_token_in_body(
        self,
        url: str,
        form: dict[str, str | None],
        *,
        name: str,
        failure: str,
        timeout: httpx.Timeout,
        refused: Callable[[httpx.Response, dict[str, Any]], bool],
        error_code: Callable[[str], str] = str,
    ) -> TokenSet:
        """POST the refresh grant to a token endpoint that says no in its JSON body
        (TikTok, Google). Unset client credentials are left out of the form; a 5xx is
        the endpoint being down (retry); no access_token, or what `refused` spots, is a
        dead grant, coded `{platform}_oauth_{error_code(error)}`."""
        response = self.send(
            "POST",
            url,
            failure=failure,
            data={key: value for key, value in form.items() if value is not None},
            timeout=timeout,
        )
        if response.status_code >= 500:
            raise TransientError(
                f"{name} token endpoint answered {response.status_code}",
                code=f"{self.platform}_oauth_unavailable",
                http_status=response.status_code,
            )
        body = json_body(response)
        if refused(response, body) or not body.get("access_token"):
            error = str(body.get("error") or "no_access_token")
            raise AuthRevokedError(
                f"{name} refused the refresh: {body.get('error_description') or error}",
                code=f"{self.platform}_oauth_{error_code(error)}",
                http_status=response.status_code,
            )
        return token_set_from(body)

    @abstractmethod
    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        """Publish, or raise a PlatformError. Resume from `request.handle` when given."""

    def check_prepared(self, request: PublishRequest) -> PublishRequest:
        """Before the instant: look on the platform at what a prepared handle names, where
        publish() would otherwise look at the instant (a container's status, an upload's
        phase), so that only the irreversible request is left then. Returns the request
        to publish with, stamped (`stamp_checked`) when everything was found usable; as it
        was otherwise, and publish() looks again. Platforms with nothing to look at keep
        this default."""
        return request

    def prepared_until(self, handle: dict[str, Any]) -> float | None:
        """The unix time until which a prepared handle can be published as it is; None
        when nothing it names expires. Past it, `publish()` rebuilds what expired (an
        Instagram container, X media), so a target whose instant is later should be
        prepared again after this time rather than rebuilt at the instant."""
        return None

    def discard_prepared(self, account: AccountCredentials, handle: dict[str, Any]) -> int:
        """Delete, where the platform allows, what a prepare left on it for a target that
        was edited or cancelled; the number of platform objects deleted. Call it only for
        a handle whose irreversible request never started. Whatever is already public is
        left alone. Platforms whose staged objects expire unseen (Instagram and Threads
        containers, X media, LinkedIn assets) have nothing to delete: 0."""
        return 0

    @abstractmethod
    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        """After a crash with the outcome unknown: is the post on the platform?"""

    # -- what follows a post: a first comment, a thread ------------------------------------
    # A platform that can post them says so in app/platforms.py (`first_comment`,
    # `threads`), which intake and GET /platform-rules read, and implements these. Each
    # call makes one item public: it saves what it makes on the way with
    # `context.save_handle` and calls `context.mark_irreversible()` just before the
    # request that posts the item, as `publish()` does.

    def publish_reply(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        """Post `item` as a reply to `parent` (the post, or the thread's previous item)."""
        raise PermanentError(
            f"{self.platform} cannot post replies through its API", code="replies_not_supported"
        )

    def publish_comment(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        """Post `item` as a comment under `parent`; where comments are replies (X,
        Threads), a reply."""
        return self.publish_reply(request, parent, item, context)

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        """After an attempt at `item` whose answer was lost: is it under `parent`? By its
        saved handle first, then among the parent's replies or comments (same text, made
        since `item.started_at`)."""
        return ReconcileResult(
            ReconcileStatus.UNKNOWN, reason=f"{self.platform} cannot list a post's replies"
        )

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        """Take a published post down, or raise a PlatformError (DELETE /posts/{id}
        ?delete_on_platforms=…). Platforms without a delete call keep this refusal."""
        raise PermanentError(
            f"{self.platform} offers no API call to delete a post; remove it in the app.",
            code="delete_not_supported",
        )

    # Analytics (docs/analytics.md). How many posts one `fetch_metrics` call may name:
    # the platform's batch size where it reads many posts in one request, else 1.
    metrics_batch_size: int = 1

    def fetch_metrics(self, account: AccountCredentials, post_ids: list[str]) -> dict[str, Metrics]:
        """The figures of the account's published posts (platform ids, at most
        `metrics_batch_size`), by id; a post the platform no longer has is left out.
        Raises a PlatformError as publishing calls do."""
        raise PermanentError(
            f"{self.platform} offers no API call for post metrics", code="metrics_not_supported"
        )

    def fetch_account_metrics(self, account: AccountCredentials) -> AccountMetrics | None:
        """The account's audience figures (followers), read daily; None where the
        platform reports none for this kind of account."""
        return None

    @property
    def collects_metrics(self) -> bool:
        """Whether the platform has a collector (`fetch_metrics` is its own): a target
        published where it has none is never scheduled for a reading."""
        return type(self).fetch_metrics is not Adapter.fetch_metrics

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """Exchange the refresh token; raises AuthRevokedError when it is refused."""
        raise AuthRevokedError(
            f"{self.platform} has no token refresh; reconnect the account",
            code="auth_reconnect_required",
        )
