"""The configuration table of docs/operations.md is the one `crier config-table` makes from
Settings' fields: a variable added, renamed or redefined there shows up here."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from click.testing import CliRunner

from app.cli import main
from app.variables import config_table, known_names

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def documented_table() -> str:
    """The markdown table that opens with `| variable |` in the Configuration section."""
    section = OPERATIONS.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return "\n".join(rows) + "\n"


def test_the_docs_table_is_the_generated_one() -> None:
    documented, generated = documented_table(), config_table()
    diff = "".join(
        difflib.unified_diff(
            documented.splitlines(True), generated.splitlines(True), "docs", "Settings"
        )
    )
    assert documented == generated, (
        "docs/operations.md's configuration table differs from Settings; paste the output of "
        f"`crier config-table` there:\n{diff}"
    )


def test_crier_config_table_prints_it() -> None:
    result = CliRunner().invoke(main, ["config-table"])
    assert result.exit_code == 0, result.output
    assert result.output == config_table()


def test_every_documented_name_is_one_crier_knows() -> None:
    """No row names a variable that the unknown-variable report would call unknown."""
    named = set(re.findall(r"`((?:CRIER|FLOWER|PROMETHEUS)_[A-Z0-9_]+)`", config_table()))
    spelt_out = {name for name in named if "<" not in name}
    assert spelt_out and spelt_out <= known_names()
