"""One settings object: every variable Crier reads is parsed once, in `Settings.from_env`;
an unknown CRIER_* variable is named at start-up; per-platform values reach their users."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.config import PlatformApp, RetryOverride, Settings
from app.platforms import PLATFORM_KEYS
from app.variables import known_names, unknown_variables
from workers.quotas import publish_caps
from workers.retry import retry_policy

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_MODULE = Path("app/config.py")
# Where the environment is *built* for a child process, not read as a setting: `crier
# flower` hands Flower its environment (less FLOWER_UNAUTHENTICATED_API), and `crier dev`
# composes the environment of every process it starts. (module, function)
CHILD_ENVIRONMENTS = {
    (Path("app/cli.py"), "flower"),
    (Path("app/devstack.py"), "run_dev"),
}
ENV_NAMES = {"environ", "environb", "getenv", "getenvb"}


def environment_reads(path: Path) -> list[tuple[int, str | None]]:
    """(line, enclosing function) of each use of os.environ / os.getenv in the module,
    however os or those names were imported (`from os import getenv` counts too)."""
    tree = ast.parse(path.read_text(), str(path))
    os_names = {"os"}
    bare_names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {a.asname or a.name for a in node.names if a.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            bare_names |= {a.asname or a.name for a in node.names if a.name in ENV_NAMES}
    found: list[tuple[int, str | None]] = []

    def reads(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            value = node.value
            return node.attr in ENV_NAMES and isinstance(value, ast.Name) and value.id in os_names
        if isinstance(node, ast.ImportFrom):
            return node.module == "os" and any(a.name in ENV_NAMES for a in node.names)
        return isinstance(node, ast.Name) and node.id in bare_names

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if reads(node):
            found.append((node.lineno, function))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(tree, None)
    return found


def test_no_module_but_the_settings_reads_the_environment() -> None:
    offenders = []
    for package in ("app", "workers"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative == SETTINGS_MODULE:
                continue
            for line, function in environment_reads(path):
                if (relative, function) not in CHILD_ENVIRONMENTS:
                    offenders.append(f"{relative}:{line} (in {function or 'the module'})")
    assert offenders == [], (
        "read the environment in app/config.py (a Settings field) and pass the value: "
        + ", ".join(offenders)
    )


def test_the_scan_sees_every_way_of_reading_the_environment(tmp_path: Path) -> None:
    module = tmp_path / "reader.py"
    module.write_text(
        "import os\nimport os as system\nfrom os import getenv as g\n"
        "A = os.environ.get('A')\n"
        "def f():\n    return system.getenv('B'), g('C')\n"
    )
    lines = sorted(environment_reads(module))
    assert (4, None) in lines and (6, "f") in lines
    assert any(line == 3 for line, _ in lines)  # the `from os import getenv` itself
    module.write_text("import os\nPATH = os.path.join('a', 'b')\n")
    assert environment_reads(module) == []


def test_per_platform_variables_are_parsed_once_into_maps() -> None:
    settings = Settings.from_env(
        {
            "CRIER_X_CLIENT_ID": "x-id",
            "CRIER_X_CLIENT_SECRET": "x-secret",
            "CRIER_LINKEDIN_PUBLISH_CAPS": "3/10 seconds;50/day",
            "CRIER_X_PUBLISH_CAPS": "",
            "CRIER_YOUTUBE_RETRY_MAX_ATTEMPTS": "9",
            "CRIER_RETRY_MAX_ATTEMPTS": "2",
            "CRIER_RETRY_BASE_SECONDS": "0.5",
            "CRIER_LINKEDIN_VERSION": "202701",
            "CRIER_PREPARE_WINDOW_VIDEO": "20",
        }
    )
    assert settings.platform_app("x") == PlatformApp("x-id", "x-secret")
    assert settings.platform_app("tiktok") == PlatformApp()
    assert settings.platform_retry == {"youtube": RetryOverride(max_attempts=9)}
    assert settings.linkedin_version == "202701"
    assert (settings.prepare_window("video"), settings.prepare_window("image")) == (20.0, 300.0)

    # Caps: set ones replace the table's; set but empty means none; unset keeps the table's.
    assert [str(item) for item in publish_caps("linkedin", settings.publish_caps)] == [
        "3 per 10 second",
        "50 per 1 day",
    ]
    assert publish_caps("x", settings.publish_caps) == []
    assert publish_caps("x", Settings().publish_caps) != []

    # A platform's own value, then the shared one, then the platform's default.
    youtube = retry_policy("youtube", settings)
    assert (youtube.max_attempts, youtube.base_seconds, youtube.cap_seconds) == (9, 0.5, 1800.0)
    x = retry_policy("x", settings)
    assert (x.max_attempts, x.base_seconds, x.cap_seconds) == (2, 0.5, 900.0)
    assert retry_policy("tiktok", Settings()).max_attempts == 6


def test_a_bad_value_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="CRIER_OUTBOUND_PORTS"):
        Settings.from_env({"CRIER_OUTBOUND_PORTS": "80,70000"})
    with pytest.raises(ValueError):
        Settings.from_env({"CRIER_X_PUBLISH_CAPS": "often"})


def test_unknown_crier_variables_are_named_with_the_closest_known_one() -> None:
    found = unknown_variables(
        {
            "CRIER_SWEEP_INTERVALS": "1",
            "CRIER_TIKTOK_CLIENTSECRET": "s",
            "CRIER_NOTHING_LIKE_IT_AT_ALL_REALLY": "1",
            "CRIER_SWEEP_INTERVAL": "5",
            "CRIER_YOUTUBE_RETRY_CAP_SECONDS": "60",
            "CRIER_TEST_PG_RESTART": "0",
            "PATH": "/bin",
        }
    )
    assert found == [
        ("CRIER_NOTHING_LIKE_IT_AT_ALL_REALLY", None),
        ("CRIER_SWEEP_INTERVALS", "CRIER_SWEEP_INTERVAL"),
        ("CRIER_TIKTOK_CLIENTSECRET", "CRIER_TIKTOK_CLIENT_SECRET"),
    ]
    # Every per-platform name is known for every platform of the rules table.
    for platform in PLATFORM_KEYS:
        for suffix in ("CLIENT_ID", "CLIENT_SECRET", "PUBLISH_CAPS", "RETRY_MAX_ATTEMPTS"):
            assert f"CRIER_{platform.upper()}_{suffix}" in known_names()


def test_the_web_app_reports_an_unknown_variable_at_start(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    app_settings: dict[str, Any],
) -> None:
    monkeypatch.setenv("CRIER_PUBLISH_LAESE", "40")
    with caplog.at_level(logging.WARNING, logger="crier.config"):
        create_app(app_settings)
    warnings = [r.getMessage() for r in caplog.records if r.name == "crier.config"]
    assert warnings == [
        "CRIER_PUBLISH_LAESE is set but Crier reads no such variable; "
        "did you mean CRIER_PUBLISH_LEASE?"
    ]


def test_workers_and_beat_report_an_unknown_variable_at_start(
    app_settings: dict[str, Any],
) -> None:
    """`celery -A workers.celery worker|beat` loads this module first: its start names it."""
    env = {
        **os.environ,
        "DATABASE_URL": app_settings["database_url"],
        "REDIS_URL": app_settings["redis_url"],
        "CRIER_SECRET_KEY": app_settings["secret_key"],
        "CRIER_FIRE_THRADS": "4",
    }
    done = subprocess.run(
        [sys.executable, "-c", "import workers.celery"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "CRIER_FIRE_THRADS is set but Crier reads no such variable; "
        "did you mean CRIER_FIRE_THREADS?"
    ) in done.stderr
