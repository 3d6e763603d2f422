"""Which variables Crier knows: the operations guide's configuration table, made from
Settings' declarations, and the start-up report of CRIER_* variables Crier does not read
(a misspelt name would otherwise be ignored without a word)."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from app.config import PLATFORM, Settings, Variable, crier_variables
from app.platforms import PLATFORM_KEYS

log = logging.getLogger("crier.config")

# Variables Crier documents but does not keep in Settings: read by the Procfile's shell, by
# Flower, or by `crier dev` as it builds its processes' environment.
EXTRA_VARIABLES = (
    Variable(
        ("FLOWER_BASIC_AUTH",),
        "`user:password` for Flower; `crier flower` refuses to start without it or Flower's "
        "OAuth settings",
        shown="none (`crier dev` makes one)",
    ),
    Variable(("PORT",), "API port for `web` and `crier dev`", shown="`8000`"),
    Variable(
        ("CRIER_BEAT_SCHEDULE",),
        "where `beat` keeps its schedule's state",
        shown="`var/celerybeat-schedule`",
    ),
    Variable(
        ("CRIER_DEV_REDIS_PORT",),
        "`crier dev` without `REDIS_URL`: where the embedded Redis listens (any free port "
        "when taken)",
        shown="`6390`",
    ),
    Variable(
        ("CRIER_SANDBOX_PORT",),
        "`crier dev` without `CRIER_PLATFORM_BASE_URL`: where the sandbox listens (any free "
        "port when taken)",
        shown="`8090`",
    ),
)

# Read by the test suite and `make fuzz`, never by Crier: known, so never reported.
TOOLING_VARIABLES = frozenset(
    {
        "CRIER_TEST_PG",
        "CRIER_TEST_PG_RESTART",
        "CRIER_TEST_REDIS",
        "CRIER_TEST_RABBITMQ",
        "CRIER_TEST_WORKERS",
        "CRIER_FUZZ_EXAMPLES",
    }
)


def variables() -> Iterator[Variable]:
    """Every documented variable: Settings' fields, then the extra ones."""
    for item in fields(Settings):
        if "env" in item.metadata:
            yield item.metadata["env"]
    yield from EXTRA_VARIABLES


def known_names() -> frozenset[str]:
    """Every variable name Crier or its tooling reads, per-platform ones spelt out."""
    names: set[str] = set(TOOLING_VARIABLES)
    for variable in variables():
        for name in variable.names:
            if PLATFORM in name:
                names.update(name.replace(PLATFORM, p.upper()) for p in PLATFORM_KEYS)
            else:
                names.add(name)
    return frozenset(names)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """Each CRIER_* name in the environment that Crier does not read, with the closest
    known name (None when nothing is close)."""
    source = crier_variables() if environ is None else environ
    known = known_names()
    found = []
    for name in sorted(key for key in source if key.startswith("CRIER_") and key not in known):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        found.append((name, close[0] if close else None))
    return found


def report_unknown_variables(environ: Mapping[str, str] | None = None) -> None:
    """A warning per unknown CRIER_* variable: a misspelt one would otherwise do nothing."""
    for name, close in unknown_variables(environ):
        hint = f"; did you mean {close}?" if close else ""
        log.warning("%s is set but Crier reads no such variable%s", name, hint)


def _shown_default(item: Any) -> str:
    default = item.default
    if default is None or default is False:
        return "unset"
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    if isinstance(default, tuple):
        default = ",".join(str(part) for part in default)
    return f"`{default}`"


def config_table() -> str:
    """The operations guide's configuration table, from the declarations above."""
    rows: list[tuple[list[str], list[str], str]] = []
    documented = [
        (item.metadata["env"], item) for item in fields(Settings) if "env" in item.metadata
    ]
    documented += [(variable, None) for variable in EXTRA_VARIABLES]
    for variable, item in documented:
        if not variable.listed:
            continue
        names = [f"`{name}`" for name in variable.names]
        shown = variable.shown or (_shown_default(item) if item is not None else "unset")
        if variable.meaning:
            rows.append((names, [shown], variable.meaning))
        else:  # continues the row above
            rows[-1][0].extend(names)
            rows[-1][1].append(shown)
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for names, shown, meaning in rows:
        lines.append(f"| {', '.join(names)} | {', '.join(shown)} | {meaning} |")
    return "\n".join(lines) + "\n"
