"""The seed product's clients call every route under `/api/v1` (its SDK has the prefix in
each path); Crier's routes stand at the root. Serving both keeps such a client working
unchanged and the short paths working as they always have."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

API_PREFIX = "/api/v1"


class VersionPrefix:
    """WSGI middleware: a path under `/api/v1` is the same route without it, and the
    prefix moves to SCRIPT_NAME, so links the app builds for such a request keep it."""

    def __init__(self, wsgi_app: Any) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + API_PREFIX
            environ["PATH_INFO"] = path[len(API_PREFIX) :] or "/"
        return self.wsgi_app(environ, start_response)
