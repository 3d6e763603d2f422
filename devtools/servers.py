"""Serve a WSGI app over real HTTP on a free loopback port, in a thread (the test suite's
fake servers and the benchmarks' sandbox and API)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server

# One line per request drowns test output; failures print what matters.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


@contextmanager
def serve_wsgi(app: Any, host: str = "127.0.0.1") -> Iterator[str]:
    server = make_server(host, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
