"""Re-encrypting every stored secret under the newest key of CRIER_SECRET_KEY.

The columns are found from the models, by their `info=ENCRYPTED` marker (app/models/),
so a column added later is rotated without anyone remembering to list it here. Each
column is walked in primary-key order, one batch per transaction:
- a value the newest key already decrypts is left alone, so a second run, or a run after
  a crash midway, only does what is left;
- a value is replaced only if it is still the one read (compare and set), so a token a
  worker refreshed meanwhile is never overwritten with its older value;
- before anything changes, every value is checked to decrypt with one of the keys: a
  missing key refuses the whole rotation, naming the rows, rather than half of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, select, update
from sqlalchemy.orm import Session

import app.models  # noqa: F401  (maps every table, so the walk below sees them all)
from app.db import Base
from app.security import decrypt_token, encrypted_with_newest, reencrypt_token

DEFAULT_BATCH = 500
# Passes over a column whose rows kept changing under the rotation before it gives up.
MAX_PASSES = 3
# Rows named in the refusal when keys are missing (the count is always given).
SHOWN_ROWS = 10


@dataclass(frozen=True)
class EncryptedColumn:
    """One column holding Fernet ciphertext, and the single-column key to walk it by."""

    table: Table
    column: Column[Any]
    key: Column[Any]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


@dataclass
class ColumnReport:
    name: str
    rotated: int = 0
    current: int = 0


@dataclass
class RotationReport:
    columns: list[ColumnReport] = field(default_factory=list)

    @property
    def rotated(self) -> int:
        return sum(c.rotated for c in self.columns)

    def as_dict(self) -> dict[str, int]:
        return {c.name: c.rotated for c in self.columns}


class MissingKey(ValueError):
    """Stored values that none of the keys decrypt: the key that encrypted them is gone."""

    def __init__(self, rows: list[str], total: int) -> None:
        shown = ", ".join(rows[:SHOWN_ROWS]) + (" …" if total > SHOWN_ROWS else "")
        super().__init__(
            f"{total} stored value(s) cannot be decrypted with any key of CRIER_SECRET_KEY "
            f"({shown}); put the key that encrypted them back, or remove those rows"
        )
        self.rows = rows
        self.total = total


def encrypted_columns() -> list[EncryptedColumn]:
    """Every mapped column marked `info=ENCRYPTED`, in a stable order."""
    found: list[EncryptedColumn] = []
    for mapper in Base.registry.mappers:
        table = mapper.local_table
        assert isinstance(table, Table)
        for column in table.columns:
            if not column.info.get("encrypted"):
                continue
            keys = list(table.primary_key.columns)
            if len(keys) != 1:
                raise TypeError(f"{table.name}: an encrypted column needs a one-column key")
            found.append(EncryptedColumn(table, column, keys[0]))
    return sorted(found, key=lambda c: c.name)


def _batches(
    session: Session, target: EncryptedColumn, batch_size: int
) -> Iterator[list[tuple[Any, str]]]:
    """(key, ciphertext) of every stored value, in key order, one batch at a time."""
    last: Any = None
    while True:
        query = (
            select(target.key, target.column)
            .where(target.column.is_not(None), target.column != "")
            .order_by(target.key)
            .limit(batch_size)
        )
        if last is not None:
            query = query.where(target.key > last)
        rows = [(row[0], row[1]) for row in session.execute(query)]
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def undecryptable(
    session: Session, secret_key: str, columns: list[EncryptedColumn], batch_size: int
) -> list[str]:
    """`table.column id=…` of every stored value that no key decrypts."""
    missing: list[str] = []
    for target in columns:
        for rows in _batches(session, target, batch_size):
            for key, value in rows:
                try:
                    decrypt_token(secret_key, value)
                except ValueError:
                    missing.append(f"{target.name} {target.key.name}={key}")
        session.rollback()  # end the read transaction between columns
    return missing


def rotate_column(
    session: Session, secret_key: str, target: EncryptedColumn, batch_size: int
) -> ColumnReport:
    """Re-encrypt one column, committing each batch."""
    report = ColumnReport(target.name)
    for _ in range(MAX_PASSES):
        report.current = 0
        raced = 0
        for rows in _batches(session, target, batch_size):
            for key, value in rows:
                if encrypted_with_newest(secret_key, value):
                    report.current += 1
                    continue
                changed = session.execute(
                    update(target.table)
                    .where(target.key == key, target.column == value)
                    .values({target.column.name: reencrypt_token(secret_key, value)})
                ).rowcount
                if changed:
                    report.rotated += 1
                else:  # written meanwhile: the next pass reads the new value
                    raced += 1
            session.commit()
        if not raced:
            return report
    return report


def rotate_secrets(
    session: Session, secret_key: str, batch_size: int = DEFAULT_BATCH
) -> RotationReport:
    """Re-encrypt every encrypted column under the newest key; raises MissingKey, having
    changed nothing, when some value decrypts with none of the keys."""
    columns = encrypted_columns()
    missing = undecryptable(session, secret_key, columns, batch_size)
    if missing:
        raise MissingKey(missing, len(missing))
    return RotationReport([rotate_column(session, secret_key, c, batch_size) for c in columns])
