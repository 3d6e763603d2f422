"""Fake servers for tests: a WSGI app served over real HTTP (`serve_wsgi`, shared with the
benchmarks) and a raw server that trickles its answer."""

from __future__ import annotations

import select
import socket
import threading

from devtools.servers import serve_wsgi

__all__ = ["TrickleServer", "serve_wsgi"]


class TrickleServer:
    """A raw HTTP server that answers one byte every `interval` seconds, headers
    included, and counts the connections it holds at once (for deadline tests)."""

    def __init__(
        self,
        response: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000,
        interval: float = 1.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.response = response
        self.interval = interval
        self.listener = socket.create_server((host, 0))
        self.url = f"http://{host}:{self.listener.getsockname()[1]}"
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.accepted = 0
        self.closing = threading.Event()

    def _read_request(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            self.active += 1
            self.accepted += 1
            self.peak = max(self.peak, self.active)
        try:
            conn.settimeout(60)
            self._read_request(conn)
            for byte in self.response:
                # Waiting, notice at once when the client hangs up (it reads nothing more).
                readable, _, _ = select.select([conn], [], [], self.interval)
                if self.closing.is_set() or (readable and not conn.recv(1)):
                    return
                conn.sendall(bytes([byte]))
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.active -= 1

    def _accept(self) -> None:
        while not self.closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def __enter__(self) -> TrickleServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.listener.close()
