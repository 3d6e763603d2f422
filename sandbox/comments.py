"""Comments under a post, where the platform's API has them: Instagram (POST
/{ig-media-id}/comments, also on graph.facebook.com for accounts connected through
Facebook Login), Facebook (POST /{object-id}/comments), LinkedIn (POST
/rest/socialActions/{urn}/comments) and YouTube (commentThreads.insert), each with the
listing that reads them back. Each comment is recorded in the ledger with `reply_to`, the
id it answers; faults and lost answers apply to them as to posts.

X's and Threads' replies are posts of their own, served by those platforms' modules.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any
from urllib.parse import unquote

from flask import Response, request

from sandbox.core import Route, SandboxState, json_response, should_lose_response, state
from sandbox.facebook import GUARD as FACEBOOK_GUARD
from sandbox.graph import (
    GraphGuard,
    answer_published,
    get_media,
    graph_params,
    graph_time,
    invalid_parameter,
    object_not_found,
)
from sandbox.instagram import GUARD as INSTAGRAM_GUARD
from sandbox.linkedin import check_request
from sandbox.rules import PLATFORMS
from sandbox.youtube import authorize, channel_of, google_error
from sandbox.youtube import store as youtube_store

# Comment text limits (Instagram's is its caption's).
LIMITS = {
    name: rules.comment_limit or rules.text_limit
    for name, rules in PLATFORMS.items()
    if rules.first_comment
}


def _comments(platform: str) -> dict[str, dict[str, Any]]:
    return state.store(platform).setdefault("comments", {})


def _add(
    state: SandboxState, platform: str, parent: str, account: str, text: str
) -> dict[str, Any]:
    """A comment under `parent`, stored and recorded in the ledger."""
    now = time.time()
    number = str(state.next_id())
    comment = {
        "id": f"{parent}_{number}" if platform == "facebook" else number,
        "parent": parent,
        "account": account,
        "text": text,
        "created_at": now,
    }
    with state.lock:
        _comments(platform)[comment["id"]] = comment
        state.record(platform, account, comment["id"], text, [], {}, reply_to=parent)
    return comment


def _under(platform: str, parent: str) -> list[dict[str, Any]]:
    with state.lock:
        found = [c for c in _comments(platform).values() if c["parent"] == parent]
    return sorted(found, key=lambda c: c["created_at"])


# -- Instagram and Facebook (Graph) ---------------------------------------------------------


def _graph_parent(platforms: tuple[str, ...], object_id: str) -> tuple[str, str] | None:
    """(platform, account) of a media object or Page object that can be commented on."""
    for platform in platforms:
        if platform == "instagram":
            media = get_media(state, "instagram", object_id)
            if media is not None:
                return platform, str(media["owner"])
        else:
            with state.lock:
                item = state.store("facebook").setdefault("objects", {}).get(object_id)
            if item is not None:
                return platform, str(item["page"])
    return None


def graph_comment(
    guard: GraphGuard, platforms: tuple[str, ...], version: str, object_id: str
) -> Response:
    """POST /{object-id}/comments with `message`: {"id": comment id}."""
    _, failure = guard.check(version, publishing=True)
    if failure is not None:
        return failure
    found = _graph_parent(platforms, object_id)
    if found is None:
        return object_not_found(object_id, "post")
    platform, account = found
    message = str(graph_params().get("message") or "")
    if not message.strip():
        return invalid_parameter("The parameter message is required")
    if len(message) > LIMITS[platform]:
        return invalid_parameter(f"A comment may have at most {LIMITS[platform]} characters")
    comment = _add(state, platform, object_id, account, message)
    return answer_published(state, platform, {"id": comment["id"]})


def graph_comments(
    guard: GraphGuard, platforms: tuple[str, ...], version: str, object_id: str
) -> Response:
    """GET /{object-id}/comments: id, text (Instagram) or message (Facebook), timestamp."""
    _, failure = guard.check(version, publishing=False)
    if failure is not None:
        return failure
    found = _graph_parent(platforms, object_id)
    if found is None:
        return object_not_found(object_id)
    platform, _ = found
    data = []
    for comment in _under(platform, object_id):
        item: dict[str, Any] = {"id": comment["id"]}
        if platform == "instagram":
            item.update(text=comment["text"], timestamp=graph_time(comment["created_at"]))
        else:
            item.update(message=comment["text"], created_time=graph_time(comment["created_at"]))
        data.append(item)
    return json_response({"data": data})


def _graph_routes(guard: GraphGuard, platforms: tuple[str, ...]) -> tuple[Route, ...]:
    return (
        Route(
            "POST",
            "/<version>/<object_id>/comments",
            partial(graph_comment, guard, platforms),
            "create_comment",
        ),
        Route(
            "GET",
            "/<version>/<object_id>/comments",
            partial(graph_comments, guard, platforms),
            "list_comments",
        ),
    )


# -- LinkedIn -----------------------------------------------------------------------------


def linkedin_comment(urn: str) -> Response:
    """POST /rest/socialActions/{urn}/comments {actor, object, message: {text}}."""
    failure = check_request(publishing=True)
    if failure:
        return failure
    urn = unquote(urn)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return json_response({"message": "The request body must be a JSON object"}, 400)
    entry = state.find_entry("linkedin", urn)
    if entry is None:
        return json_response({"message": f"{urn} does not exist", "status": 404}, 404)
    text = str((body.get("message") or {}).get("text") or "")
    actor = body.get("actor")
    if not text.strip() or not isinstance(actor, str) or body.get("object") not in (urn, None):
        return json_response({"message": "actor and message.text are required", "status": 422}, 422)
    if len(text) > LIMITS["linkedin"]:
        return json_response({"message": "The comment is too long", "status": 422}, 422)
    comment = _add(state, "linkedin", urn, actor, text)
    if should_lose_response(state, "linkedin"):
        return json_response({"message": "Gateway Timeout", "status": 504}, 504)
    return json_response(_linkedin_element(comment), 201)


def linkedin_comments(urn: str) -> Response:
    failure = check_request(publishing=False)
    if failure:
        return failure
    urn = unquote(urn)
    elements = [_linkedin_element(c) for c in _under("linkedin", urn)]
    return json_response({"paging": {"start": 0, "count": len(elements)}, "elements": elements})


def _linkedin_element(comment: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": comment["id"],
        "$URN": f"urn:li:comment:({comment['parent']},{comment['id']})",
        "actor": comment["account"],
        "object": comment["parent"],
        "message": {"text": comment["text"]},
        "created": {"time": int(comment["created_at"] * 1000)},
    }


# -- YouTube ------------------------------------------------------------------------------


def youtube_comment() -> Response:
    """POST /youtube/v3/commentThreads?part=snippet: a top-level comment on a video."""
    token, failure = authorize(publishing=True)
    if failure is not None:
        return failure
    body = request.get_json(silent=True) or {}
    snippet = body.get("snippet") or {}
    video_id = str(snippet.get("videoId") or "")
    text = str(
        ((snippet.get("topLevelComment") or {}).get("snippet") or {}).get("textOriginal") or ""
    )
    with state.lock:
        video = youtube_store()["videos"].get(video_id)
    if video is None:
        return google_error(404, "videoNotFound", "The video could not be found.")
    if not text.strip() or len(text) > LIMITS["youtube"]:
        return google_error(400, "commentTextRequired", "The comment text is invalid.")
    comment = _add(state, "youtube", video_id, channel_of(token or ""), text)
    if should_lose_response(state, "youtube"):
        return google_error(503, "backendError", "Backend Error")
    return json_response(_youtube_thread(comment))


def youtube_comments() -> Response:
    _, failure = authorize(publishing=False)
    if failure is not None:
        return failure
    video_id = request.args.get("videoId", "")
    items = [_youtube_thread(c) for c in reversed(_under("youtube", video_id))]
    return json_response({"kind": "youtube#commentThreadListResponse", "items": items})


def _youtube_thread(comment: dict[str, Any]) -> dict[str, Any]:
    published = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(comment["created_at"]))
    return {
        "kind": "youtube#commentThread",
        "id": comment["id"],
        "snippet": {
            "videoId": comment["parent"],
            "topLevelComment": {
                "kind": "youtube#comment",
                "id": comment["id"],
                "snippet": {
                    "videoId": comment["parent"],
                    "textOriginal": comment["text"],
                    "textDisplay": comment["text"],
                    "authorChannelId": {"value": comment["account"]},
                    "publishedAt": published,
                },
            },
        },
    }


# The comment routes of each platform, served under /<platform> beside its own.
ROUTES: dict[str, tuple[Route, ...]] = {
    "instagram": _graph_routes(INSTAGRAM_GUARD, ("instagram",)),
    # graph.facebook.com: Instagram media of accounts connected through Facebook Login
    # first, then the Page's own objects.
    "facebook": _graph_routes(FACEBOOK_GUARD, ("instagram", "facebook")),
    "linkedin": (
        Route("POST", "/rest/socialActions/<path:urn>/comments", linkedin_comment),
        Route("GET", "/rest/socialActions/<path:urn>/comments", linkedin_comments),
    ),
    "youtube": (
        Route("POST", "/youtube/v3/commentThreads", youtube_comment),
        Route("GET", "/youtube/v3/commentThreads", youtube_comments),
    ),
}
