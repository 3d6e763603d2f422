"""The AT Protocol's pieces the Bluesky adapter speaks: sessions, record keys, error
classification, and rich text.

Bluesky shows plain text unless a facet marks a byte range (UTF-8 bytes) as a link, a
mention (by DID) or a tag. The patterns follow the reference client's `detectFacets`.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx
import regex

from workers.adapters.base import (
    AuthExpiredError,
    AuthRevokedError,
    PermanentError,
    PlatformError,
    PublishResult,
    json_body,
)
from workers.adapters.kit import ErrorCodes, classify_status, reset_wait_seconds

_LINK_RE = regex.compile(r"(?:^|\s|\()(https?://\S+)", regex.IGNORECASE)
_MENTION_RE = regex.compile(r"(?:^|\s|\()(@([a-zA-Z0-9.-]+\.[a-zA-Z][a-zA-Z0-9-]*))\b")
_INVISIBLE = "\u00ad\u2060\u200a\u200b\u200c\u200d\u20e2"
_TAG_RE = regex.compile(
    rf"(?:^|\s)([#\uff03](?!\ufe0f)[^\s{_INVISIBLE}]*[^\d\s\p{{P}}{_INVISIBLE}]+[^\s{_INVISIBLE}]*)"
)
_TRAILING_PUNCTUATION = ".,;:!?\"'"
MAX_TAG_LENGTH = 64
# Besides its 300 graphemes (the rules' limit), a post's text is at most 3000 bytes.
TEXT_MAX_BYTES = 3000


def _byte_range(text: str, start: int, end: int) -> dict[str, int]:
    return {"byteStart": len(text[:start].encode()), "byteEnd": len(text[:end].encode())}


def _trim_link(url: str) -> str:
    url = url.rstrip(_TRAILING_PUNCTUATION)
    if url.endswith(")") and url.count("(") < url.count(")"):
        url = url[:-1]
    return url


def links(text: str) -> list[tuple[int, int, str]]:
    found = []
    for match in _LINK_RE.finditer(text):
        url = _trim_link(match.group(1))
        found.append((match.start(1), match.start(1) + len(url), url))
    return found


def first_link(text: str) -> str | None:
    found = links(text)
    return found[0][2] if found else None


def detect_facets(text: str, resolve: Callable[[str], str | None]) -> list[dict[str, Any]]:
    """The facets of `text`; a mention whose handle does not resolve stays plain text."""
    facets: list[dict[str, Any]] = []
    for start, end, url in links(text):
        facets.append(
            {
                "index": _byte_range(text, start, end),
                "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
            }
        )
    for match in _MENTION_RE.finditer(text):
        did = resolve(match.group(2).lower())
        if did:
            facets.append(
                {
                    "index": _byte_range(text, match.start(1), match.end(1)),
                    "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}],
                }
            )
    for match in _TAG_RE.finditer(text):
        tag = match.group(1).rstrip(_TRAILING_PUNCTUATION)
        name = tag[1:]
        if not name or len(name) > MAX_TAG_LENGTH:
            continue
        start = match.start(1)
        facets.append(
            {
                "index": _byte_range(text, start, start + len(tag)),
                "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": name}],
            }
        )
    facets.sort(key=lambda facet: facet["index"]["byteStart"])
    return facets


# -- sessions, keys and errors ----------------------------------------------------------

# A session is renewed this long before its access JWT expires.
SESSION_MARGIN_SECONDS = 300
# The wait when a 429 names no reset (the write limit is per hour).
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 5 * 60
ERROR_CODES = ErrorCodes(
    rate_limited="bluesky_rate_limited",
    auth_expired="bluesky_token_expired",
    server_error="bluesky_server_error",
    rejected="bluesky_invalid_request",
)
# Sign-in refusals: only reconnecting the account (a new app password) helps.
SIGN_IN_REFUSALS = {
    "AuthenticationRequired": "bluesky_invalid_credentials",
    "AuthFactorTokenRequired": "bluesky_two_factor_required",
    "AccountTakedown": "bluesky_account_taken_down",
    "AccountDeactivated": "bluesky_account_deactivated",
}
MEDIA_REFUSALS = {
    "InvalidMimeType": "bluesky_invalid_media_type",
    "InvalidSize": "bluesky_media_too_large",
    "PayloadTooLarge": "bluesky_media_too_large",
    "BlobTooLarge": "bluesky_media_too_large",
}
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Session:
    access_jwt: str
    refresh_jwt: str
    did: str
    handle: str
    pds: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Session | None:
        """A stored session, or None for anything else (a bare refresh token, nothing)."""
        try:
            data = json.loads(text or "")
            return cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None

    def expires_at(self) -> float:
        """The access JWT's `exp` (read, not verified: the PDS checks it)."""
        try:
            payload = self.access_jwt.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return float(claims["exp"])
        except (IndexError, ValueError, KeyError, TypeError):
            return 0.0

    def usable(self) -> bool:
        return self.expires_at() - time.time() > SESSION_MARGIN_SECONDS


