"""Keeping secrets out of logs: signed media links in gunicorn's access log.

A signed media path is a bearer credential for that file until it expires; the access
log keeps the route and the file extension, never the token.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

SIGNED_MEDIA_PATH = re.compile(r"(/media/public/)[^/?#\s\"]+?(\.[A-Za-z0-9]{1,5})?(?=[?#\s\"]|$)")
REDACTED = "[redacted]"


def redact_media_paths(text: str) -> str:
    return SIGNED_MEDIA_PATH.sub(lambda m: m.group(1) + REDACTED + (m.group(2) or ""), text)


class RedactingGunicornLogger(Logger):
    """gunicorn's logger with signed media paths redacted in every access-log atom."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U", "{raw_uri}e", "{path_info}e", "{request_uri}e"):
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = redact_media_paths(value)
        return atoms
