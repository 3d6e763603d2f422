"""The whole suite runs on several processes (pytest-xdist); a test marked `exclusive`
runs with no other test beside it.

Each xdist worker is its own pytest session, so it gets its own scratch database, Redis
db and sandbox (tests/conftest.py): workers share nothing but the servers. What they
cannot share is a moment: restarting the PostgreSQL cluster would break every other
worker's test in flight. Every test holds a shared lock on one file for its run, and an
`exclusive` test holds it alone, so it starts once the running tests have finished and
the others wait for it.

`pytest -q` with no paths (what `make test` runs) uses `CRIER_TEST_WORKERS` processes
(default: one per core, at least two); naming paths, or `-n`, runs as asked.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Generator
from pathlib import Path

import pytest

WORKERS_VARIABLE = "CRIER_TEST_WORKERS"


def default_workers() -> int:
    return max(2, os.cpu_count() or 1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "exclusive: no other test runs beside this one when the suite is parallel"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Spread the whole suite over workers unless the caller chose what to run."""
    if not config.pluginmanager.hasplugin("xdist") or "PYTEST_XDIST_WORKER" in os.environ:
        return
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    chosen = config.option.numprocesses is not None
    if whole_suite and not chosen and not config.option.collectonly:
        workers = int(os.environ.get(WORKERS_VARIABLE) or default_workers())
        config.option.numprocesses = workers if workers > 1 else 0
    if config.option.numprocesses and config.option.testrunuid is None:
        # Named here, so the controller knows which lock files to remove at the end.
        config.option.testrunuid = uuid.uuid4().hex


def pytest_unconfigure(config: pytest.Config) -> None:
    run = getattr(config.option, "testrunuid", None)
    if run and "PYTEST_XDIST_WORKER" not in os.environ:
        for path in _lock_paths(run):
            path.unlink(missing_ok=True)


def _lock_paths(run: str) -> tuple[Path, Path]:
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"crier-suite-{run}"
    return base.with_suffix(".gate"), base.with_suffix(".lock")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Shared for a test, alone for an exclusive one.

    Every test passes a gate on its way in; an exclusive test keeps the gate shut while it
    waits for the running tests to end, so a stream of new ones cannot starve it.
    """
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:  # one process: nothing runs beside anything
        return (yield)
    paths = _lock_paths(run)
    exclusive = item.get_closest_marker("exclusive") is not None
    with paths[0].open("a") as gate, paths[1].open("a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        if not exclusive:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)
