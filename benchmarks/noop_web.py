"""The HTTP ceiling for intake: a Flask app that parses the JSON body of `POST /posts` and
answers 201 with an envelope, touching neither PostgreSQL nor Redis.

Served by the Procfile's `web` line (gunicorn, same workers and threads) in place of
`app.wsgi:app`, it measures what the framework, the server and the clients alone cost on
this machine: no create can be faster than this.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


def created(post_id: uuid.UUID, body: dict[str, Any]) -> tuple[Response, int]:
    """The 201 envelope a create answers with (benchmarks.floor_web answers with it too)."""
    post = {"post_id": str(post_id), "accounts_count": len(body["account_ids"])}
    return jsonify({"success": True, "data": post, "error": None}), 201


@app.post("/posts")
def create_post() -> tuple[Response, int]:
    return created(uuid.uuid4(), request.get_json())
