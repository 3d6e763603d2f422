"""What any create can reach under the Procfile's `web` line: a Flask app whose
`POST /posts` does only the bare writes of the intake floor (one INSERT into a table like
`posts`, autocommitted, and one LPUSH) and answers 201 with an envelope.

Between the no-op app (benchmarks.noop_web) and Crier: no key, no validation, no
account check, no message framing. Served with FLOOR_DATABASE_URL (a plain libpq URL),
REDIS_URL and FLOOR_TABLE set; the benchmark creates and drops the table.
"""

from __future__ import annotations

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
INSERT = (
    f"INSERT INTO {os.environ.get('FLOOR_TABLE', 'bench_floor_posts')} (id, organisation_id, "
    "content, scheduled_at, publish_now, timezone, platform_content, media_ids, status, "
    "created_at, updated_at) "
    "VALUES (%s, %s, %s, %s, false, 'UTC', '{}', '[]', 'scheduled', now(), now())"
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
