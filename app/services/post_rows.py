"""New posts, their targets and publish attempts written as rows, not through the unit of
work; and target values converted for the driver as the ORM would.

Through the ORM, a single create's two INSERTs cost more CPU than everything else it did
(dependency sorting, identity bookkeeping, a statement for the post and one for its
targets). Here the plain objects `build_post` made (app.models.new_posts) are written as
they are: on PostgreSQL one statement through the driver, in the session's transaction or
on the request's autocommit connection, writes the posts and their targets together (a
bulk create's fifty posts too). Elsewhere (the embedded SQLite default) the unit of work
writes the same posts as ORM objects.
"""

from __future__ import annotations

import enum
import re
from functools import lru_cache
from operator import attrgetter
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import JSON, Column, String, TypeDecorator
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from app.db import driver_cursor, postgresql_driver
from app.models import (
    NEW_POST_COLUMNS,
    NEW_TARGET_COLUMNS,
    NewPost,
    Post,
    PostTarget,
    PublishAttempt,
)
from app.services.account_rows import id_array

_POSTS = Post.__table__
_TARGETS = PostTarget.__table__
_ATTEMPTS = PublishAttempt.__table__
_ATTEMPT_COLUMNS: list[Column[Any]] = [c for c in _ATTEMPTS.columns if not c.primary_key]
_POSTGRESQL = postgresql.dialect()


def insert_new_posts(session: Session, posts: list[NewPost]) -> None:
    """Write new posts and their targets; each target gets its id (and its post's)."""
    if not posts:
        return
    for post in posts:
        for target in post.targets:
            target.post_id = post.id
    cursor = driver_cursor(session)
    if cursor is None:
        _written_as_orm_objects(session, posts)
        return
    targets = [target for post in posts for target in post.targets]
    versions = {pair for post in posts for pair in post.account_versions}
    params: list[Any] = []
    if versions and targets:
        if len({account_id for account_id, _ in versions}) != len(versions):
            raise StaleAccounts()  # one account seen at two versions
        params += [
            len(versions),
            posts[0].organisation_id,
            id_array(account_id for account_id, _ in versions),
            "{" + ",".join(f"{account_id}:{xmin}" for account_id, xmin in versions) + "}",
        ]
    params += [value for post in posts for value in _POST_ROW(post)]
    params += [value for target in targets for value in _TARGET_ROW(target)]
    sql = _driver_sql(len(posts), len(targets), guarded=bool(versions))
    returned = cursor.execute(sql, params).fetchall()
    if targets and not returned:
        raise StaleAccounts()
    # Matched on (post, account), unique per target: VALUES order is not promised back.
    ids = {(post_id, account_id): target_id for target_id, post_id, account_id in returned}
    for target in targets:
        target.id = ids[(target.post_id, target.account_id)]


class _RowValues:
    """A new object's values for its table's columns, as the driver takes them: JSON
    wrapped as JSONB, an enum member as its value (psycopg would write its name)."""

    def __init__(self, table: Any, names: tuple[str, ...]) -> None:
        self.read = attrgetter(*names)
        types = [table.c[name].type for name in names]
        self.json = [i for i, kind in enumerate(types) if isinstance(kind, JSON)]
        self.text = [i for i, kind in enumerate(types) if isinstance(kind, String)]

    def __call__(self, row_object: Any) -> list[Any]:
        values = list(self.read(row_object))
        for i in self.json:
            values[i] = Jsonb(values[i])
        for i in self.text:
            if isinstance(values[i], enum.Enum):
                values[i] = values[i].value
        return values


_POST_ROW = _RowValues(_POSTS, NEW_POST_COLUMNS)
_TARGET_ROW = _RowValues(_TARGETS, NEW_TARGET_COLUMNS)


def _written_as_orm_objects(session: Session, posts: list[NewPost]) -> None:
    """Off PostgreSQL (the embedded SQLite default) the unit of work writes them."""
    written = [post.as_orm() for post in posts]
    _written_by_the_orm(session, written)
    for post, row in zip(posts, written, strict=True):
        for target, target_row in zip(post.targets, row.targets, strict=True):
            target.id = target_row.id


def _written_by_the_orm(session: Session, rows: list[Any]) -> None:
    session.add_all(rows)
    session.flush()


class StaleAccounts(Exception):
    """An account a post was checked against (a cached row) has changed since: nothing
    was written."""


# Every account a post was checked against, at the version it was checked at (its
# xmin): counted in the statement that writes the post, which writes only if all are.
_ACCOUNTS_UNCHANGED = (
    "SELECT count(*) = %s AS unchanged FROM accounts WHERE organisation_id = %s "
    "AND id = ANY(%s::bigint[]) AND id::text || ':' || xmin::text = ANY(%s::text[])"
)


