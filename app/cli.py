"""The `crier` command: migrations, keys, accounts, the sandbox and the dev stack.

Each command imports what it needs inside its own function: `crier --help` and a
single command start without loading the whole app, the sandbox or the dev stack.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO

import click
from flask import Flask, current_app
from sqlalchemy.orm import Session

from app.config import Settings
from app.security import API_KEY_PREFIX, KEY_PREFIX_PATTERN, SEED_KEY_PREFIX


def _app(require_secret: bool = True) -> Flask:
    from app import create_app
    from app.security import InsecureSecretKey

    try:
        return create_app(require_secret=require_secret)
    except InsecureSecretKey as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@contextmanager
def _session(require_secret: bool = True) -> Iterator[Session]:
    """One unit of work for a one-shot command; no pooled connection is left behind."""
    from app.db import get_db

    app = _app(require_secret)
    try:
        with app.app_context(), get_db(app).session() as session:
            yield session
    finally:
        get_db(app).dispose()


@click.group()
def main() -> None:
    """Crier: publish social media posts on time, once."""


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic), then tidy what older versions left
    in the broker (once per release, not at every worker start)."""
    import redis

    from app.migrations import upgrade_database
    from app.migrations.broker import drop_stale_bindings

    settings = Settings.from_env()
    upgrade_database(settings.database_url)
    click.echo("database is up to date")
    try:
        dropped = drop_stale_bindings(settings.broker_url or settings.redis_url)
    except redis.RedisError as exc:
        # The release step must not depend on the broker being up; the bindings are inert.
        click.echo(f"broker not reachable ({exc}); stale queue bindings left for the next migrate")
    else:
        if dropped:
            click.echo(f"dropped {dropped} stale queue bindings from the broker")


