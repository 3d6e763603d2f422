"""What any create can reach under the Procfile's `web` line: Flask routes that do only
the writes of a create and answer 201 with an envelope, checking nothing.

- `POST /posts`, the bare writes: one INSERT into a table like `posts`, autocommitted,
  and one LPUSH (the intake floor's writes).
- `POST /round-trips/posts`, a create's three round trips and nothing else: the key's
  entry and two rate-limit windows in one Redis script, the post and its target in one
  autocommitted statement, and one LPUSH.

Between the no-op app (benchmarks.noop_web) and Crier: no key check, no validation, no
account check, no message framing. Served with FLOOR_DATABASE_URL (a plain libpq URL),
REDIS_URL, FLOOR_TABLE and FLOOR_TARGETS_TABLE set; the benchmark creates and drops the
tables.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import redis
from flask import Flask, Response, request

from benchmarks import noop_web

app = Flask(__name__)
_local = threading.local()
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
QUEUE = "bench:floor-web"
KEY_PREFIX = "bench:floor-web:key:"
POSTS = os.environ.get("FLOOR_TABLE", "bench_floor_posts")
TARGETS = os.environ.get("FLOOR_TARGETS_TABLE", "bench_floor_targets")
POST_COLUMNS = (
    "id, organisation_id, content, scheduled_at, publish_now, timezone, platform_content, "
    "media_ids, status, created_at, updated_at"
)
POST_VALUES = "%s, %s, %s, %s, false, 'UTC', '{}', '[]', 'scheduled', now(), now()"
INSERT = f"INSERT INTO {POSTS} ({POST_COLUMNS}) VALUES ({POST_VALUES})"
INSERT_WITH_TARGET = (
    f"WITH post AS (INSERT INTO {POSTS} ({POST_COLUMNS}) VALUES ({POST_VALUES}) RETURNING id) "
    f"INSERT INTO {TARGETS} (post_id, account_id, platform, status, attempts, "
    "next_attempt_at, dispatch_token, queued_at, created_at, updated_at) "
    "SELECT post.id, %s, 'x', 'queued', 0, %s, %s, now(), now(), now() FROM post RETURNING id"
)
# The key's entry, then a hit on each of two fixed windows (every request, creates).
KEY_AND_WINDOWS = _redis.register_script(
    "local entry = redis.call('get', KEYS[1]) "
    "local out = {entry} "
    "for i = 2, 3 do "
    "  local hits = redis.call('incr', KEYS[i]) "
    "  if hits == 1 then redis.call('pexpire', KEYS[i], 60000) end "
    "  table.insert(out, hits) "
    "end "
    "return out"
)


def _connection() -> psycopg.Connection[Any]:
    """One autocommit connection per server thread, as a pool would hand out."""
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(os.environ["FLOOR_DATABASE_URL"], autocommit=True)
    return conn


app.add_url_rule("/health", view_func=noop_web.health)


@app.post("/posts")
def create_post() -> tuple[Response, int]:
    body = request.get_json()
    post_id = uuid.uuid4()
    due = datetime.now(UTC) + timedelta(minutes=5)
    _connection().execute(INSERT, (post_id, 1, body["content"], due))
    _redis.lpush(QUEUE, json.dumps({"id": str(post_id)}))
    return noop_web.created(post_id, body)


@app.post("/round-trips/posts")
def create_post_round_trips() -> tuple[Response, int]:
    token = request.headers.get("Authorization", "")
    key = KEY_PREFIX + hashlib.sha256(token.encode()).hexdigest()
    KEY_AND_WINDOWS(keys=[key, f"{key}:requests", f"{key}:creates"])
    body = request.get_json()
    post_id = uuid.uuid4()
    due = datetime.now(UTC) + timedelta(minutes=5)
    dispatch_token = str(uuid.uuid4())
    row = (post_id, 1, body["content"], due, body["account_ids"][0], due, dispatch_token)
    [target_id] = _connection().execute(INSERT_WITH_TARGET, row).fetchone() or (None,)
    message = {"target": target_id, "token": dispatch_token, "eta": due.isoformat()}
    _redis.lpush(QUEUE, json.dumps(message))
    return noop_web.created(post_id, body)
