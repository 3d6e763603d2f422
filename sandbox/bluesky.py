"""Bluesky (AT Protocol) stand-in: a PDS's XRPC methods, the video service, sessions.

One host serves everything under `/bluesky/xrpc/...`: the PDS (sessions, blobs, records),
the identity resolver and the video service. Sessions come from createSession with a
handle and a password; a password shaped like an app password (`xxxx-xxxx-xxxx-xxxx`)
gives a session scoped `com.atproto.appPass`, any other one `com.atproto.access` (a main
password), as a real PDS marks them. Access JWTs live two hours, refresh JWTs rotate on
use. createSession is limited to 30 per 5 minutes per handle, writes to 5,000 points an
hour per account (a create costs 3), with the `RateLimit-*` headers. A record key
(`rkey`) can be created once: a second create with it is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from typing import Any

from flask import Response, request

from sandbox.core import (
    FaultStyle,
    Route,
    bearer_token,
    inject_faults,
    json_response,
    should_lose_response,
    sniffed_media_kind,
    state,
)
from sandbox.rules import PLATFORMS, count_graphemes

PLATFORM = "bluesky"
RULES = PLATFORMS["bluesky"]
TEXT_BYTES_LIMIT = 3000
ACCESS_SECONDS = 2 * 60 * 60
BLOB_MAX_BYTES = 5 * 1024 * 1024  # a PDS's default upload cap
WRITE_POINTS_PER_HOUR = 5000
CREATE_POINTS = 3
SESSION_LIMIT = (30, 5 * 60)  # createSession per handle
POST_COLLECTION = "app.bsky.feed.post"
APP_PASSWORD_RE = re.compile(r"^[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}$")
_B32 = "abcdefghijklmnopqrstuvwxyz234567"
# Record keys (TIDs) use the sortable base32 alphabet: newer keys sort after older ones.
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"


def _error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    return json_response({"error": error, "message": message}, status, headers)


def _limit_headers(limit: int, remaining: int, reset: float, window: int) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(max(0, remaining)),
        "RateLimit-Reset": str(int(reset)),
        "RateLimit-Policy": f"{limit};w={window}",
    }


def _rate_limited(retry_after: int) -> Response:
    headers = _limit_headers(WRITE_POINTS_PER_HOUR, 0, time.time() + retry_after, 3600)
    return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)


STYLE = FaultStyle(
    rate_limited=_rate_limited,
    error=lambda status: _error(status, "InternalServerError", "Internal Server Error"),
    auth_expired=lambda: _error(400, "ExpiredToken", "Token has expired"),
    auth_revoked=lambda: _error(400, "ExpiredToken", "Token has been revoked"),
)


def store() -> dict[str, Any]:
    data = state.store(PLATFORM)
    for key in ("sessions", "refresh", "blobs", "records", "jobs", "service_tokens"):
        data.setdefault(key, {})
    return data


def did_for(handle: str) -> str:
    digest = hashlib.sha256(f"bsky:{handle}".encode()).digest()
    return "did:plc:" + "".join(_B32[b % 32] for b in digest[:24])


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _jwt(payload: dict[str, Any]) -> str:
    header = {"typ": "at+jwt", "alg": "ES256K"}
    return f"{_b64(header)}.{_b64(payload)}.{secrets.token_urlsafe(32)}"


def pds_url() -> str:
    """The PDS's address as this sandbox is reached (its DID document names it)."""
    return request.host_url.rstrip("/") + "/" + PLATFORM


def _new_session(handle: str, scope: str, password: str) -> dict[str, Any]:
    """A session, remembering the password it came from (insights faults name it)."""
    did = did_for(handle)
    now = int(time.time())
    access = _jwt({"scope": scope, "sub": did, "iat": now, "exp": now + ACCESS_SECONDS})
    refresh = _jwt({"scope": "com.atproto.refresh", "sub": did, "jti": secrets.token_hex(8)})
    known = {"did": did, "handle": handle, "password": password}
    with state.lock:
        store()["sessions"][access] = {**known, "exp": now + ACCESS_SECONDS}
        store()["refresh"][refresh] = {**known, "scope": scope, "used": False}
    did_doc = {
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "alsoKnownAs": [f"at://{handle}"],
        "service": [
            {
                "id": "#atproto_pds",
                "type": "AtprotoPersonalDataServer",
                "serviceEndpoint": pds_url(),
            }
        ],
    }
    return {
        "accessJwt": access,
        "refreshJwt": refresh,
        "handle": handle,
        "did": did,
        "didDoc": did_doc,
        "active": True,
    }


