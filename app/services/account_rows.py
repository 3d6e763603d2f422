"""The columns of an account that creating or changing a post needs, read in one query.

A create reads its accounts on every request, and through the ORM that read cost three
times its SQL (an entity per row, its identity map, the unit of work's bookkeeping). On
PostgreSQL the statement goes straight to the driver inside the session's transaction
(psycopg prepares it after a few uses); elsewhere (the embedded SQLite default) the same
columns come through SQLAlchemy Core. Either way the caller gets plain `AccountRow`s.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import postgresql_driver
from app.models import Account


@dataclass(frozen=True, slots=True)
class AccountRow:
    """What `app.access.may_reference`, the platform rules and a new target read of an
    account; none of its credentials."""

    id: int
    organisation_id: int
    profile_id: int | None
    platform: str
    name: str
    status: str
    settings: dict[str, Any] | None


_COLUMNS = (
    Account.id,
    Account.organisation_id,
    Account.profile_id,
    Account.platform,
    Account.name,
    Account.status,
    Account.settings,
)
_DRIVER_SQL = (
    f"SELECT {', '.join(c.name for c in _COLUMNS)} FROM accounts "
    "WHERE organisation_id = %s AND id = ANY(%s)"
)


def read_accounts(session: Session, organisation_id: int, ids: Iterable[int]) -> list[AccountRow]:
    """The organisation's accounts among `ids` (any order; unknown ids are left out).
    Whether the caller's key or post may use each one is `may_reference`'s to say."""
    wanted = list(ids)
    if not wanted:
        return []
    driver = postgresql_driver(session)
    if driver is not None:
        rows: Iterable[Any] = driver.execute(_DRIVER_SQL, (organisation_id, wanted)).fetchall()
    else:
        rows = session.execute(
            select(*_COLUMNS).where(
                Account.organisation_id == organisation_id, Account.id.in_(wanted)
            )
        ).all()
    return [AccountRow(*row) for row in rows]
