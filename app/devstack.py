"""`crier dev` (and `make run`): the whole service in one terminal.

With no DATABASE_URL or REDIS_URL it runs on an embedded default — a SQLite file and an
in-process Redis-compatible server (fakeredis) — and says so. With no real platform
configured it starts the sandbox and points the adapters at it. It seeds a demo
organisation, API key, one sandbox account per platform and demo media, then prints a
curl command that publishes to every platform, and Flower's URL.

Its imports sit inside the functions that use them: the dev-only packages (fakeredis,
honcho) are needed only by `crier dev`, and nothing else should pay for them.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from app.models import Platform

VAR = Path("var")
# The sandbox answers any model name; this one says where captions come from.
SANDBOX_AI_MODEL = "crier-sandbox-1"
DEMO_ORG = "demo"

# Sandbox identities: the platforms that address an account by id in their paths.
DEMO_EXTERNAL_IDS = {
    "instagram": "17841400000000001",
    "facebook": "100000000000001",
    "threads": "1000000000000001",
    "linkedin": "urn:li:person:crierdemo",
    "x": None,
    "tiktok": None,
    "youtube": None,
    # A public channel (the permalink names it) and a channel id for the demo bot.
    "telegram": "@crier_demo",
    "discord": "1300000000000000042",
    # Platforms that connect with a credential name where the account posts: a Bluesky
    # handle (its access token stands for an app password), a Mastodon profile URL.
    "bluesky": "crier-demo.bsky.social",
    "mastodon": "https://sandbox.social/@crierdemo",
    "pinterest": None,
    "wordpress": "https://blog.example.com",
}
# The sandbox's first board of its default user, whom every demo token signs in as: the
# demo Pin goes there (and the demo account lists it, as a connected one would).
DEMO_PINTEREST_BOARD = {"id": "160159981255431942", "name": "Sandbox Recipes", "privacy": "PUBLIC"}
# Credentials of a given form (app/credentials.py): a bot token for Telegram, whose bots
# have no refresh token; a bot token for Discord (no refresh either). Bluesky makes its
# session from the app password at the first publish; Mastodon tokens have no refresh;
# WordPress's `user:application-password` does not expire and has no refresh either.
DEMO_TOKEN_PREFIX = {"telegram": "7000000042:", "wordpress": "demo:"}
NO_REFRESH = frozenset({"telegram", "discord", "bluesky", "mastodon", "wordpress"})


def _free_port(preferred: int) -> int:
    for candidate in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def _persistent_secret(path: Path) -> str:
    """The dev secret survives restarts, so stored tokens stay readable."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def start_embedded_redis(port: int) -> str:
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=server.serve_forever, name="embedded-redis", daemon=True).start()
    return f"redis://127.0.0.1:{port}/0"


@dataclass
class Demo:
    api_key: str
    account_ids: dict[str, int]
    video_id: str
    image_id: str
    # A connect link for a Facebook Page (the sandbox consents; a page selection follows).
    connect_url: str | None = None