def _key_prefix(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not KEY_PREFIX_PATTERN.fullmatch(value):
        raise click.BadParameter(
            "letters and digits ending in an underscore, at most two parts "
            f"(like {API_KEY_PREFIX} or {SEED_KEY_PREFIX})"
        )
    return value


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--name", required=True, help="A label for the key.")
@click.option("--org", "org_name", help="Organisation name (default: the key's name).")
@click.option(
    "--prefix",
    "key_prefix",
    default=API_KEY_PREFIX,
    show_default=True,
    callback=_key_prefix,
    help=f"The key's leading text; {SEED_KEY_PREFIX} makes a key the seed product's SDK "
    "accepts (it checks for that prefix), so its callers work unchanged.",
)
def keys_create(name: str, org_name: str | None, key_prefix: str) -> None:
    """Create an API key and print it once."""
    from app.services import audit
    from app.services.keys import create_api_key

    with _session(require_secret=False) as session:
        plain, api_key = create_api_key(
            session, name=name, organisation_name=org_name or name, key_prefix=key_prefix
        )
        session.flush()
        audit.record(
            session,
            "api_key.created",
            organisation_id=api_key.organisation_id,
            actor=audit.cli_actor(),
            subject_type="api_key",
            subject_id=api_key.id,
            details={"name": name, "prefix": api_key.prefix},
            source="cli",
        )
        session.commit()
        click.echo(plain)
        click.echo(
            f"key id {api_key.id} (prefix {api_key.prefix}) for organisation "
            f"{api_key.organisation.name!r}; it is shown only once",
            err=True,
        )


@keys.command("list")
@click.option("--org", "org_name", help="Only this organisation's keys.")
def keys_list(org_name: str | None) -> None:
    """List keys: id, prefix, name, organisation, last use, revoked."""
    from app.services.keys import list_api_keys

    with _session(require_secret=False) as session:
        for key in list_api_keys(session, org_name):
            click.echo(
                "\t".join(
                    [
                        str(key.id),
                        key.prefix,
                        key.name,
                        key.organisation.name,
                        key.last_used_at.isoformat() if key.last_used_at else "never used",
                        f"revoked {key.revoked_at.isoformat()}" if key.revoked_at else "active",
                    ]
                )
            )


@keys.command("revoke")
@click.argument("key_id", type=int)
def keys_revoke(key_id: int) -> None:
    """Revoke a key by its id: requests with it get 401 from now on."""
    from flask import current_app

    from app.key_cache import forget as forget_cached_key
    from app.services import audit
    from app.services.keys import revoke_api_key

    with _session(require_secret=False) as session:
        api_key = revoke_api_key(session, key_id)
        if api_key is None:
            click.echo(f"error: no API key with id {key_id}", err=True)
            sys.exit(2)
        audit.record(
            session,
            "api_key.revoked",
            organisation_id=api_key.organisation_id,
            actor=audit.cli_actor(),
            subject_type="api_key",
            subject_id=api_key.id,
            details={"name": api_key.name, "prefix": api_key.prefix},
            source="cli",
        )
        session.commit()
        # Every process stops taking it now, not when its cache entry ends.
        forget_cached_key(current_app.config["CRIER"].redis_url, api_key.key_hash)
        click.echo(f"revoked key {api_key.id} ({api_key.prefix})")


@main.group()
def accounts() -> None:
    """Social accounts."""


@accounts.command("add")
@click.option("--platform", required=True)
@click.option("--name", required=True)
@click.option(
    "--access-token",
    help="The token itself (visible in `ps` and shell history: prefer --access-token-file).",
)
@click.option(
    "--access-token-file",
    type=click.File("r"),
    help="Read the access token from this file, or from standard input with `-`.",
)
@click.option("--refresh-token")
@click.option(
    "--refresh-token-file",
    type=click.File("r"),
    help="Read the refresh token from this file, or from standard input with `-`.",
)
@click.option("--external-id")
@click.option("--key", "api_key", help="API key whose organisation owns the account.")
@click.option(
    "--token-expires-at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
    help="When the access token expires (UTC if no offset); it is refreshed a day ahead.",
)
def accounts_add(
    platform: str,
    name: str,
    access_token: str | None,
    access_token_file: IO[str] | None,
    refresh_token: str | None,
    refresh_token_file: IO[str] | None,
    external_id: str | None,
    api_key: str | None,
    token_expires_at: datetime | None,
) -> None:
    """Connect a social account; prints its id."""
    from app.services import audit
    from app.services.accounts import AccountError, add_account
    from app.services.keys import find_api_key

    access_token = _token_option("access", access_token, access_token_file, required=True)
    refresh_token = _token_option("refresh", refresh_token, refresh_token_file, required=False)

    with _session() as session:
        try:
            account = add_account(
                session,
                current_app.config["CRIER"],
                platform=platform,
                name=name,
                access_token=access_token,
                refresh_token=refresh_token,
                external_id=external_id,
                api_key=api_key,
            )
        except AccountError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        if token_expires_at is not None:
            account.token_expires_at = (
                token_expires_at
                if token_expires_at.tzinfo
                else token_expires_at.replace(tzinfo=UTC)
            )
        key_row = find_api_key(session, api_key) if api_key else None
        audit.record(
            session,
            "account.connected",
            organisation_id=account.organisation_id,
            actor=audit.cli_actor(),
            api_key_id=key_row.id if key_row else None,
            subject_type="account",
            subject_id=account.id,
            details={"platform": platform, "name": name, "external_id": external_id},
            source="cli",
        )
        session.commit()
        click.echo(account.id)


def _token_option(
    kind: str, value: str | None, source: IO[str] | None, *, required: bool
) -> str | None:
    if value is not None and source is not None:
        raise click.UsageError(f"give --{kind}-token or --{kind}-token-file, not both")
    if source is not None:
        # The first line only: a trailing newline (echo, editors) is not part of a token.
        value = source.readline().strip()
        if not value:
            raise click.UsageError(f"--{kind}-token-file gave no token")
    if required and not value:
        raise click.UsageError(f"--{kind}-token-file (or --{kind}-token) is required")
    return value


@main.command()
def secret() -> None:
    """Print a fresh random value for CRIER_SECRET_KEY."""
    from app.security import generate_secret_key

    click.echo(generate_secret_key())


@main.command("config-table")
def config_table() -> None:
    """Print the configuration table of docs/operations.md, made from Settings' fields."""
    from app.variables import config_table as table

    click.echo(table(), nl=False)


@main.command("rotate-secrets")
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows re-encrypted per transaction.",
)
def rotate_secrets(batch_size: int) -> None:
    """Re-encrypt every stored secret under the first key of CRIER_SECRET_KEY.

    Every column the models mark as encrypted is covered: platform tokens, webhook
    signing secrets, connect links' PKCE verifiers and pending choices. Rotation: put a
    new key (`crier secret`) in front of CRIER_SECRET_KEY, separated by a comma, restart
    every process, run this, then drop the old key once no signed media link made before
    the rotation is needed any more. Safe to run again, or after a crash midway.
    """
    from app.security import secret_keys
    from app.services import audit
    from app.services.rotation import MissingKey
    from app.services.rotation import rotate_secrets as rotate

    with _session() as session:
        settings = current_app.config["CRIER"]
        try:
            report = rotate(session, settings.secret_key, batch_size)
        except MissingKey as exc:
            click.echo(f"error: {exc}; a secret that encrypted a stored value is missing", err=True)
            sys.exit(2)
        for column in report.columns:
            click.echo(
                f"{column.name}: {column.rotated} re-encrypted, "
                f"{column.current} already under the newest secret"
            )
        audit.record(
            session,
            "secrets.rotated",
            organisation_id=None,
            actor=audit.cli_actor(),
            subject_type="instance",
            details={
                "rotated": report.rotated,
                "columns": report.as_dict(),
                "secrets": len(secret_keys(settings.secret_key)),
            },
            source="cli",
        )
        session.commit()
    click.echo(
        f"re-encrypted {report.rotated} stored values in {len(report.columns)} columns "
        "under the newest secret"
    )


