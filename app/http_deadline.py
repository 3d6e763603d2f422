"""A wall-clock deadline for every outbound HTTP call, shared by the API and the workers.

httpx's timeouts bound each connect, read and write on its own: a server that sends one
byte every few seconds never trips them and holds the calling thread for as long as it
likes. A client built here (`deadline_client`) gives each request a total deadline that
covers waiting for a pooled connection, connecting, TLS, sending the body, the response
headers and the whole response body, however it is read (streamed or not):

- the transport notes the request's deadline in a context variable while httpcore works
  on it (and while each chunk of a streamed body is read);
- the network backend clamps every socket operation's timeout to the time left, so a
  blocked read is interrupted at the deadline, not after one more per-read timeout.

Past the deadline the call raises `httpx.ReadTimeout` (a `TimeoutException`, hence a
`TransportError`) whose message says which deadline passed: every caller already treats
those as a failed attempt worth retrying.

A request's deadline is the client's, or `extensions={"deadline": seconds}` for one
call, or `extensions={"deadline_at": time.monotonic() + seconds}` when earlier work (a
DNS lookup) already used part of it. Clients made with `bytes_per_second` add the time
a body of the request's Content-Length takes at that rate, so a large upload gets a long
but still finite deadline.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

# Bytes handed to the socket per send: each send then waits at most the time left.
_WRITE_PIECE = 64 * 1024


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() value
    seconds: float  # the total, for the message

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def message(self) -> str:
        return f"the call's total deadline of {self.seconds:g} s passed"


_current: ContextVar[Deadline | None] = ContextVar("crier_http_deadline", default=None)


def _clamp(timeout: float | None, timeout_error: type[Exception]) -> tuple[float | None, bool]:
    """The timeout for one socket operation, and whether the deadline set it."""
    deadline = _current.get()
    if deadline is None:
        return timeout, False
    remaining = deadline.remaining()
    if remaining <= 0:
        raise timeout_error(deadline.message())
    if timeout is None or remaining < timeout:
        return remaining, True
    return timeout, False


class _DeadlineNetworkStream(httpcore.NetworkStream):
    """A socket stream whose reads and writes never outlive the current deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        clamped, by_deadline = _clamp(timeout, httpcore.ReadTimeout)
        try:
            return self._inner.read(max_bytes, clamped)
        except httpcore.ReadTimeout as exc:
            deadline = _current.get()
            if by_deadline and deadline is not None:
                raise httpcore.ReadTimeout(deadline.message()) from exc
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sock = self._inner.get_extra_info("socket")
        if not isinstance(sock, socket.socket):  # not a plain or TLS socket: piecewise
            for start in range(0, len(buffer), _WRITE_PIECE):
                piece = buffer[start : start + _WRITE_PIECE]
                self._inner.write(piece, _clamp(timeout, httpcore.WriteTimeout)[0])
            return
        view = memoryview(buffer)
        while view:
            clamped, by_deadline = _clamp(timeout, httpcore.WriteTimeout)
            try:
                sock.settimeout(clamped)
                sent = sock.send(view[:_WRITE_PIECE])
            except TimeoutError as exc:
                deadline = _current.get()
                message = deadline.message() if by_deadline and deadline else str(exc)
                raise httpcore.WriteTimeout(message) from exc
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc
            view = view[sent:]

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        clamped, _ = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineNetworkStream(self._inner.start_tls(ssl_context, server_hostname, clamped))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sockets, wrapped so that every operation honours the deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        clamped, _ = _clamp(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, clamped, local_address, socket_options)
        return _DeadlineNetworkStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        clamped, _ = _clamp(timeout, httpcore.ConnectTimeout)
        return _DeadlineNetworkStream(
            self._inner.connect_unix_socket(path, clamped, socket_options)
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _DeadlineBody(httpx.SyncByteStream):
    """A response body read under its request's deadline, chunk by chunk."""

    def __init__(self, inner: httpx.SyncByteStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._inner)
        while True:
            token = _current.set(self._deadline)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            finally:
                _current.reset(token)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport with a total deadline per request (see the module docstring)."""

    def __init__(
        self, deadline: float, *, bytes_per_second: float | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        pool = self._pool
        if not hasattr(pool, "_network_backend"):  # pragma: no cover - httpcore changed
            raise RuntimeError("httpcore's connection pool no longer takes a network backend")
        pool._network_backend = _DeadlineBackend()
        self.deadline = deadline
        self.bytes_per_second = bytes_per_second

    def request_deadline(self, request: httpx.Request) -> Deadline:
        at = request.extensions.get("deadline_at")
        seconds = float(request.extensions.get("deadline") or self.deadline)
        length = request.headers.get("Content-Length", "")
        if self.bytes_per_second and length.isdigit():
            seconds += int(length) / self.bytes_per_second
        if at is not None:
            return Deadline(float(at), seconds)
        return Deadline(time.monotonic() + seconds, seconds)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        deadline = self.request_deadline(request)
        remaining = deadline.remaining()
        if remaining <= 0:
            raise httpx.ReadTimeout(deadline.message(), request=request)
        # Waiting for a pooled connection counts too.
        timeouts = dict(request.extensions.get("timeout") or {})
        timeouts["pool"] = min(timeouts.get("pool") or remaining, remaining)
        request.extensions["timeout"] = timeouts
        token = _current.set(deadline)
        try:
            response = super().handle_request(request)
        finally:
            _current.reset(token)
        assert isinstance(response.stream, httpx.SyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_DeadlineBody(response.stream, deadline),
            extensions=response.extensions,
        )


def deadline_client(
    deadline: float,
    *,
    timeout: httpx.Timeout | float = 30.0,
    bytes_per_second: float | None = None,
    limits: httpx.Limits | None = None,
    follow_redirects: bool = False,
) -> httpx.Client:
    """An httpx client whose every request ends within `deadline` seconds (see above)."""
    transport = DeadlineTransport(
        deadline,
        bytes_per_second=bytes_per_second,
        limits=limits or httpx.Limits(max_connections=100, max_keepalive_connections=20),
    )
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=follow_redirects)
