"""The intake scenario: single `POST /posts` and `POST /posts/bulk` per second from 8
client threads, beside a bare INSERT + LPUSH, and, under the same gunicorn line with the
same clients, a no-op Flask app, a Flask route doing only that INSERT + LPUSH and one doing
only a create's three round trips.

The single create and the three Flask baselines are measured in turns (Crier, the no-op
app, the bare-writes route, the round-trips route, then again), each side's median round
taken: the machine's speed drifts over a run (a shared host's neighbours), and a baseline
measured in a slow stretch and the create in a fast one (or the other way round) would
say more about the drift than about Crier.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import redis

from benchmarks import baselines, floor_web
from benchmarks.bursts import BULK_SIZE, CLIENTS, api_client
from benchmarks.harness import (
    Stack,
    connect,
    create_tenant,
    free_port,
    iso,
    plain_url,
    procfile,
    procfile_args,
    sql,
    wait_http,
)

FLOOR_WEB_TABLE = "bench_floor_web_posts"
FLOOR_WEB_TARGETS_TABLE = "bench_floor_web_targets"
Body = Callable[[int, int], dict[str, Any]]
MakeCall = Callable[[int], Callable[[], int]]


def run_intake(stack: Stack, seconds: float, rounds: int) -> dict[str, Any]:
    """`seconds` of load for each figure; the single create and its two Flask baselines
    in `rounds` turns of `seconds / rounds` each."""
    tenant = create_tenant(stack.app, "intake", {"x": 4})
    accounts = tenant.accounts["x"]
    due = iso(datetime.now(UTC) + timedelta(minutes=5))

    def body(index: int, n: int) -> dict[str, Any]:
        return {
            "content": f"Intake post {index}-{n}",
            "account_ids": [accounts[index % len(accounts)]],
            "scheduled_at": due,
        }

    clients: list[httpx.Client] = []

    def posting(make_client: Callable[[], httpx.Client], path: str, size: int) -> MakeCall:
        def make(index: int) -> Callable[[], int]:
            api = make_client()
            clients.append(api)
            counter = iter(range(10**9))

            def call() -> int:
                if size == 1:
                    response = api.post(path, json=body(index, next(counter)))
                else:
                    posts = [body(index, next(counter)) for _ in range(size)]
                    response = api.post(path, json={"posts": posts})
                if response.status_code != 201:
                    raise RuntimeError(f"{path} {response.status_code}: {response.text[:300]}")
                return size

            return call

        return make

    def crier() -> httpx.Client:
        return api_client(stack, tenant)

    def plain(url: str, headers: dict[str, str] | None = None) -> Callable[[], httpx.Client]:
        return lambda: httpx.Client(base_url=url, headers=headers, timeout=60)

    try:
        with ExitStack() as servers:
            noop_url = servers.enter_context(serve(stack, "benchmarks.noop_web:app", {}))
            floor_url = servers.enter_context(floor_web_served(stack))
            sides = {
                "single": posting(crier, "/posts", 1),
                "http_ceiling": posting(plain(noop_url), "/posts", 1),
                "http_floor": posting(plain(floor_url), "/posts", 1),
                "http_round_trips": posting(
                    plain(floor_url, {"Authorization": f"Bearer {tenant.key}"}),
                    "/round-trips/posts",
                    1,
                ),
            }
            result: dict[str, Any] = {
                "clients": CLIENTS,
                **interleaved_rates(CLIENTS, seconds, rounds, sides),
            }
        result["bulk"] = baselines.concurrent_rate(
            CLIENTS, seconds, posting(crier, "/posts/bulk", BULK_SIZE)
        )
        for name, size in (("floor_single", 1), ("floor_bulk", BULK_SIZE)):
            result[name] = baselines.intake_floor(
                stack.database_url,
                stack.redis_url,
                tenant.organisation_id,
                CLIENTS,
                seconds,
                size,
            )
    finally:
        for api in clients:
            api.close()
        # Nothing of the intake may reach the workers started later.
        sql(
            stack.database_url,
            "DELETE FROM posts WHERE organisation_id = %s",
            (tenant.organisation_id,),
        )
        client = redis.Redis.from_url(stack.redis_url)
        for key in client.scan_iter("publish.*"):
            if client.type(key) == b"list":
                client.delete(key)
    return result


def interleaved_rates(
    clients: int, seconds: float, rounds: int, sides: dict[str, MakeCall]
) -> dict[str, dict[str, Any]]:
    """Each side loaded by `clients` threads for `seconds / rounds`, the sides in turn,
    `rounds` times (after a warm-up of each, so every server thread has its connections);
    per side, its median round and every round's rate."""
    length = seconds / rounds
    for make in sides.values():
        baselines.concurrent_rate(clients, min(1.0, length), make)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, make in sides.items():
            runs[name].append(baselines.concurrent_rate(clients, length, make))
    result = {}
    for name, measured in runs.items():
        rates = [run["per_second"] or 0.0 for run in measured]
        median = statistics.median_low(rates)
        chosen = measured[rates.index(median)]
        result[name] = {
            **chosen,
            "seconds": round(sum(run["seconds"] for run in measured), 3),
            "items": sum(run["items"] for run in measured),
            "rounds": rates,
        }
    return result


@contextmanager
def serve(stack: Stack, app_path: str, extra_env: dict[str, str]) -> Iterator[str]:
    """`app_path` served by the Procfile's `web` line on a port of its own; its URL."""
    port = free_port()
    command = procfile()["web"].replace("'app.wsgi:app'", f"'{app_path}'")
    name = app_path.split(":")[0].rsplit(".", 1)[-1].replace("_", "-")
    env = {**stack.env, **extra_env, "PORT": str(port)}
    proc = stack.procs.spawn(name, procfile_args(command), env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", proc=proc)
        yield url
    finally:
        stack.procs.stop(proc)


@contextmanager
def floor_web_served(stack: Stack) -> Iterator[str]:
    """benchmarks.floor_web (a create's bare writes, and its three round trips, in Flask
    routes), writing to tables like `posts` and `post_targets` made for it, dropped after."""
    tables = {FLOOR_WEB_TABLE: "posts", FLOOR_WEB_TARGETS_TABLE: "post_targets"}
    with connect(stack.database_url) as conn:
        for table, like in tables.items():
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"CREATE TABLE {table} (LIKE {like} INCLUDING ALL)")
    env = {
        "FLOOR_DATABASE_URL": plain_url(stack.database_url),
        "FLOOR_TABLE": FLOOR_WEB_TABLE,
        "FLOOR_TARGETS_TABLE": FLOOR_WEB_TARGETS_TABLE,
    }
    try:
        with serve(stack, "benchmarks.floor_web:app", env) as url:
            yield url
    finally:
        with connect(stack.database_url) as conn:
            for table in tables:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        client = redis.Redis.from_url(stack.redis_url)
        client.delete(floor_web.QUEUE)
        for key in client.scan_iter(f"{floor_web.KEY_PREFIX}*"):
            client.delete(key)
