"""The docs a newcomer walks: the README stays a short front door, every link between the
pages leads somewhere, the facts CI relies on stay written down, and no text in the
repository points at development history or at files outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
PAGES = [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


def test_the_readme_is_a_short_front_door() -> None:
    assert len(README.read_text().splitlines()) <= 250
    for page in PAGES[2:]:
        assert f"(docs/{page.name})" in README.read_text(), f"README does not lead to {page.name}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    checked = 0
    for target in links(page):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not ours to check offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.is_file(), f"{page.name}: {target} names no file in the repository"
        assert ROOT in resolved.parents, f"{page.name}: {target} leaves the repository"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: no heading for #{anchor}"
        checked += 1
    if page in (README, ROOT / "docs" / "architecture.md"):
        assert checked > 0


def test_the_link_checker_catches_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\nSee [gone](missing.md) and [here](#title).\n")
    assert links(page) == ["missing.md", "#title"]
    assert not (tmp_path / "missing.md").is_file()
    assert "title" in anchors(page)
    assert slug("Processes (`Procfile`)") == "processes-procfile"


def test_the_readme_keeps_what_ci_and_checkers_rely_on() -> None:
    text = README.read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "$(BIN)/python -m pytest -q\n" in makefile
    for fact in (
        "make run",
        "make test",
        ".venv/bin/python -m pytest -q",
        "CRIER_TEST_PG_RESTART=0",
        "127.0.0.1:5432",
        "127.0.0.1:6379",
        "bash .ci/run",
        "chromium-driver",
        "var/dev-api-key",
    ):
        assert fact in text, fact


# Spelled in pieces so that this file does not match itself.
HISTORY = re.compile(
    "|".join(
        [
            r"\bissue" + r" ?#?\d",
            r"\bsession" + r"[ -]\d",
            r"\bround" + r" \d",
            # Upper case: docs/platforms.md is ours, the upper-case files are not.
            "(?-i:DESIGN" + r"\.md)",
            "(?-i:PLATFORMS" + r"\.md)",
            "(?-i:STYLE" + r"\.md)",
            r"\bshared" + "/",
            r"\bseed" + "/",
        ]
    ),
    re.I,
)


def test_no_text_points_at_development_rounds_or_outside_files() -> None:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in (".png", ".jpg", ".mp4", ".mov", ".ico"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if HISTORY.search(line):
                found.append(f"{name}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
