"""The columns of an account that creating or changing a post needs, read in one query.

A create reads its accounts on every request, and through the ORM that read cost three
times its SQL (an entity per row, its identity map, the unit of work's bookkeeping). On
PostgreSQL the statement goes straight to the driver on the session's connection
(psycopg prepares it after a few uses); elsewhere (the embedded SQLite default) the same
columns come through SQLAlchemy Core. Either way the caller gets plain `AccountRow`s.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import driver_cursor
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
# The ids as one text array, the settings as text parsed here: psycopg's list dumper and
# its JSON loader each cost a create more than the rest of this query's Python.
_DRIVER_SQL = (
    f"SELECT {', '.join(c.name for c in _COLUMNS[:-1])}, settings::text FROM accounts "
    "WHERE organisation_id = %s AND id = ANY(%s::bigint[])"
)


def read_accounts(session: Session, organisation_id: int, ids: Iterable[int]) -> list[AccountRow]:
    """The organisation's accounts among `ids` (any order; unknown ids are left out).
    Whether the caller's key or post may use each one is `may_reference`'s to say."""
    wanted = list(ids)
    if not wanted:
        return []
    cursor = driver_cursor(session)
    if cursor is not None:
        ids = "{" + ",".join(str(int(i)) for i in wanted) + "}"
        return [
            AccountRow(*row[:-1], None if row[-1] is None else json.loads(row[-1]))
            for row in cursor.execute(_DRIVER_SQL, (organisation_id, ids)).fetchall()
        ]
    rows = session.execute(
        select(*_COLUMNS).where(Account.organisation_id == organisation_id, Account.id.in_(wanted))
    ).all()
    return [AccountRow(*row) for row in rows]
