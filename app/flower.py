"""Flower's authentication rules: `crier flower` starts it only behind a password or OAuth.

Flower reads its options from FLOWER_* variables; its API can revoke tasks and shut
workers down, so it must never answer an anonymous caller.
"""

from __future__ import annotations

from collections.abc import Mapping

from app.security import is_placeholder

MIN_FLOWER_PASSWORD = 12
OAUTH_PROVIDERS = ("google", "github", "gitlab", "okta")


class FlowerAuthMissing(RuntimeError):
    pass


def check_flower_auth(env: Mapping[str, str]) -> str:
    """Which authentication Flower will use ("basic" or "oauth"); raises when none."""
    # FLOWER_UNAUTHENTICATED_API is dropped by `crier flower` (flower_environment).
    basic = (env.get("FLOWER_BASIC_AUTH") or "").strip()
    if basic:
        for pair in basic.split(","):
            user, _, password = pair.partition(":")
            if not user or len(password) < MIN_FLOWER_PASSWORD:
                raise FlowerAuthMissing(
                    "FLOWER_BASIC_AUTH must be user:password pairs, comma separated, each "
                    f"password at least {MIN_FLOWER_PASSWORD} characters"
                )
            if is_placeholder(password) or len(set(password)) < 6:
                raise FlowerAuthMissing(
                    f"FLOWER_BASIC_AUTH: the password of {user!r} is a placeholder or too "
                    "uniform to be secret; set a random one (`crier secret` makes one)"
                )
        return "basic"
    provider = (env.get("FLOWER_AUTH_PROVIDER") or "").lower()
    if (
        any(name in provider for name in OAUTH_PROVIDERS)
        and env.get("FLOWER_AUTH")
        and env.get("FLOWER_OAUTH2_KEY")
        and env.get("FLOWER_OAUTH2_SECRET")
        and env.get("FLOWER_OAUTH2_REDIRECT_URI")
    ):
        return "oauth"
    raise FlowerAuthMissing(
        "Flower needs a password: set FLOWER_BASIC_AUTH=user:password (or Flower's OAuth "
        "settings FLOWER_AUTH_PROVIDER, FLOWER_AUTH, FLOWER_OAUTH2_KEY, FLOWER_OAUTH2_SECRET "
        "and FLOWER_OAUTH2_REDIRECT_URI)"
    )


def flower_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment Flower runs with: never an unauthenticated API."""
    return {k: v for k, v in env.items() if k != "FLOWER_UNAUTHENTICATED_API"}
