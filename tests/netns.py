"""Hosts on this machine as Linux network namespaces, for the partition test.

Each host is a namespace joined to the root namespace by a veth pair on a /30 of its own.
PostgreSQL, Redis and the sandbox listen on 127.0.0.1 only (and the shared PostgreSQL is
not ours to reconfigure), so a small TCP relay in the root namespace listens on each
host's gateway address and forwards to them: PostgreSQL still sees a local client, and
cutting a host's link cuts everything it talks to at once, as a pulled cable would.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest

SUBNET = "10.231"  # 10.231.<n>.0/24, one /30 per host inside it


class Relay:
    """Plain TCP forwarding on an asyncio loop of its own thread: each listening address
    forwards to one server. A connection whose peer went silent (a cut link) just stalls,
    as it would through a switch."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="relay", daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []
        self.writers: set[asyncio.StreamWriter] = set()

    def forward(self, host: str, target: tuple[str, int]) -> int:
        """Listen on `host` (a free port) and forward to `target`; returns the port."""
        return asyncio.run_coroutine_threadsafe(self._listen(host, target), self.loop).result(
            timeout=10
        )

    async def _listen(self, host: str, target: tuple[str, int]) -> int:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connect(reader, writer, target)

        server = await asyncio.start_server(accept, host, 0)
        self.servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _connect(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]
    ) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self.writers.difference_update((writer, up_writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        async def shutdown() -> None:
            for server in self.servers:
                server.close()
            for writer in list(self.writers):
                writer.close()

        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@dataclass
class Host:
    """One namespace: `gateway` is the root side of its veth, where the relay listens."""

    name: str
    netns: str
    link: str  # the root side of the veth pair: taking it down cuts the host off
    gateway: str
    address: str
    # (server host, port) -> the relay's port on `gateway` that forwards to it
    ports: dict[tuple[str, int], int] = field(default_factory=dict)

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def heal(self) -> None:
        ip("link", "set", self.link, "up")


def ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _free_subnet() -> int:
    """A third octet no interface uses yet, starting from one derived from our pid."""
    used = ip("-o", "-4", "addr", "show")
    start = os.getpid() % 250
    for step in range(250):
        octet = (start + step) % 250 + 1
        if f" {SUBNET}.{octet}." not in used:
            return octet
    raise RuntimeError(f"no free {SUBNET}.x.0/24 subnet")


def require_netns() -> None:
    """Skip, saying why, where network namespaces cannot be made."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CI runs .ci/run as root)")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    probe = f"crierprobe{os.getpid()}"
    done = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"network namespaces are not available here: {done.stderr.strip()}")
    try:
        inside = subprocess.run(
            ["ip", "netns", "exec", probe, "true"], capture_output=True, text=True
        )
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if inside.returncode != 0:
        pytest.skip(f"cannot run a process in a network namespace: {inside.stderr.strip()}")


@contextmanager
def namespaced_hosts(names: list[str], servers: list[tuple[str, int]]) -> Iterator[list[Host]]:
    """Hosts `names`, each reaching the `servers` (host, port) through a relay on its
    gateway; all of it (namespaces, veths, relay) is removed at the end, even after a
    failure."""
    require_netns()
    octet = _free_subnet()
    tag = str(os.getpid())
    hosts: list[Host] = []
    relay = Relay()
    try:
        for n, name in enumerate(names):
            base = 4 * n
            host = Host(
                name=name,
                netns=f"crier{tag}{name}",
                link=f"cr{tag}{n}",
                gateway=f"{SUBNET}.{octet}.{base + 1}",
                address=f"{SUBNET}.{octet}.{base + 2}",
            )
            hosts.append(host)
            inner = f"cr{tag}{n}n"
            # Left by an earlier run that had our pid and was killed before its cleanup.
            ip("link", "del", host.link, check=False)
            ip("netns", "del", host.netns, check=False)
            try:
                ip("netns", "add", host.netns)
                ip("link", "add", host.link, "type", "veth", "peer", "name", inner)
            except RuntimeError as error:
                pytest.skip(f"cannot build a veth pair into a namespace: {error}")
            ip("link", "set", inner, "netns", host.netns)
            ip("addr", "add", f"{host.gateway}/30", "dev", host.link)
            ip("link", "set", host.link, "up")
            ip("-n", host.netns, "addr", "add", f"{host.address}/30", "dev", inner)
            ip("-n", host.netns, "link", "set", inner, "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
            ip("-n", host.netns, "route", "add", "default", "via", host.gateway)
            for server in servers:
                host.ports[server] = relay.forward(host.gateway, server)
        yield hosts
    finally:
        relay.close()
        for host in hosts:
            ip("link", "del", host.link, check=False)
            ip("netns", "del", host.netns, check=False)
