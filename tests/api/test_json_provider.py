"""Responses written by orjson (app.json_provider) read as the standard library's did:
Flask's rules for what JSON has no type for, and the standard library where orjson
cannot write a value."""

from __future__ import annotations

import decimal
import json
import uuid
from datetime import UTC, datetime

from flask import Flask

from app.json_provider import OrjsonProvider


def provider_app(debug: bool = False) -> Flask:
    app = Flask("json-provider-test")
    app.json = OrjsonProvider(app)
    app.debug = debug
    return app


VALUES = {
    "when": datetime(2026, 12, 5, 21, 0, tzinfo=UTC),
    "id": uuid.UUID(int=7),
    "price": decimal.Decimal("1.50"),
    3: "an integer key",
    "text": "café ✓",
    "nested": [{"b": 1, "a": None}],
}


def both(values: dict[object, object]) -> tuple[bytes, bytes]:
    app = provider_app()
    standard = Flask("standard")
    standard.json.sort_keys = False  # type: ignore[attr-defined]
    with app.app_context():
        ours = app.json.response(values).get_data()
    with standard.app_context():
        theirs = standard.json.response(values).get_data()
    return ours, theirs


def test_a_response_reads_as_the_standard_librarys() -> None:
    ours, theirs = both(VALUES)
    assert json.loads(ours) == json.loads(theirs)
    assert json.loads(ours)["when"] == "Sat, 05 Dec 2026 21:00:00 GMT"
    assert ours.endswith(b"\n") and b"\n" not in ours[:-1]
    assert "café".encode() in ours  # written by orjson: the standard library escapes it


def test_what_orjson_cannot_write_the_standard_library_does() -> None:
    ours, theirs = both({**VALUES, "big": 2**70})
    assert ours == theirs
    assert json.loads(ours)["big"] == 2**70


def test_keys_keep_their_order_unless_sorting_is_asked_for() -> None:
    app = provider_app()
    with app.app_context():
        assert app.json.dumps({"b": 1, "a": 2}) == '{"b":1,"a":2}'
        assert app.json.dumps({"b": 1, "a": 2}, sort_keys=True) == '{"a":2,"b":1}'
        # Arguments orjson has no form for go to the standard library.
        assert app.json.dumps({"b": 1}, indent=4) == '{\n    "b": 1\n}'


def test_debug_responses_are_indented() -> None:
    app = provider_app(debug=True)
    with app.app_context():
        assert app.json.response({"a": [1]}).get_data() == b'{\n  "a": [\n    1\n  ]\n}\n'