def seed_demo() -> Demo:
    """Idempotent: reuses the demo key, accounts and media of an earlier run."""
    from sqlalchemy import select

    from app import create_app
    from app.db import get_db
    from app.models import Account, Media, Profile
    from app.oauth import client_app
    from app.samples import jpeg_bytes, mp4_bytes
    from app.services.accounts import add_account
    from app.services.connect import create_link
    from app.services.keys import create_api_key, find_api_key, get_or_create_organisation
    from app.services.media import save_upload
    from app.services.profiles import create_profile

    app = create_app()
    settings = app.config["CRIER"]
    key_file = VAR / "dev-api-key"
    with app.app_context(), get_db(app).session() as session:
        organisation = get_or_create_organisation(session, DEMO_ORG)
        api_key = key_file.read_text().strip() if key_file.exists() else ""
        if not api_key or find_api_key(session, api_key) is None:
            api_key, _row = create_api_key(session, name="demo key", organisation_name=DEMO_ORG)
            key_file.write_text(api_key)
            key_file.chmod(0o600)
        accounts = {
            a.platform: a.id
            for a in session.scalars(
                select(Account).where(Account.organisation_id == organisation.id)
            )
        }
        for platform in Platform:
            if platform.value not in accounts:
                account = add_account(
                    session,
                    settings,
                    platform=platform.value,
                    name=f"Demo {platform.value}",
                    access_token=DEMO_TOKEN_PREFIX.get(platform.value, "")
                    + f"sandbox-{platform.value}-{secrets.token_hex(8)}",
                    refresh_token=None
                    if platform.value in NO_REFRESH
                    else f"sandbox-{platform.value}-refresh-{secrets.token_hex(8)}",
                    external_id=DEMO_EXTERNAL_IDS[platform.value],
                    organisation=organisation,
                )
                if platform == Platform.PINTEREST:
                    account.settings = {"boards": [DEMO_PINTEREST_BOARD]}
                accounts[platform.value] = account.id
        media = {
            m.kind: str(m.id)
            for m in session.scalars(select(Media).where(Media.organisation_id == organisation.id))
        }
        import io

        if "video" not in media:
            clip = save_upload(
                session,
                settings,
                organisation.id,
                io.BytesIO(mp4_bytes(8.0, 1080, 1920)),
                "demo-clip.mp4",
            )
            media["video"] = str(clip.id)
        if "image" not in media:
            photo = save_upload(
                session,
                settings,
                organisation.id,
                io.BytesIO(jpeg_bytes(1080, 1350)),
                "demo-photo.jpg",
            )
            media["image"] = str(photo.id)
        connect_url = None
        if client_app(settings, "facebook", "") is not None:
            profile = session.scalar(
                select(Profile).where(
                    Profile.organisation_id == organisation.id, Profile.name == "Demo client"
                )
            ) or create_profile(session, organisation.id, {"name": "Demo client"})
            _link, token = create_link(
                session,
                organisation_id=organisation.id,
                profile_id=profile.id,
                platform="facebook",
                redirect_url=f"{settings.public_base_url}/health",
                client_state="crier-dev",
                account_id=None,
            )
            connect_url = f"{settings.public_base_url}/connect/{token}"
        session.commit()
    return Demo(api_key, accounts, media["video"], media["image"], connect_url)


def demo_post_body(demo: Demo) -> dict[str, Any]:
    return {
        "content": "Hello from Crier! One request, every platform.",
        "account_ids": [demo.account_ids[p.value] for p in Platform],
        "media_ids": [demo.video_id],
        "platform_content": {
            "instagram": {"contentType": "Reels"},
            "facebook": {"settings": {"videoType": "reel"}},
            "tiktok": {"settings": {"privacyLevel": "PUBLIC_TO_EVERYONE"}},
            "youtube": {"settings": {"title": "Hello from Crier", "privacyStatus": "unlisted"}},
            "x": {"content": "Hello from Crier! One request, every platform. #crier"},
            "pinterest": {
                "settings": {"boardId": DEMO_PINTEREST_BOARD["id"], "title": "Hello from Crier"}
            },
            "wordpress": {"settings": {"title": "Hello from Crier", "tags": ["crier"]}},
        },
    }


