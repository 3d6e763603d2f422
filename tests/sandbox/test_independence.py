"""The sandbox is a separate program standing in for the platforms: it imports nothing
of Crier's, and its copy of the platforms' limits agrees with Crier's table."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import app.platforms as crier_rules
import sandbox.rules as sandbox_rules

ROOT = Path(__file__).resolve().parents[2]


def test_the_sandbox_imports_nothing_of_crier() -> None:
    probe = (
        "import sys; from sandbox import create_sandbox_app; create_sandbox_app(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('app', 'workers')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_the_sandbox_limits_agree_with_crier() -> None:
    assert set(sandbox_rules.PLATFORMS) == set(crier_rules.PLATFORMS)

    def facts(rules: object) -> dict[str, object]:
        # Counting functions are compared by name (and below, by what they count).
        return {
            k: getattr(v, "__name__", v) if callable(v) else v
            for k, v in dataclasses.asdict(rules).items()  # type: ignore[call-overload]
        }

    for name, rules in crier_rules.PLATFORMS.items():
        assert facts(sandbox_rules.PLATFORMS[name]) == facts(rules)
    sample = "Hello @crier #launch https://example.com/a-very-long-path 👋🏽 ñ"
    for counter in ("count_x_weighted", "count_threads", "count_utf16", "count_hashtags"):
        assert getattr(sandbox_rules, counter)(sample) == getattr(crier_rules, counter)(sample)