def session_of(publishing: bool) -> tuple[dict[str, Any] | None, Response | None]:
    """The access session of the request's bearer token, or the error to answer."""
    token = bearer_token()
    if token is None:
        return None, _error(401, "AuthMissing", "Authentication Required")
    fault = inject_faults(state, PLATFORM, STYLE, token, publishing)
    if fault is not None:
        return None, fault
    with state.lock:
        found = store()["sessions"].get(token)
    if found is None:
        return None, _error(400, "InvalidToken", "Malformed token")
    if found["exp"] < time.time():
        return None, _error(400, "ExpiredToken", "Token has expired")
    return found, None


# -- sessions ----------------------------------------------------------------------------


def create_session() -> Response:
    body = request.get_json(silent=True) or {}
    identifier = str(body.get("identifier") or "").strip().lstrip("@").lower()
    password = str(body.get("password") or "")
    fault = inject_faults(state, PLATFORM, STYLE, password or None, publishing=False)
    if fault is not None:
        # A revoked app password is a refused sign-in, not a token error.
        if password in state.faults_for(PLATFORM).revoked_tokens:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        return fault
    if not identifier or not password:
        return _error(400, "InvalidRequest", "Input must have the properties identifier, password")
    if identifier.startswith("did:"):
        with state.lock:
            known = [s["handle"] for s in store()["refresh"].values() if s["did"] == identifier]
        if not known:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        identifier = known[0]
    limit, window = SESSION_LIMIT
    now = time.time()
    with state.lock:
        history = store().setdefault("session_calls", {})
        calls = [t for t in history.get(identifier, []) if t > now - window]
        if len(calls) >= limit:
            headers = _limit_headers(limit, 0, calls[0] + window, window)
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        calls.append(now)
        history[identifier] = calls
        headers = _limit_headers(limit, limit - len(calls), calls[0] + window, window)
    scope = "com.atproto.appPass" if APP_PASSWORD_RE.match(password) else "com.atproto.access"
    return json_response(_new_session(identifier, scope, password), 200, headers)


def refresh_session() -> Response:
    token = bearer_token() or ""
    fault = inject_faults(state, PLATFORM, STYLE, token, publishing=False)
    if fault is not None:
        return fault
    with state.lock:
        found = store()["refresh"].get(token)
        if found is None:
            return _error(400, "InvalidToken", "Malformed token")
        if found["used"]:
            return _error(400, "ExpiredToken", "Token has been revoked")
        found["used"] = True
    session = _new_session(found["handle"], found["scope"], found["password"])
    return json_response({k: v for k, v in session.items()})


def get_session() -> Response:
    found, failure = session_of(publishing=False)
    if failure is not None or found is None:
        return failure or _error(400, "InvalidToken", "Malformed token")
    return json_response({"handle": found["handle"], "did": found["did"], "active": True})


def delete_session() -> Response:
    token = bearer_token() or ""
    with state.lock:
        found = store()["refresh"].get(token)
        if found is None:
            return _error(400, "InvalidToken", "Malformed token")
        found["used"] = True
    return Response(status=200)


def resolve_handle() -> Response:
    handle = request.args.get("handle", "").lower()
    if not re.match(r"^([a-z0-9-]+\.)+[a-z][a-z0-9-]*$", handle) or handle.endswith(".invalid"):
        return _error(400, "InvalidRequest", "Unable to resolve handle")
    return json_response({"did": did_for(handle)})


# -- blobs and video -----------------------------------------------------------------------


def _cid(data: bytes) -> str:
    return "bafkrei" + base64.b32encode(hashlib.sha256(data).digest()).decode().lower()[:52]


def _new_blob(did: str, data: bytes, mime: str) -> dict[str, Any]:
    ref = _cid(data)
    blob = {"$type": "blob", "ref": {"$link": ref}, "mimeType": mime, "size": len(data)}
    kind = sniffed_media_kind(data) or mime.split("/")[0]
    with state.lock:
        store()["blobs"][ref] = {"did": did, "kind": kind, **blob}
    return blob


