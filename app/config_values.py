"""How the text of an environment variable becomes a setting's value (app/config.py):
the parsers its fields name."""

from __future__ import annotations

LOG_FORMATS = ("keyvalue", "json")


def truthy(raw: str) -> bool:
    """`1`, `true` or `yes` (any case): on; anything else: off."""
    return raw.strip().lower() in ("1", "true", "yes")


def parse_ports(raw: str) -> tuple[int, ...] | None:
    if not raw.strip():
        return None  # blank: the default
    ports = tuple(int(part) for part in raw.split(",") if part.strip())
    if not ports or any(not 0 < port < 65536 for port in ports):
        raise ValueError(
            f"CRIER_OUTBOUND_PORTS must list TCP ports (1-65535), comma separated: {raw!r}"
        )
    return ports


def parse_log_format(raw: str) -> str:
    chosen = raw.strip().lower().replace("=", "").replace("_", "").replace("-", "")
    if chosen not in LOG_FORMATS:
        raise ValueError(
            f"CRIER_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {chosen!r}"
        )
    return chosen


def normalise_database_url(url: str) -> str:
    """Accept the URLs hosting platforms hand out and pin the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def optional_text(raw: str) -> str | None:
    return raw or None