@lru_cache(maxsize=256)
def _driver_sql(post_count: int, target_count: int, guarded: bool = False) -> str:
    """One statement for `post_count` posts and `target_count` targets: the posts in a
    WITH, so a target's foreign key finds its post when checked at the statement's end.
    `guarded`: both written only if the accounts are unchanged (_ACCOUNTS_UNCHANGED)."""
    if not target_count:
        return _values_sql(_POSTS, NEW_POST_COLUMNS, post_count)
    guard = f"guard AS ({_ACCOUNTS_UNCHANGED}), " if guarded else ""
    where = " WHERE (SELECT unchanged FROM guard)" if guarded else None
    posts = _values_sql(_POSTS, NEW_POST_COLUMNS, post_count, where)
    targets = _values_sql(_TARGETS, NEW_TARGET_COLUMNS, target_count, where)
    return f"WITH {guard}new_posts AS ({posts}) {targets} RETURNING id, post_id, account_id"


def _values_sql(
    table: Any, names: tuple[str, ...] | list[str], count: int, where: str | None = None
) -> str:
    """INSERT … VALUES; with `where`, INSERT … SELECT from the same rows under that
    condition, each value cast to its column's type (in a SELECT nothing else tells
    PostgreSQL what a NULL or a string is)."""
    columns = ", ".join(names)
    if where is None:
        row = "(" + ", ".join(["%s"] * len(names)) + ")"
        return f"INSERT INTO {table.name} ({columns}) VALUES " + ", ".join([row] * count)
    row = "(" + ", ".join(f"%s::{_cast_type(table.c[name])}" for name in names) + ")"
    rows = ", ".join([row] * count)
    return f"INSERT INTO {table.name} ({columns}) SELECT * FROM (VALUES {rows}) AS v{where}"


def _cast_type(column: Column[Any]) -> str:
    """The column's type as a cast names it: a string's without its length, since a cast
    to VARCHAR(n) would cut a longer value where the INSERT must refuse it."""
    return re.sub(r"\(\d+\)$", "", column.type.compile(dialect=_POSTGRESQL))


ColumnPlan = tuple[str, Any, Any, bool]


def _column_plan(column: Column[Any]) -> ColumnPlan:
    """(attribute, default maker, bind processor, is JSON) for one column, worked out
    once, not for each value converted."""
    default = column.default
    if isinstance(default, CallableColumnDefault):
        make_default: Any = default.arg
    elif isinstance(default, ScalarElementColumnDefault):
        scalar = default.arg

        def make_default(_context: Any) -> Any:
            return scalar
    else:
        make_default = None
    bind = None
    if isinstance(column.type, TypeDecorator):
        bind = column.type.process_bind_param
    return column.key, make_default, bind, isinstance(column.type, JSON)


def _driver_value(plan: ColumnPlan, value: Any) -> Any:
    _, _, bind, is_json = plan
    if bind is not None:
        value = bind(value, _POSTGRESQL)
    if is_json:
        return Jsonb(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


_TARGET_PLAN_BY_KEY = {c.key: _column_plan(c) for c in _TARGETS.columns}
_ATTEMPT_PLANS = [_column_plan(c) for c in _ATTEMPT_COLUMNS]
_ATTEMPT_SQL = _values_sql(_ATTEMPTS, [c.name for c in _ATTEMPT_COLUMNS], 1)


def insert_attempts(session: Session, attempts: list[PublishAttempt]) -> None:
    """Write publish attempts, which stay outside the session. On PostgreSQL one
    pipelined `executemany` of a one-row INSERT: a flush's INSERT of fifty rows has too
    many parameters for psycopg to keep its conversion, and converting it anew each
    time took a third of a publishing worker's CPU publishing posts sent now."""
    if not attempts:
        return
    driver = postgresql_driver(session)
    if driver is None:
        _written_by_the_orm(session, attempts)
        return
    rows = [[_explicit_param(attempt, plan) for plan in _ATTEMPT_PLANS] for attempt in attempts]
    with driver.cursor() as cursor:
        cursor.executemany(_ATTEMPT_SQL, rows)


def _explicit_param(row_object: Any, plan: ColumnPlan) -> Any:
    """As the ORM writes an attribute that was set: a JSON column's None is JSON null."""
    key, make_default, _, _ = plan
    value = getattr(row_object, key)
    if value is None and make_default is not None:
        value = make_default(None)
        setattr(row_object, key, value)
    return _driver_value(plan, value)


def target_driver_value(key: str, value: Any) -> Any:
    """`value` for the `post_targets` column `key` as the driver takes it, converted as
    the ORM would (a column type's own bind, JSON, an enum by its value)."""
    return _driver_value(_TARGET_PLAN_BY_KEY[key], value)
