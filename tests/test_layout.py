"""Every source module stays short enough for a reader to hold in mind.

A module that grows past the limit usually holds two phases of one job; it is split by
phase (as the publishing pipeline is: claim, ready, fire, finish), not by helper type.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("app", "workers", "sandbox")
MAX_LINES = 600


def module_lengths() -> dict[str, int]:
    """Lines per Python module under the source packages; migrations are history, not code
    a reader walks, so they are left out."""
    lengths = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if "migrations" in relative.parts:
                continue
            lengths[relative.as_posix()] = len(path.read_text().splitlines())
    return lengths


def test_the_source_packages_are_found() -> None:
    lengths = module_lengths()
    # A wrong root would find nothing and pass every other check here.
    assert "workers/pipeline/claim.py" in lengths
    assert "app/services/posts.py" in lengths


def test_no_module_is_longer_than_the_limit() -> None:
    too_long = {path: lines for path, lines in module_lengths().items() if lines > MAX_LINES}
    assert not too_long, (
        f"modules longer than {MAX_LINES} lines: {too_long}; split each by phase, the way "
        "workers/pipeline/ is split"
    )
