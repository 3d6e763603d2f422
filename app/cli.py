"""The `crier` command: migrations, keys, accounts, the sandbox and the dev stack."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from sqlalchemy.orm import Session

from app.config import Settings


def _app() -> Flask:
    from app import create_app

    return create_app()


@contextmanager
def _session() -> Iterator[Session]:
    """One unit of work for a one-shot command; no pooled connection is left behind."""
    from app.db import get_db

    app = _app()
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
    """Bring the database schema up to date (Alembic)."""
    from app.migrations import upgrade_database

    settings = Settings.from_env()
    upgrade_database(settings.database_url)
    click.echo("database is up to date")


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--name", required=True, help="A label for the key.")
@click.option("--org", "org_name", help="Organisation name (default: the key's name).")
def keys_create(name: str, org_name: str | None) -> None:
    """Create an API key and print it once."""
    from app.services.keys import create_api_key

    with _session() as session:
        plain, api_key = create_api_key(session, name=name, organisation_name=org_name or name)
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

    with _session() as session:
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
    from app.services.keys import revoke_api_key

    with _session() as session:
        api_key = revoke_api_key(session, key_id)
        if api_key is None:
            click.echo(f"error: no API key with id {key_id}", err=True)
            sys.exit(2)
        session.commit()
        click.echo(f"revoked key {api_key.id} ({api_key.prefix})")


@main.group()
def accounts() -> None:
    """Social accounts."""


@accounts.command("add")
@click.option("--platform", required=True)
@click.option("--name", required=True)
@click.option("--access-token", required=True)
@click.option("--refresh-token")
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
    access_token: str,
    refresh_token: str | None,
    external_id: str | None,
    api_key: str | None,
    token_expires_at: datetime | None,
) -> None:
    """Connect a social account; prints its id."""
    from app.services.accounts import AccountError, add_account

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
        session.commit()
        click.echo(account.id)


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
    """Serve the seven platforms' publishing APIs locally."""
    from werkzeug.serving import run_simple

    from sandbox import create_sandbox_app

    pulling = "pulls media from public URLs" if fetch_media else "does not pull media"
    click.echo(f"sandbox on http://{host}:{port} (ledger at /_ledger; {pulling})", err=True)
    app = create_sandbox_app(fetch_media=fetch_media)
    run_simple(host, port, app, threaded=True, use_reloader=False)


@main.command()
def dev() -> None:
    """Run everything in one terminal: API, workers, beat, Flower and the sandbox."""
    from app.devstack import run_dev

    run_dev()


if __name__ == "__main__":
    main()
