"""The scopes an API key may hold, and the rules every new or stored key obeys whoever
makes it (the API, the CLI): a key restricted to a profile never holds `admin`.

Which route needs which scope is the API's business (app.api.scopes).
"""

from __future__ import annotations

from typing import Any

from app.errors import ValidationError

ADMIN = "admin"
SCOPES = (
    "admin",
    "posts:write",
    "posts:read",
    "accounts:write",
    "media:write",
    "webhooks:write",
    "ai",
)
# A scope that includes others: whoever may write posts may read them, and may have
# captions written for them (`ai`: AI captions, which spend the organisation's credits).
IMPLIED = {"posts:write": ("posts:read", "ai")}
# What a key restricted to a profile may hold: everything but `admin`.
PROFILE_SCOPES = tuple(s for s in SCOPES if s != ADMIN)
# A profile key created without scopes posts, with its media (an end client's key).
PROFILE_DEFAULT_SCOPES = ("media:write", "posts:write")


def effective_scopes(stored: Any, profile_id: int | None) -> tuple[str, ...]:
    """The scopes a key holds. A profile key stored with `admin` (made before profile keys
    were refused it; migration 0009 rewrote those rows) holds every scope a profile key
    may hold instead: all it could do inside its profile, nothing organisation-wide.
    Checked at every request, so no row however written makes a profile key an admin."""
    scopes = tuple(stored or ())
    if profile_id is None or ADMIN not in scopes:
        return scopes
    return tuple(sorted((set(scopes) - {ADMIN}) | set(PROFILE_SCOPES)))


def scopes_for_new_key(requested: list[str] | None, profile_id: int | None) -> list[str]:
    """What a new key gets: the scopes asked for; without any, `admin` for an
    organisation key and PROFILE_DEFAULT_SCOPES for a profile key, which may not ask
    for `admin`."""
    if profile_id is not None and requested and ADMIN in requested:
        message = (
            "A key restricted to a profile cannot have the admin scope (admin manages the "
            f"whole organisation); choose among {', '.join(PROFILE_SCOPES)}."
        )
        raise ValidationError(message, details={"scopes": [message]})
    if requested:
        return sorted(set(requested))
    return list(PROFILE_DEFAULT_SCOPES) if profile_id is not None else [ADMIN]


def granted(scopes: list[str] | tuple[str, ...]) -> set[str]:
    held = set(scopes)
    for scope in scopes:
        held.update(IMPLIED.get(scope, ()))
    return held
