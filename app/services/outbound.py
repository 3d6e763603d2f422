"""Requests Crier makes to URLs its callers give it (webhooks, media imports).

A caller-supplied URL must not become a way into our own network: only http/https, only
ports 80 and 443 (CRIER_OUTBOUND_PORTS), and every address the name resolves to must be
public — no loopback, private, link-local (cloud metadata lives there), site-local,
carrier-grade NAT, multicast or reserved ranges, and no IPv6 form that carries an IPv4
address (mapped, compatible, 6to4, Teredo, NAT64) since that may lead back inside. The
check runs when the request is made, after DNS, and the connection then goes to the
address that was checked (so a name cannot resolve to a public address for the check and
to a private one for the connection). Redirects are never followed.

Every refusal (a name that does not resolve, an address or port not allowed, a
connection refused or timed out) reads the same, REFUSED: a caller cannot use Crier to
tell an open port from a closed one or a live host from a dead one. The reason is logged.
`CRIER_ALLOW_PRIVATE_URLS=1` lifts the address and port rules, for tests and `crier dev`.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

log = logging.getLogger("crier.outbound")

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = (80, 443)
REFUSED = (
    "Refused: the URL does not lead to a public address on an allowed port that answers. "
    "Only public http(s) addresses may be reached."
)
# IPv6 ranges that embed or translate to an IPv4 address, and the deprecated site-local
# range: none is a plain public IPv6 host, and some lead to loopback or private IPv4.
EMBEDDING_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64 well-known prefix
        "64:ff9b:1::/48",  # NAT64 local-use
        "2001::/32",  # Teredo
        "2002::/16",  # 6to4
        "fec0::/10",  # site-local (deprecated)
    )
)
# Name lookups run here so that a slow resolver cannot outlast the call's deadline.
_resolver = ThreadPoolExecutor(max_workers=16, thread_name_prefix="crier-resolve")
# Metadata services that sit on ordinary-looking addresses in some clouds.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class UnsafeURLError(ValueError):
    """The URL may not be requested; the message is safe to show the caller."""


def refused(url: str, why: str) -> UnsafeURLError:
    """The one refusal callers see; the reason goes to the log only."""
    log.info("outbound refused url=%s reason=%s", url, why)
    return UnsafeURLError(REFUSED)


@dataclass(frozen=True)
class Destination:
    url: str
    scheme: str
    host: str
    port: int
    address: str  # the checked address the connection goes to


def check_url_syntax(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an acceptable URL, or UnsafeURLError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"{url!r} is not a valid URL.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURLError("Only http and https URLs are allowed.")
    if not parts.hostname:
        raise UnsafeURLError("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeURLError("URLs with credentials (user:password@) are not allowed.")
    return scheme, parts.hostname, port or (443 if scheme == "https" else 80)


def address_problem(address: str) -> str | None:
    """Why an address may not be reached (for the log), or None when it is a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = address_problem(str(ip.ipv4_mapped))
            return f"an IPv4-mapped address of {inner}" if inner else "an IPv4-mapped address"
        for network in EMBEDDING_NETWORKS:
            if ip in network and not (ip.is_loopback or ip.is_unspecified):
                return f"an address in {network} (embedded IPv4 or site-local)"
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or not ip.is_global:
        return "a non-public address"
    return None


def _lookup(host: str, port: int, seconds: float) -> list[str]:
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    infos = future.result(timeout=max(seconds, 0.001))
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def resolve(
    url: str,
    *,
    allow_private: bool,
    ports: Collection[int] = DEFAULT_PORTS,
    within: float = 10.0,
) -> Destination:
    """Resolve the URL's host now (within `within` seconds) and pick an address every
    rule allows."""
    scheme, host, port = check_url_syntax(url)
    if not allow_private and port not in ports:
        raise refused(url, f"port {port} is not one of {sorted(ports)}")
    try:
        addresses = _lookup(host, port, within)
    except (OSError, UnicodeError) as exc:
        raise refused(url, f"{host} cannot be resolved: {exc}") from exc
    except FutureTimeout as exc:
        raise refused(url, f"resolving {host} took more than {within:g} s") from exc
    if not addresses:
        raise refused(url, f"{host} resolves to no address")
    if not allow_private:
        # Every address must pass: otherwise the one refused may be the one connected to.
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise refused(url, f"{host} resolves to {address}, {problem}")
    return Destination(url, scheme, host, port, addresses[0])


def check_literal_host(
    url: str, *, allow_private: bool, ports: Collection[int] = DEFAULT_PORTS
) -> None:
    """At intake: refuse what can be refused without DNS (bad scheme, port, private IP)."""
    _scheme, host, port = check_url_syntax(url)
    if allow_private:
        return
    if port not in ports:
        raise refused(url, f"port {port} is not one of {sorted(ports)}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise refused(url, "localhost is a loopback name") from None
        return
    problem = address_problem(host)
    if problem:
        raise refused(url, f"{host} is {problem}")


def pinned_request(destination: Destination, method: str, **kwargs: object) -> httpx.Request:
    """A request to the checked address, still naming the host (Host header, TLS SNI)."""
    parts = urlsplit(destination.url)
    address = destination.address
    netloc = f"[{address}]" if ":" in address else address
    netloc = f"{netloc}:{destination.port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    headers = dict(kwargs.pop("headers", None) or {})  # type: ignore[call-overload]
    default_port = 443 if destination.scheme == "https" else 80
    host_header = destination.host if ":" not in destination.host else f"[{destination.host}]"
    if destination.port != default_port:
        host_header = f"{host_header}:{destination.port}"
    headers["Host"] = host_header
    extensions: dict[str, object] = {}
    if destination.scheme == "https":
        extensions["sni_hostname"] = destination.host
    timeout = kwargs.pop("timeout", None)
    if isinstance(timeout, httpx.Timeout):
        extensions["timeout"] = timeout.as_dict()
    return httpx.Request(method, target, headers=headers, extensions=extensions, **kwargs)  # type: ignore[arg-type]


@contextmanager
def safe_stream(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    allow_private: bool,
    deadline: float,
    ports: Collection[int] = DEFAULT_PORTS,
    **kwargs: object,
) -> Iterator[httpx.Response]:
    """Send one request under the outbound rules; the response is streamed. `deadline`
    bounds the whole call, name lookup included, when `client` enforces deadlines
    (app.http_deadline); a connection that fails is refused like a forbidden address."""
    deadline_at = time.monotonic() + deadline
    destination = resolve(url, allow_private=allow_private, ports=ports, within=deadline)
    request = pinned_request(destination, method, **kwargs)
    request.extensions["deadline_at"] = deadline_at
    request.extensions["deadline"] = deadline
    try:
        response = client.send(request, stream=True, follow_redirects=False)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise refused(url, f"connecting to {destination.address}: {exc}") from exc
    try:
        yield response
    finally:
        response.close()