def run_dev() -> None:
    VAR.mkdir(exist_ok=True)
    notes: list[str] = []
    # Builds the environment of every process it starts (web, workers, beat, Flower, the
    # sandbox): what the caller set, plus what a laptop lacks. These are children's
    # environments; each child then reads its settings once (app.config.Settings).
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{(VAR / 'crier.sqlite3').resolve()}"
        notes.append("DATABASE_URL is not set: using the embedded SQLite file var/crier.sqlite3")
    if not env.get("REDIS_URL"):
        port = _free_port(int(env.get("CRIER_DEV_REDIS_PORT", "6390")))
        env["REDIS_URL"] = start_embedded_redis(port)
        notes.append(
            f"REDIS_URL is not set: using an in-process Redis-compatible server on port {port}"
        )
    env.setdefault("CRIER_SECRET_KEY", _persistent_secret(VAR / "dev-secret"))
    env.setdefault("CRIER_MEDIA_DIR", str((VAR / "media").resolve()))
    # Local receivers and media servers are the point of a dev stack.
    env.setdefault("CRIER_ALLOW_PRIVATE_URLS", "1")
    web_port = int(env.get("PORT", "8000"))
    env["PORT"] = str(web_port)
    env.setdefault("CRIER_PUBLIC_URL", f"http://127.0.0.1:{web_port}")
    python = sys.executable
    processes: dict[str, list[str]] = {}
    if not env.get("CRIER_PLATFORM_BASE_URL"):
        sandbox_port = _free_port(int(env.get("CRIER_SANDBOX_PORT", "8090")))
        env["CRIER_PLATFORM_BASE_URL"] = f"http://127.0.0.1:{sandbox_port}"
        processes["sandbox"] = [python, "-m", "app.cli", "sandbox", "--port", str(sandbox_port)]
        # The sandbox plays each platform's consent side for any client id: connect links
        # work at once.
        for platform in Platform:
            env.setdefault(f"CRIER_{platform.value.upper()}_CLIENT_ID", f"sandbox-{platform.value}")
            env.setdefault(
                f"CRIER_{platform.value.upper()}_CLIENT_SECRET", f"sandbox-{platform.value}-secret"
            )
        notes.append(
            f"no real platform configured: adapters talk to the sandbox on port {sandbox_port}"
        )
        if not env.get("CRIER_AI_BASE_URL"):
            # AI captions work out of the box: the sandbox plays an OpenAI-compatible model.
            env["CRIER_AI_BASE_URL"] = f"{env['CRIER_PLATFORM_BASE_URL']}/openai/v1"
            env.setdefault("CRIER_AI_MODEL", SANDBOX_AI_MODEL)
            env.setdefault("CRIER_AI_API_KEY", "sandbox")
            notes.append("no AI model configured: captions come from the sandbox's /openai/v1")
    flower_port = _free_port(int(env.get("FLOWER_PORT", "5555")))
    # Flower only behind a password, even on a laptop: any web page open in the browser
    # could otherwise drive its API (revoke tasks, stop workers).
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    if not env.get("FLOWER_BASIC_AUTH"):
        env["FLOWER_BASIC_AUTH"] = f"crier:{secrets.token_urlsafe(18)}"
    # This process seeds the demo with the same settings its children will read.
    os.environ.update(env)

    from app.migrations import upgrade_database

    upgrade_database(env["DATABASE_URL"])
    demo = seed_demo()

    queues = ",".join(
        [
            *(f"publish.{p.value}" for p in Platform),
            "maintenance",
            "webhooks",
            "media_import",
            "metrics",
        ]
    )
    processes.update(
        {
            "web": [
                python,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                "1",
                "--threads",
                "8",
                "--access-logfile",
                "-",
                "--logger-class",
                "app.logs.RedactingGunicornLogger",
                "app.wsgi:app",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "workers.celery",
                "worker",
                "-Q",
                queues,
                "-n",
                "dev@%h",
                "--pool",
                "threads",
                "-c",
                "16",
                "-E",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "INFO",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "workers.celery",
                "beat",
                "-s",
                str(VAR / "celerybeat-schedule"),
                "--loglevel",
                "INFO",
            ],
            "flower": [
                python,
                "-m",
                "app.cli",
                "flower",
                f"--port={flower_port}",
                "--address=127.0.0.1",
            ],
        }
    )
    _print_banner(
        notes,
        demo,
        web_port,
        flower_port,
        env["FLOWER_BASIC_AUTH"],
        env["CRIER_PLATFORM_BASE_URL"],
    )

    from honcho.manager import Manager

    manager = Manager()
    for name, command in processes.items():
        manager.add_process(name, shlex.join(command), env=env)
    manager.loop()
    sys.exit(manager.returncode)


def _print_banner(
    notes: list[str],
    demo: Demo,
    web_port: int,
    flower_port: int,
    flower_auth: str,
    platform_base_url: str,
) -> None:
    api = f"http://127.0.0.1:{web_port}"
    body = json.dumps(demo_post_body(demo))
    lines = [
        "",
        "Crier is starting.",
        *(f"  * {note}" for note in notes),
        f"  API:     {api}   (docs: {api}/docs)",
        f"  Flower:  http://127.0.0.1:{flower_port}   (user:password {flower_auth.split(',')[0]})",
        f"  API key: {demo.api_key}   (organisation {DEMO_ORG!r}; saved in var/dev-api-key)",
        "  Accounts: " + ", ".join(f"{p}={i}" for p, i in demo.account_ids.items()),
        "",
        f"Publish to all {len(Platform)} platforms:",
        f"  curl -s -X POST {api}/posts -H 'Authorization: Bearer {demo.api_key}' "
        f"-H 'Content-Type: application/json' -d '{body}'",
        "Then follow it with GET /posts/<post_id>, and see what the sandbox received at "
        f"{platform_base_url}/_ledger",
        "Have captions written (docs/ai.md):",
        f"  curl -s -X POST {api}/ai/generate-caption -H 'Authorization: Bearer {demo.api_key}' "
        '-H \'Content-Type: application/json\' -d \'{"topic": "our spring sale", '
        '"platform": "x", "count": 2}\'',
        "",
    ]
    if demo.connect_url:
        lines += [
            "Connect a Facebook Page as an end client would (open in a browser; valid 1 hour):",
            f"  {demo.connect_url}",
            "",
        ]
    click.echo("\n".join(lines))
