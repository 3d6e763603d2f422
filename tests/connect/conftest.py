"""Connect flows over real HTTP: the test API server, the sandbox playing the platforms,
and a browser-like client that follows redirects by hand and fills the selection page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.config import Settings
from app.db import get_db
from app.dispatch import DueTarget, mark_queued
from app.models import PostTarget, TargetStatus
from tests.conftest import Tenant
from workers.adapters import get_adapter
from workers.pipeline import PipelineDeps, publish_target
from workers.quotas import SharedQuotas

PLATFORMS = ("instagram", "facebook", "threads", "x", "linkedin", "tiktok", "youtube")
# Where the agency's backend wants its client back; never fetched (another host).
REDIRECT_URL = "https://agency.example/onboarded?client=42"


@pytest.fixture
def connect_env(app: Flask, live_url: str, sandbox_url: str) -> Iterator[str]:
    """Crier's app credentials for the seven platforms (CRIER_<PLATFORM>_CLIENT_ID and
    _CLIENT_SECRET, as parsed at start), links and callbacks on the test server, and the
    platforms played by the sandbox."""
    credentials = {}
    for platform in PLATFORMS:
        credentials[f"CRIER_{platform.upper()}_CLIENT_ID"] = f"crier-{platform}-client"
        credentials[f"CRIER_{platform.upper()}_CLIENT_SECRET"] = f"crier-{platform}-secret"
    previous = app.config["CRIER"]
    app.config["CRIER"] = replace(
        previous,
        public_base_url=live_url,
        platform_base_url=sandbox_url,
        platform_apps=Settings.from_env(credentials).platform_apps,
    )
    try:
        yield live_url
    finally:
        app.config["CRIER"] = previous


def without_client_id(app: Flask, platform: str) -> None:
    """As if CRIER_<PLATFORM>_CLIENT_ID were unset (connect_env puts the settings back)."""
    settings = app.config["CRIER"]
    apps = dict(settings.platform_apps)
    apps[platform] = replace(apps[platform], client_id=None)
    app.config["CRIER"] = replace(settings, platform_apps=apps)


@dataclass
class Walk:
    """Where a browser ended: the final URL's query, and every URL it went through."""

    final: str
    hops: list[str]
    pages: list[str]
    # The browser's cookies where it stopped (the connect link's nonce among them).
    cookies: httpx.Cookies = field(default_factory=httpx.Cookies)

    def browser(self) -> httpx.Client:
        """The same browser, to go on from where the walk stopped."""
        return httpx.Client(follow_redirects=False, timeout=20, cookies=self.cookies)

    @property
    def result(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.final).query).items()}


CHOICE = re.compile(r"name='choice' value='([^']+)'")
FORM = re.compile(r"<form method='post' action='([^']+)'")


def walk(
    url: str,
    *,
    authorize_extra: str = "",
    pick: Any = None,
    stop_at_callback: bool = False,
    max_hops: int = 12,
) -> Walk:
    """Follow redirects like a browser until the client's redirect_url (another host).
    `authorize_extra` is appended to the platform's consent URL (sandbox_deny=1, ...);
    `pick(choices)` chooses on the selection page (default: all of them)."""
    hops: list[str] = []
    pages: list[str] = []
    with httpx.Client(timeout=20, follow_redirects=False) as browser:
        response = browser.get(url)
        for _ in range(max_hops):
            hops.append(str(response.url))
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(REDIRECT_URL.split("?")[0]):
                    return Walk(target, hops, pages, httpx.Cookies(browser.cookies))
                opened_link = "/connect/" in str(response.url) and "/select/" not in str(
                    response.url
                )
                if opened_link and authorize_extra:  # this redirect goes to the consent page
                    target += "&" + authorize_extra
                if stop_at_callback and "/oauth/" in target and "/callback" in target:
                    return Walk(target, hops, pages, httpx.Cookies(browser.cookies))
                response = browser.get(target)
                continue
            pages.append(response.text)
            form = FORM.search(response.text)
            assert form, f"a page without a way on: {response.status_code} {response.text[:300]}"
            choices = CHOICE.findall(response.text)
            chosen = pick(choices) if pick else choices
            response = browser.post(
                urljoin(str(response.url), form.group(1)), data={"choice": chosen}
            )
    raise AssertionError(f"no end after {max_hops} hops: {hops}")


def connect_link(api: httpx.Client, platform: str, **body: Any) -> dict[str, Any]:
    response = api.post(
        "/accounts/connect",
        json={"platform": platform, "redirect_url": REDIRECT_URL, **body},
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]


@pytest.fixture
def deps(app: Flask, sandbox_url: str) -> Iterator[PipelineDeps]:
    settings = app.config["CRIER"]
    with httpx.Client(timeout=10) as http:
        yield PipelineDeps(
            db=get_db(app),
            settings=settings,
            celery=app.extensions["celery"],
            quotas=SharedQuotas(settings.redis_url),
            adapter_for=lambda platform: get_adapter(platform, http, sandbox_url, settings),
        )


def publish_now(app: Flask, deps: PipelineDeps, post_id: str) -> str:
    """Run the post's one target through the real pipeline now (as a worker would)."""
    with get_db(app).session() as session:
        target = session.scalar(select(PostTarget).where(PostTarget.post_id == post_id))
        now = datetime.now(UTC)
        target.next_attempt_at = now
        session.flush()
        [dispatch] = mark_queued(
            session, [DueTarget(target.id, target.platform, now)], TargetStatus.SCHEDULED
        )
        session.commit()
        target_id = target.id
    return publish_target(deps, target_id, dispatch.token)


__all__ = ["PLATFORMS", "REDIRECT_URL", "Tenant", "connect_link", "publish_now", "walk"]
