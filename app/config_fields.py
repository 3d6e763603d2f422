"""How a field of `Settings` (app/config.py) names its environment variable: the
metadata that the configuration table in the operations guide is made from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Variable:
    """One or more environment variables as a row of the configuration table.

    `names` may hold `<PLATFORM>`, standing for each platform of app/platforms.py.
    `shown` is the default as the table shows it (derived from the field when empty);
    `parse` turns a non-empty value into the field's value; `listed=False` keeps a
    variable out of the table where another row already explains it.
    """

    names: tuple[str, ...]
    meaning: str
    shown: str = ""
    parse: Callable[[str], Any] | None = None
    listed: bool = True


def env(
    name: str | tuple[str, ...],
    meaning: str,
    *,
    shown: str = "",
    parse: Callable[[str], Any] | None = None,
    listed: bool = True,
) -> dict[str, Variable]:
    """A field's metadata: the variable that sets it."""
    names = (name,) if isinstance(name, str) else name
    return {"env": Variable(names, meaning, shown, parse, listed)}