@main.command()
@click.option("--port", default=8090, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--fetch-media/--no-fetch-media",
    default=True,
    show_default=True,
    help="Download media from the public URLs posts name, as Instagram, Threads and "
    "Facebook do (so CRIER_PUBLIC_URL must reach the API).",
)
def sandbox(port: int, host: str, fetch_media: bool) -> None:
    """Serve the platforms' publishing APIs locally."""
    from sandbox import create_sandbox_app
    from sandbox.server import serve

    pulling = "pulls media from public URLs" if fetch_media else "does not pull media"
    click.echo(f"sandbox on http://{host}:{port} (ledger at /_ledger; {pulling})", err=True)
    app = create_sandbox_app(fetch_media=fetch_media)
    serve(app, host, port)


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("flower_args", nargs=-1, type=click.UNPROCESSED)
def flower(flower_args: tuple[str, ...]) -> None:
    """Flower, only behind a password: `celery flower` once FLOWER_BASIC_AUTH (or Flower's
    OAuth settings) is set; arguments go to `celery flower`."""
    import os

    from app.config import flower_variables
    from app.flower import FlowerAuthMissing, check_flower_auth, flower_environment

    flower_env = flower_variables()
    try:
        check_flower_auth(flower_env)
    except FlowerAuthMissing as exc:
        click.echo(f"crier flower refuses to start: {exc}", err=True)
        sys.exit(2)
    command = [sys.executable, "-m", "celery", "-A", "workers.celery", "flower", *flower_args]
    if flower_env.get("FLOWER_UNAUTHENTICATED_API"):
        click.echo("crier flower: ignoring FLOWER_UNAUTHENTICATED_API", err=True)
    # Builds the environment of Flower's process: everything this one was given, less the
    # variable that would open Flower's API (a child's environment, not a setting).
    os.execve(sys.executable, command, flower_environment(os.environ))


@main.command()
@click.argument("what", type=click.Choice(["web", "beat"]))
@click.option(
    "--url",
    default="http://127.0.0.1:8000/health",
    show_default=True,
    help="web: the /health URL to ask.",
)
@click.option(
    "--max-age",
    default=60,
    show_default=True,
    type=int,
    help="beat: seconds since its last heartbeat after which it counts as dead.",
)
def healthcheck(what: str, url: str, max_age: int) -> None:
    """Exit 0 when WHAT is alive (for container health checks), 1 otherwise.

    web asks /health; beat reads the heartbeat beat stamps in Redis as it ticks. For a
    worker use `celery -A workers.celery inspect ping -d NODE`.
    """
    import time

    if what == "web":
        import httpx

        try:
            status = httpx.get(url, timeout=5).status_code
        except httpx.HTTPError as exc:
            click.echo(f"web is down: {type(exc).__name__}", err=True)
            sys.exit(1)
        if status != 200:
            click.echo(f"web is unhealthy: /health answered {status}", err=True)
            sys.exit(1)
        click.echo("web is up")
        return
    from app.api.meta import BEAT_HEARTBEAT_KEY
    from app.redis_client import redis_client

    try:
        raw = redis_client(Settings.from_env().redis_url).get(BEAT_HEARTBEAT_KEY)
    except Exception as exc:  # Redis away: beat cannot be shown alive
        click.echo(f"beat: cannot read its heartbeat ({type(exc).__name__})", err=True)
        sys.exit(1)
    if raw is None:
        click.echo("beat has never stamped a heartbeat", err=True)
        sys.exit(1)
    age = time.time() - float(raw)
    if age > max_age:
        click.echo(f"beat is dead: last heartbeat {age:.0f} s ago", err=True)
        sys.exit(1)
    click.echo(f"beat is alive: last heartbeat {age:.1f} s ago")


@main.command()
def dev() -> None:
    """Run everything in one terminal: API, workers, beat, Flower and the sandbox."""
    from app.devstack import run_dev

    run_dev()


if __name__ == "__main__":
    main()
