"""The schemas' building blocks: strict field types, the id bound and the strict base
schema, shared by the request schemas (app/schemas.py) and the settings schemas."""

from __future__ import annotations

import numbers
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, fields, validate

# Ids are PostgreSQL bigints; a larger number would reach the driver and fail there (500).
MAX_ID = 2**63 - 1


class StrictInteger(fields.Integer):
    """An integer in JSON: no strings, no floats, no booleans."""

    default_error_messages = {"invalid": "Not a valid integer."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 instant with an offset, returned in UTC.

    `0001-01-01T00:00:00+14:00` parses but has no UTC value (it would fall in year 0):
    that is the caller's mistake, so a 400, not an OverflowError later in the driver.
    """

    default_error_messages = {
        "out_of_range": "Not a representable instant: in UTC it falls outside years 1 to 9999."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise self.make_error("out_of_range") from exc


class StrictBoolean(fields.Boolean):
    """JSON true/false only; "yes" or 1 are mistakes worth reporting."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class StrictNumber(fields.Float):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


def one_of(*choices: str) -> validate.OneOf:
    return validate.OneOf(choices, error="Must be one of: {choices}.")


class StrictSchema(Schema):
    class Meta:
        unknown = RAISE
