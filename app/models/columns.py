"""Column types and markers the models share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Integer
from sqlalchemy.dialects.postgresql import JSONB

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")
# The marker of a column holding Fernet ciphertext under CRIER_SECRET_KEY (app.security).
# `crier rotate-secrets` finds every column to re-encrypt by it (app/services/rotation.py),
# so a new encrypted column only needs `info=ENCRYPTED` to be rotated too.
ENCRYPTED: dict[str, Any] = {"encrypted": True}
