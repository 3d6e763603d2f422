"""Serving the sandbox on a port (`crier sandbox`).

cheroot's pool of threads over one selector takes a burst of calls about 1.6 times as
fast as werkzeug's development server, which starts a thread per connection and writes a
log line per request (on this 2-core machine, 1,000 tweets from 200 threads: 750-800/s
against 450-490/s). A burst through Crier cannot land sooner
than the sandbox can take it, so its server is what `make bench` measures against.

The sandbox's state lives in this one process, so it is served by one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from cheroot import wsgi

# A request held by injected latency keeps its thread, so the pool grows whenever it has
# none left, as werkzeug's thread per connection never ran out.
INITIAL_THREADS = 64
GROW_BY = 32
# Kept-alive connections are closed after this long idle. Longer than clients keep theirs
# (httpx: 5 s), so a client never sends on a connection the sandbox is closing.
KEEPALIVE_SECONDS = 75
ACCEPT_BACKLOG = 1024

StartResponse = Callable[..., Any]


class GrowingPool:
    """WSGI middleware that adds threads to the server's pool when a request takes the
    last idle one."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app
        self.server: wsgi.Server | None = None
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        pool = self.server.requests if self.server is not None else None
        if pool is not None and pool.idle == 0:
            with self._lock:
                if pool.idle == 0:
                    pool.grow(GROW_BY)
        return self.app(environ, start_response)


def make_server(app: Any, host: str, port: int, threads: int = INITIAL_THREADS) -> wsgi.Server:
    growing = GrowingPool(app)
    server = wsgi.Server(
        (host, port),
        growing,
        numthreads=threads,
        request_queue_size=ACCEPT_BACKLOG,
        timeout=KEEPALIVE_SECONDS,
        server_name="crier-sandbox",
    )
    growing.server = server
    return server


def serve(app: Any, host: str, port: int, threads: int = INITIAL_THREADS) -> None:
    make_server(app, host, port, threads).safe_start()
