"""The HTTP ceiling for intake: a Flask app that parses the JSON body of `POST /posts` and
answers 201 with an envelope, touching neither PostgreSQL nor Redis.

Served by the Procfile's `web` line (gunicorn, same workers and threads) in place of
`app.wsgi:app`, it measures what the framework, the server and the clients alone cost on
this machine: no create can be faster than this.
"""

from __future__ import annotations

import uuid

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/health")
def health() -> Response:
    return jsonify({"status": "ok"})


@app.post("/posts")
def create_post() -> tuple[Response, int]:
    body = request.get_json()
    post = {"post_id": str(uuid.uuid4()), "accounts_count": len(body["account_ids"])}
    return jsonify({"success": True, "data": post, "error": None}), 201