def upload_blob() -> Response:
    found, failure = session_of(publishing=True)
    if failure is not None or found is None:
        return failure or _error(400, "InvalidToken", "Malformed token")
    data = request.get_data()
    mime = request.content_type or "application/octet-stream"
    if len(data) > BLOB_MAX_BYTES:
        return _error(413, "PayloadTooLarge", "request entity too large")
    if not data:
        return _error(400, "InvalidRequest", "Request body is empty")
    blob = _new_blob(found["did"], data, mime)
    state.note_upload(PLATFORM, sniffed_media_kind(data) or "blob", blob["ref"]["$link"])
    return json_response({"blob": blob})


def get_service_auth() -> Response:
    found, failure = session_of(publishing=False)
    if failure is not None or found is None:
        return failure or _error(400, "InvalidToken", "Malformed token")
    aud = request.args.get("aud", "")
    if not aud.startswith("did:"):
        return _error(400, "InvalidRequest", "aud must be a DID")
    token = _jwt({"iss": found["did"], "aud": aud, "lxm": request.args.get("lxm")})
    with state.lock:
        store()["service_tokens"][token] = found["did"]
    return json_response({"token": token})


def upload_video() -> Response:
    token = bearer_token() or ""
    fault = inject_faults(state, PLATFORM, STYLE, token, publishing=True)
    if fault is not None:
        return fault
    with state.lock:
        did = store()["service_tokens"].get(token)
    if did is None or did != request.args.get("did"):
        return _error(401, "AuthenticationRequired", "Invalid service auth token")
    data = request.get_data()
    if sniffed_media_kind(data) != "video" or request.content_type != "video/mp4":
        return _error(400, "InvalidRequest", "Video must be an mp4")
    blob = _new_blob(did, data, "video/mp4")
    job_id = secrets.token_hex(12)
    ready_at = time.time() + state.faults_for(PLATFORM).processing_seconds
    with state.lock:
        store()["jobs"][job_id] = {"did": did, "blob": blob, "ready_at": ready_at}
    state.note_upload(PLATFORM, "video", job_id)
    return json_response(_job_status(job_id))


def _job_status(job_id: str) -> dict[str, Any]:
    with state.lock:
        job = store()["jobs"][job_id]
    done = time.time() >= job["ready_at"]
    status: dict[str, Any] = {
        "jobId": job_id,
        "did": job["did"],
        "state": "JOB_STATE_COMPLETED" if done else "JOB_STATE_ENCODING",
        "progress": 100 if done else 50,
    }
    if done:
        status["blob"] = job["blob"]
    return {"jobStatus": status}


def get_job_status() -> Response:
    job_id = request.args.get("jobId", "")
    with state.lock:
        known = job_id in store()["jobs"]
    if not known:
        return _error(400, "InvalidRequest", "Job not found")
    return json_response(_job_status(job_id))


# -- records -----------------------------------------------------------------------------


def _record_problem(record: Any, did: str) -> str | None:
    """Why the PDS's lexicon validation would refuse this post record, or None."""
    if not isinstance(record, dict) or record.get("$type") != POST_COLLECTION:
        return "Record/$type must be app.bsky.feed.post"
    text = record.get("text", "")
    if not isinstance(text, str) or not record.get("createdAt"):
        return "Record must have the properties text, createdAt"
    if count_graphemes(text) > RULES.text_limit or len(text.encode()) > TEXT_BYTES_LIMIT:
        return f"Record/text must not be longer than {RULES.text_limit} graphemes"
    size = len(text.encode())
    for facet in record.get("facets") or []:
        index = facet.get("index") or {}
        start, end = index.get("byteStart"), index.get("byteEnd")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= size):
            return "Record/facets: byte range outside the text"
    embed = record.get("embed")
    if embed is None:
        return None if text else "Record/text must not be empty without an embed"
    kind = embed.get("$type")
    if kind == "app.bsky.embed.images":
        images = embed.get("images") or []
        if not 1 <= len(images) <= RULES.media.max_images:
            return f"Record/embed/images must have 1 to {RULES.media.max_images} items"
        for image in images:
            blob = _owned_blob(image.get("image"), did)
            if blob is None or blob["kind"] != "image":
                return "Record/embed/images: image blob not found"
            if blob["size"] > RULES.media.image_max_bytes:
                return f"Record/embed/images/image: blob larger than {RULES.media.image_max_bytes}"
            if not isinstance(image.get("alt"), str):
                return "Record/embed/images: alt is required"
    elif kind == "app.bsky.embed.video":
        blob = _owned_blob(embed.get("video"), did)
        if blob is None or blob["kind"] != "video":
            return "Record/embed/video: video blob not found"
    elif kind == "app.bsky.embed.external":
        external = embed.get("external") or {}
        if not str(external.get("uri", "")).startswith(("http://", "https://")):
            return "Record/embed/external: uri must be a URL"
    else:
        return f"Record/embed: unsupported $type {kind!r}"
    return None