def tid(moment_micros: int, clock_id: int) -> str:
    """An AT Protocol TID (a record key): 53 bits of microseconds, 10 of clock id."""
    value = (moment_micros & ((1 << 53) - 1)) << 10 | (clock_id & 1023)
    return "".join(_TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


def permalink(handle: str | None, did: str, rkey: str) -> str:
    return f"https://bsky.app/profile/{handle or did}/post/{rkey}"


def rkey_of(uri: str) -> str:
    return uri.rsplit("/", 1)[-1]


def pds_of(did_doc: Any) -> str | None:
    """The PDS a DID document names (its #atproto_pds service endpoint)."""
    if not isinstance(did_doc, dict):
        return None
    for service in did_doc.get("service") or []:
        if isinstance(service, dict) and str(service.get("id", "")).endswith("#atproto_pds"):
            endpoint = str(service.get("serviceEndpoint") or "")
            if endpoint.startswith("https://"):
                return endpoint.rstrip("/")
    return None


def session_from(body: dict[str, Any], pds: str) -> Session:
    return Session(
        access_jwt=str(body["accessJwt"]),
        refresh_jwt=str(body["refreshJwt"]),
        did=str(body["did"]),
        handle=str(body.get("handle") or body["did"]),
        pds=pds_of(body.get("didDoc")) or pds,
    )


def parse_time(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rate_limit_details(headers: httpx.Headers) -> dict[str, Any] | None:
    try:
        return {
            "limit": int(headers["ratelimit-limit"]),
            "remaining": int(headers["ratelimit-remaining"]),
            "reset_at": int(headers["ratelimit-reset"]),
            "policy": headers.get("ratelimit-policy"),
        }
    except (KeyError, ValueError):
        return None


def classify(response: httpx.Response) -> PlatformError:
    """XRPC errors ({error, message}) to PlatformErrors. An expired or invalid access JWT
    (400 ExpiredToken / InvalidToken) asks for a new session."""
    status = response.status_code
    body = json_body(response)
    error = str(body.get("error") or "")
    message = str(body.get("message") or error or response.reason_phrase)
    if status == 429 or error == "RateLimitExceeded":
        wait = reset_wait_seconds(response, "ratelimit-reset", DEFAULT_RATE_LIMIT_WAIT_SECONDS)
        return classify_status(429, message, ERROR_CODES, rate_limit_wait=wait)
    if error in ("ExpiredToken", "InvalidToken", "AuthMissing"):
        return AuthExpiredError(message, code=ERROR_CODES.auth_expired, http_status=status)
    if error in SIGN_IN_REFUSALS:
        return AuthRevokedError(message, code=SIGN_IN_REFUSALS[error], http_status=status)
    if error in MEDIA_REFUSALS or status == 413:
        code = MEDIA_REFUSALS.get(error, "bluesky_media_too_large")
        return PermanentError(message, code=code, http_status=status)
    return classify_status(status, message, ERROR_CODES, rate_limit_wait=0.0)


def classify_sign_in(response: httpx.Response) -> PlatformError:
    """createSession: a refused password is a revoked app password (reconnect); its own
    rate limit (30 per 5 minutes per handle) holds the account."""
    error = classify(response)
    if response.status_code == 429:
        error.code = "bluesky_sign_in_rate_limited"
    elif response.status_code == 401 and error.outcome is not AuthRevokedError.outcome:
        return AuthRevokedError(error.message, code="bluesky_invalid_credentials", http_status=401)
    return error


def check_size(text: str) -> None:
    size = len(text.encode())
    if size > TEXT_MAX_BYTES:
        # 300 graphemes rarely reach it, but emoji sequences of 10+ bytes each can.
        raise PermanentError(
            f"the text is {size} bytes; Bluesky takes at most {TEXT_MAX_BYTES}",
            code="bluesky_text_too_long",
        )


def as_reply(result: PublishResult, root: Any, parent: PublishResult) -> PublishResult:
    """A reply's result: its thread's root ref and the post it answers, for the next item."""
    details = {**(result.details or {}), "root": root, "reply_to": parent.platform_post_id}
    return replace(result, details=details)


def is_reply(record: dict[str, Any], parent_uri: str, text: str, since: datetime | None) -> bool:
    """Whether a post record is a reply to `parent_uri` with `text`, made since `since`."""
    value = record.get("value") or {}
    created = parse_time(value.get("createdAt"))
    return (
        ((value.get("reply") or {}).get("parent") or {}).get("uri") == parent_uri
        and value.get("text") == text
        and (since is None or (created is not None and created >= since))
    )
