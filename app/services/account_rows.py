"""The columns of an account that creating or changing a post needs, read in one query,
and kept a while for the next create.

A create reads its accounts on every request, and through the ORM that read cost three
times its SQL (an entity per row, its identity map, the unit of work's bookkeeping). On
PostgreSQL the statement goes straight to the driver on the session's connection
(psycopg prepares it after a few uses); elsewhere (the embedded SQLite default) the same
columns come through SQLAlchemy Core. Either way the caller gets plain `AccountRow`s.

On PostgreSQL a row also carries its version (the row's `xmin`, which every UPDATE
changes), and a single create may take its accounts from `AccountRowCache` instead of
asking: the INSERT that writes the post then checks, in the same statement, that every
account it used still has that version (app.services.post_rows), and writes nothing if
one has changed; the create then reads them afresh. A cached row is never trusted, only
spared a round trip while it is still what the database holds.
"""

from __future__ import annotations

import json
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
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
    # The row's xmin on PostgreSQL: it changes with every UPDATE of the row.
    version: int | None = None


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
    f"SELECT {', '.join(c.name for c in _COLUMNS[:-1])}, settings::text, xmin::text::bigint "
    "FROM accounts WHERE organisation_id = %s AND id = ANY(%s::bigint[])"
)


def id_array(ids: Iterable[int]) -> str:
    """Integer ids as one PostgreSQL array literal, for a `%s::bigint[]` parameter."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def read_accounts(
    session: Session, organisation_id: int, ids: Iterable[int], *, cached: bool = False
) -> list[AccountRow]:
    """The organisation's accounts among `ids` (any order; unknown ids are left out).
    Whether the caller's key or post may use each one is `may_reference`'s to say. With
    `cached`, rows the process holds (`AccountRowCache`) are taken as they are: only a
    write that checks their versions may rely on them."""
    wanted = list(ids)
    if not wanted:
        return []
    cursor = driver_cursor(session)
    if cursor is None:
        rows = session.execute(
            select(*_COLUMNS).where(
                Account.organisation_id == organisation_id, Account.id.in_(wanted)
            )
        ).all()
        return [AccountRow(*row) for row in rows]
    cache = account_row_cache(session) if cached else None
    found: list[AccountRow] = []
    if cache is not None:
        found, wanted = cache.lookup(organisation_id, wanted)
        if not wanted:
            return found
    read = [
        AccountRow(*row[:-2], None if row[-2] is None else json.loads(row[-2]), row[-1])
        for row in cursor.execute(_DRIVER_SQL, (organisation_id, id_array(wanted))).fetchall()
    ]
    if cache is not None:
        cache.store(read)
    return found + read


class AccountRowCache:
    """Account rows a process read lately, by organisation and id; bounded in size and
    age. Thread-safe: lookups read a dict, stores and evictions hold a lock."""

    def __init__(self, max_entries: int = 10_000, max_age: float = 60.0) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self._rows: dict[tuple[int, int], tuple[float, AccountRow]] = {}
        self._lock = threading.Lock()

    def lookup(self, organisation_id: int, ids: list[int]) -> tuple[list[AccountRow], list[int]]:
        """(the rows held, fresh enough; the ids not held)."""
        oldest = time.monotonic() - self.max_age
        found: list[AccountRow] = []
        missing: list[int] = []
        for account_id in ids:
            entry = self._rows.get((organisation_id, account_id))
            if entry is not None and entry[0] >= oldest:
                found.append(entry[1])
            else:
                missing.append(account_id)
        return found, missing

    def store(self, rows: list[AccountRow]) -> None:
        now = time.monotonic()
        with self._lock:
            for row in rows:
                if row.version is None:
                    continue
                if len(self._rows) >= self.max_entries:
                    # The oldest stored goes first (dicts keep insertion order).
                    del self._rows[next(iter(self._rows))]
                self._rows.pop((row.organisation_id, row.id), None)
                self._rows[(row.organisation_id, row.id)] = (now, row)

    def forget(self, organisation_id: int, ids: Iterable[int]) -> None:
        with self._lock:
            for account_id in ids:
                self._rows.pop((organisation_id, account_id), None)


# One per engine: two databases (tests, benchmarks) never share account ids.
_caches: weakref.WeakKeyDictionary[Engine, AccountRowCache] = weakref.WeakKeyDictionary()


def account_row_cache(session: Session) -> AccountRowCache | None:
    """The cache of the session's database; None off PostgreSQL (no row versions)."""
    engine = session.get_bind()
    if not isinstance(engine, Engine) or engine.dialect.name != "postgresql":
        return None
    try:
        return _caches[engine]
    except KeyError:
        return _caches.setdefault(engine, AccountRowCache())


def forget_cached_accounts(session: Session, organisation_id: int, ids: Iterable[int]) -> None:
    """Drop rows the process keeps: the next create reads them afresh."""
    cache = account_row_cache(session)
    if cache is not None:
        cache.forget(organisation_id, ids)
