"""Flask's JSON responses written by orjson.

Every answer is an envelope dumped to JSON, and the standard library's encoder was a
visible share of a create's CPU. Output is the same JSON: Flask's own rules for what
JSON does not know (a datetime as an HTTP date, a Decimal as a string, `__html__`) still
apply, and anything orjson cannot write (an integer past 64 bits) is written by the
standard library as before.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import DefaultJSONProvider

# Datetimes go through Flask's `default` (HTTP dates), as with the standard library.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


class OrjsonProvider(DefaultJSONProvider):
    sort_keys = False

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self._dump(obj, **kwargs).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        readable = (self.compact is None and self._app.debug) or self.compact is False
        dump_args: dict[str, Any] = {"indent": 2} if readable else {"separators": (",", ":")}
        return self._app.response_class(
            self._dump(obj, **dump_args) + b"\n", mimetype=self.mimetype
        )

    def _dump(self, obj: Any, **kwargs: Any) -> bytes:
        """orjson where the arguments ask for what it writes (compact, or indented by 2)."""
        indent = kwargs.get("indent")
        plain = (
            set(kwargs) <= {"indent", "separators", "sort_keys"}
            and indent in (None, 2)
            and kwargs.get("separators", (",", ":")) == (",", ":")
        )
        options = _OPTIONS
        if indent:
            options |= orjson.OPT_INDENT_2
        if kwargs.get("sort_keys", self.sort_keys):
            options |= orjson.OPT_SORT_KEYS
        if plain:
            try:
                return orjson.dumps(obj, default=self.default, option=options)
            except orjson.JSONEncodeError:
                pass
        return super().dumps(obj, **kwargs).encode()
