"""Requests Crier makes to URLs its callers give it (webhooks, media imports).

A caller-supplied URL must not become a way into our own network: only http/https, and
every address the name resolves to must be public — no loopback, private, link-local
(cloud metadata lives there), carrier-grade NAT, multicast or reserved ranges. The check
runs when the request is made, after DNS, and the connection then goes to the address
that was checked (so a name cannot resolve to a public address for the check and to a
private one for the connection). Redirects are never followed.
`CRIER_ALLOW_PRIVATE_URLS=1` lifts the address rule, for tests and `crier dev`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

ALLOWED_SCHEMES = ("http", "https")
# Metadata services that sit on ordinary-looking addresses in some clouds.
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class UnsafeURLError(ValueError):
    """The URL may not be requested; the message says why, for the caller to read."""


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
    """Why an address may not be reached, or None when it is a public one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_private:
        return "a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "a non-public address"
    return None


def resolve(url: str, *, allow_private: bool) -> Destination:
    """Resolve the URL's host now and pick an address every rule allows."""
    scheme, host, port = check_url_syntax(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeURLError(f"The host {host} cannot be resolved.") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnsafeURLError(f"The host {host} cannot be resolved.")
    if not allow_private:
        # Every address must pass: otherwise the one refused may be the one connected to.
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise UnsafeURLError(
                    f"Refused: {host} resolves to {address}, {problem}. Only public "
                    "addresses may be reached."
                )
    return Destination(url, scheme, host, port, addresses[0])


def check_literal_host(url: str, *, allow_private: bool) -> None:
    """At intake: refuse what can be refused without DNS (bad scheme, private IP literal)."""
    _scheme, host, _port = check_url_syntax(url)
    if allow_private:
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            raise UnsafeURLError("Refused: localhost is a loopback address.") from None
        return
    problem = address_problem(host)
    if problem:
        raise UnsafeURLError(f"Refused: {host} is {problem}. Only public addresses may be reached.")


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
    **kwargs: object,
) -> Iterator[httpx.Response]:
    """Send one request under the outbound rules; the response is streamed."""
    destination = resolve(url, allow_private=allow_private)
    request = pinned_request(destination, method, **kwargs)
    response = client.send(request, stream=True, follow_redirects=False)
    try:
        yield response
    finally:
        response.close()