def _owned_blob(ref: Any, did: str) -> dict[str, Any] | None:
    link = ((ref or {}).get("ref") or {}).get("$link") if isinstance(ref, dict) else None
    with state.lock:
        blob = store()["blobs"].get(link or "")
    return blob if blob is not None and blob["did"] == did else None


def _ledger_media(embed: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not embed:
        return []
    if embed.get("$type") == "app.bsky.embed.images":
        return [
            {"kind": "image", "cid": i["image"]["ref"]["$link"], "alt": i.get("alt", "")}
            for i in embed["images"]
        ]
    if embed.get("$type") == "app.bsky.embed.video":
        return [{"kind": "video", "cid": embed["video"]["ref"]["$link"]}]
    return []


def _reply_parent(reply: Any) -> tuple[str | None, str | None]:
    """(the uri a reply answers, None) or (None, why it is refused); (None, None) for a
    post. Both refs are {uri, cid}; the parent must be a live record with that cid."""
    if reply is None:
        return None, None
    refs = [reply.get(k) for k in ("root", "parent")] if isinstance(reply, dict) else []
    if len(refs) != 2 or not all(
        isinstance(r, dict) and isinstance(r.get("uri"), str) and isinstance(r.get("cid"), str)
        for r in refs
    ):
        return None, "Record/reply must have root and parent strong refs {uri, cid}"
    parent = refs[1]
    repo, _, rkey = parent["uri"].removeprefix("at://").partition(f"/{POST_COLLECTION}/")
    found = _live_record(repo, rkey) if repo.startswith("did:") and rkey else None
    if found is None or found["cid"] != parent["cid"]:
        return None, "Record/reply/parent: could not locate record"
    return parent["uri"], None


def create_record() -> Response:
    found, failure = session_of(publishing=True)
    if failure is not None or found is None:
        return failure or _error(400, "InvalidToken", "Malformed token")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "InvalidRequest", "Request body must be a JSON object")
    did = found["did"]
    if body.get("repo") not in (did, found["handle"]):
        return _error(401, "AuthenticationRequired", "Not authorized to write to this repo")
    if body.get("collection") != POST_COLLECTION:
        return _error(400, "InvalidRequest", "This sandbox stores app.bsky.feed.post only")
    record = body.get("record")
    problem = _record_problem(record, did)
    if problem:
        return _error(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: {problem}")
    reply_to, problem = _reply_parent(record.get("reply"))
    if problem:
        return _error(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: {problem}")
    rkey = str(body.get("rkey") or _tid())
    uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
    now = time.time()
    with state.lock:
        if uri in store()["records"]:
            return _error(400, "InvalidRequest", f"Record already exists: {uri}")
        history = store().setdefault("writes", {})
        writes = [t for t in history.get(did, []) if t > now - 3600]
        if (len(writes) + 1) * CREATE_POINTS > WRITE_POINTS_PER_HOUR:
            headers = _limit_headers(WRITE_POINTS_PER_HOUR, 0, writes[0] + 3600, 3600)
            return _error(429, "RateLimitExceeded", "Rate Limit Exceeded", headers)
        writes.append(now)
        history[did] = writes
        cid = _cid(json.dumps(record, sort_keys=True).encode())
        store()["records"][uri] = {"uri": uri, "cid": cid, "value": record, "did": did}
        params = {k: v for k, v in record.items() if k not in ("text", "$type")}
        params.update(uri=uri, cid=cid, rkey=rkey, handle=found["handle"])
        media = _ledger_media(record.get("embed"))
        state.record(PLATFORM, did, uri, record["text"], media, params, reply_to)
        remaining = WRITE_POINTS_PER_HOUR - len(writes) * CREATE_POINTS
        headers = _limit_headers(WRITE_POINTS_PER_HOUR, remaining, writes[0] + 3600, 3600)
    if should_lose_response(state, PLATFORM):
        return _error(502, "UpstreamFailure", "Bad Gateway")
    body = {"uri": uri, "cid": cid, "commit": {"cid": _cid(uri.encode()), "rev": _tid()}}
    return json_response({**body, "validationStatus": "valid"}, 200, headers)


def _tid() -> str:
    micros = int(time.time() * 1_000_000) << 10 | (state.next_id() % 1024)
    return "".join(_TID_ALPHABET[(micros >> shift) & 31] for shift in range(60, -1, -5))


def _live_record(repo: str, rkey: str) -> dict[str, Any] | None:
    did = repo if repo.startswith("did:") else did_for(repo.lower())
    uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
    with state.lock:
        record = store()["records"].get(uri)
        live = {e["id"] for e in state.posts_of(PLATFORM, did)}
    return record if record is not None and uri in live else None


def get_record() -> Response:
    args = request.args
    if args.get("collection") != POST_COLLECTION:
        return _error(400, "InvalidRequest", "This sandbox stores app.bsky.feed.post only")
    record = _live_record(args.get("repo", ""), args.get("rkey", ""))
    if record is None:
        return _error(400, "RecordNotFound", "Could not locate record")
    return json_response({k: record[k] for k in ("uri", "cid", "value")})


def list_records() -> Response:
    args = request.args
    repo = args.get("repo", "")
    did = repo if repo.startswith("did:") else did_for(repo.lower())
    try:
        limit = int(args.get("limit", 50))
    except ValueError:
        return _error(400, "InvalidRequest", "limit must be an integer")
    if not 1 <= limit <= 100:
        return _error(400, "InvalidRequest", "limit must be between 1 and 100")
    with state.lock:
        live = [store()["records"][e["id"]] for e in state.posts_of(PLATFORM, did)]
    live.sort(key=lambda r: r["uri"].rsplit("/", 1)[1], reverse=True)  # newest rkey first
    cursor = args.get("cursor")
    if cursor:
        live = [r for r in live if r["uri"].rsplit("/", 1)[1] < cursor]
    page = live[:limit]
    body: dict[str, Any] = {"records": [{k: r[k] for k in ("uri", "cid", "value")} for r in page]}
    if len(live) > limit:
        body["cursor"] = page[-1]["uri"].rsplit("/", 1)[1]
    return json_response(body)


def delete_record() -> Response:
    found, failure = session_of(publishing=False)
    if failure is not None or found is None:
        return failure or _error(400, "InvalidToken", "Malformed token")
    body = request.get_json(silent=True) or {}
    if body.get("repo") not in (found["did"], found["handle"]):
        return _error(401, "AuthenticationRequired", "Not authorized to write to this repo")
    uri = f"at://{found['did']}/{body.get('collection')}/{body.get('rkey')}"
    state.delete(PLATFORM, uri, found["did"])  # deleting what is gone succeeds too
    return json_response({"commit": {"cid": _cid(uri.encode()), "rev": _tid()}})


# The platform's paths, served under /<platform>.
ROUTES = (
    Route("POST", "/xrpc/com.atproto.server.createSession", create_session),
    Route("POST", "/xrpc/com.atproto.server.refreshSession", refresh_session),
    Route("GET", "/xrpc/com.atproto.server.getSession", get_session),
    Route("POST", "/xrpc/com.atproto.server.deleteSession", delete_session),
    Route("GET", "/xrpc/com.atproto.server.getServiceAuth", get_service_auth),
    Route("GET", "/xrpc/com.atproto.identity.resolveHandle", resolve_handle),
    Route("POST", "/xrpc/com.atproto.repo.uploadBlob", upload_blob),
    Route("POST", "/xrpc/com.atproto.repo.createRecord", create_record),
    Route("GET", "/xrpc/com.atproto.repo.getRecord", get_record),
    Route("GET", "/xrpc/com.atproto.repo.listRecords", list_records),
    Route("POST", "/xrpc/com.atproto.repo.deleteRecord", delete_record),
    Route("POST", "/xrpc/app.bsky.video.uploadVideo", upload_video),
    Route("GET", "/xrpc/app.bsky.video.getJobStatus", get_job_status),
)
BLUEPRINT_NAME = "sandbox_bluesky"
