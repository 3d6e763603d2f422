"""The platforms' insights calls, in each platform's own shapes, served beside its
publishing routes (figures from sandbox/insights.py). YouTube's statistics ride on its
videos.list and channels.list (sandbox/youtube.py); X's followers on GET /2/users/me
(sandbox/x.py); Graph user and Page fields on GET /{id} (sandbox/_containers.py,
sandbox/facebook.py), through `insights.graph_account_fields`; Pinterest's and
Mastodon's audience on their account reads and Mastodon's counts on a status read
(sandbox/pinterest.py, sandbox/mastodon.py); WordPress's comment count on its comments
listing (sandbox/wordpress.py). Telegram and Discord have none.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial
from typing import Any
from urllib.parse import unquote

from flask import Response, request

from sandbox import (
    bluesky,
    facebook,
    instagram,
    linkedin,
    mastodon,
    oauth,
    pinterest,
    threads,
    tiktok,
    x,
)
from sandbox.core import FaultStyle, Route, bearer_token, json_response, state
from sandbox.graph import (
    GraphGuard,
    access_token,
    graph_error,
    object_not_found,
    resolve_user,
)
from sandbox.insights import graph_insights, metrics_fault, posts_of, read_followers, read_post

GRAPH_FORBIDDEN = "(#10) Application does not have permission for this action"


def _split(total: int, parts: int) -> list[int]:
    """`total` in `parts` whole shares that add up to it (the first takes the rest)."""
    share = total // parts
    return [total - share * (parts - 1)] + [share] * (parts - 1)


def _graph_forbidden() -> Response:
    return graph_error(GRAPH_FORBIDDEN, 10, status=403)


def _graph_check(guard: GraphGuard, style: FaultStyle, version: str) -> Response | None:
    token, failure = guard.check(version, publishing=False)
    return failure or metrics_fault(state, guard.platform, style, token, _graph_forbidden)


# -- X ------------------------------------------------------------------------------------


def _x_forbidden() -> Response:
    return x._problem(403, "You are not permitted to perform this action.", title="Forbidden")


def x_tweets() -> Response:
    """GET /2/tweets?ids=…&tweet.fields=public_metrics (up to 100 ids)."""
    token, failure = x.authorize(publishing=False)
    failure = failure or metrics_fault(state, "x", x.STYLE, token, _x_forbidden)
    if failure is not None:
        return failure
    ids = [i for i in request.args.get("ids", "").split(",") if i]
    if not 1 <= len(ids) <= 100:
        return x._invalid("The `ids` query parameter value must have between 1 and 100 ids")
    data: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for tweet_id in ids:
        values = read_post(state, "x", tweet_id)
        if values is None:
            errors.append(
                {
                    "value": tweet_id,
                    "detail": f"Could not find tweet with ids: [{tweet_id}].",
                    "title": "Not Found Error",
                    "resource_type": "tweet",
                    "parameter": "ids",
                    "resource_id": tweet_id,
                    "type": "https://api.twitter.com/2/problems/resource-not-found",
                }
            )
            continue
        retweets, quotes = _split(values["shares"], 2)
        metrics = {
            "retweet_count": retweets,
            "reply_count": values["comments"],
            "like_count": values["likes"],
            "quote_count": quotes,
            "bookmark_count": values["saves"],
            "impression_count": values["impressions"],
        }
        data.append({"id": tweet_id, "public_metrics": metrics})
    body: dict[str, Any] = {"data": data} if data else {}
    if errors:
        body["errors"] = errors
    return json_response(body)


# -- TikTok -------------------------------------------------------------------------------


def _tiktok_forbidden() -> Response:
    return tiktok._error(
        "scope_not_authorized",
        "The user did not authorize the scope required for completing this request.",
        401,
    )


def tiktok_video_query() -> Response:
    """POST /v2/video/query/ {"filters": {"video_ids": [...]}} (up to 20)."""
    token, failure = tiktok.authorize(publishing=False)
    failure = failure or metrics_fault(state, "tiktok", tiktok.STYLE, token, _tiktok_forbidden)
    if failure is not None:
        return failure
    body = request.get_json(silent=True)
    filters = body.get("filters") if isinstance(body, dict) else None
    ids = filters.get("video_ids") if isinstance(filters, dict) else None
    if not isinstance(ids, list) or not 1 <= len(ids) <= 20:
        return tiktok._error("invalid_params", "filters.video_ids must hold 1 to 20 ids", 400)
    videos = []
    for video_id in ids:
        values = read_post(state, "tiktok", str(video_id))
        if values is None:
            continue
        videos.append(
            {
                "id": str(video_id),
                "view_count": values["views"],
                "like_count": values["likes"],
                "comment_count": values["comments"],
                "share_count": values["shares"],
            }
        )
    return tiktok._ok({"videos": videos, "cursor": 0, "has_more": False})


TIKTOK_STATS = ("follower_count", "following_count", "likes_count", "video_count")


def tiktok_user_info() -> Response:
    """GET /v2/user/info/?fields=…: the identity a connect flow reads (for a token the
    consent side issued, as sandbox/oauth.py answers it) and, when asked, the stats."""
    fields = request.args.get("fields", "")
    issued = oauth.owner(state, bearer_token())
    if issued is not None:
        login = issued["login"]
        open_id = oauth.identity("tiktok", login)["open_id"]
        user: dict[str, Any] = {
            "open_id": open_id,
            "display_name": login.title(),
            "username": login,
        }
        token: str | None = bearer_token()
    else:
        token, failure = tiktok.authorize(publishing=False)
        if failure is not None or token is None:
            return failure or _tiktok_forbidden()
        open_id = tiktok.open_id_of(token)
        user = {"open_id": open_id}
    if any(name in fields for name in TIKTOK_STATS):
        failure = metrics_fault(state, "tiktok", tiktok.STYLE, token, _tiktok_forbidden)
        if failure is not None:
            return failure
        videos = posts_of("tiktok", open_id)
        user.update(
            follower_count=read_followers(state, "tiktok", open_id),
            following_count=42,
            likes_count=10 * videos,
            video_count=videos,
        )
    return tiktok._ok({"user": user})


# -- LinkedIn -----------------------------------------------------------------------------


def _linkedin_forbidden() -> Response:
    return linkedin._error(
        403,
        "Not enough permissions to access: socialActions.BATCH_GET.20240101",
        "ACCESS_DENIED",
        serviceErrorCode=100,
    )


def _linkedin_check() -> Response | None:
    failure = linkedin.check_request(publishing=False)
    return failure or metrics_fault(
        state, "linkedin", linkedin.STYLE, bearer_token(), _linkedin_forbidden
    )


def linkedin_social_actions() -> Response:
    """GET /rest/socialActions?ids=List(urn1,urn2) (URNs URL-encoded inside the list)."""
    failure = _linkedin_check()
    if failure is not None:
        return failure
    raw = request.args.get("ids", "")
    if not (raw.startswith("List(") and raw.endswith(")")):
        return linkedin._input_error("INVALID_VALUE", "ids", "ids must be List(urn,...)")
    urns = [unquote(part) for part in raw[5:-1].split(",") if part]
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    for urn in urns:
        values = read_post(state, "linkedin", urn)
        if values is None:
            errors[urn] = {"status": 404, "message": f"Not found: {urn}"}
            continue
        results[urn] = {
            "target": urn,
            "likesSummary": {
                "totalLikes": values["likes"],
                "aggregatedTotalLikes": values["likes"],
            },
            "commentsSummary": {
                "aggregatedTotalComments": values["comments"],
                "totalFirstLevelComments": values["comments"],
            },
        }
    statuses = {urn: 200 if urn in results else 404 for urn in urns}
    return json_response({"results": results, "statuses": statuses, "errors": errors})


def linkedin_network_size(urn: str) -> Response:
    """GET /rest/networkSizes/{organization urn}?edgeType=COMPANY_FOLLOWED_BY_MEMBER."""
    failure = _linkedin_check()
    if failure is not None:
        return failure
    return json_response({"firstDegreeSize": read_followers(state, "linkedin", unquote(urn))})


# -- Meta's Graph: Facebook, Instagram, Threads -------------------------------------------


def facebook_posts(version: str) -> Response:
    """GET /{version}/?ids=…&fields=shares,comments.summary(true),reactions.summary(true),
    insights.metric(post_impressions,post_clicks): every post asked that exists."""
    failure = _graph_check(facebook.GUARD, facebook.STYLE, version)
    if failure is not None:
        return failure
    ids = [i for i in request.args.get("ids", "").split(",") if i]
    if not 1 <= len(ids) <= 50:
        return graph_error("(#100) ids must name 1 to 50 objects", 100)
    answer: dict[str, Any] = {}
    for post_id in ids:
        values = read_post(state, "facebook", post_id)
        if values is None:
            continue
        item: dict[str, Any] = {
            "id": post_id,
            "comments": {"data": [], "summary": {"total_count": values["comments"]}},
            "reactions": {"data": [], "summary": {"total_count": values["likes"]}},
            "insights": graph_insights(
                {"post_impressions": values["impressions"], "post_clicks": values["clicks"]},
                ["post_impressions", "post_clicks"],
                post_id,
            ),
        }
        if values["shares"]:  # Graph leaves `shares` out of a post nobody shared
            item["shares"] = {"count": values["shares"]}
        answer[post_id] = item
    return json_response(answer)


def instagram_media_insights(guard: GraphGuard, version: str, object_id: str) -> Response:
    failure = _graph_check(guard, instagram.STYLE, version)
    if failure is not None:
        return failure
    values = read_post(state, "instagram", object_id)
    if values is None:
        return object_not_found(object_id)
    named = {
        "views": values["views"],
        "reach": values["impressions"] * 3 // 4,
        "likes": values["likes"],
        "comments": values["comments"],
        "shares": values["shares"],
        "saved": values["saves"],
        "total_interactions": values["likes"]
        + values["comments"]
        + values["shares"]
        + values["saves"],
    }
    asked = [m for m in request.args.get("metric", "").split(",") if m]
    unknown = [m for m in asked if m not in named]
    if not asked or unknown:
        return graph_error(f"(#100) metric[0] must be one of: {', '.join(named)}", 100)
    return json_response(graph_insights(named, asked, object_id))


def threads_media_insights(version: str, object_id: str) -> Response:
    failure = _graph_check(THREADS_GUARD, threads.STYLE, version)
    if failure is not None:
        return failure
    values = read_post(state, "threads", object_id)
    if values is None:
        return object_not_found(object_id)
    reposts, quotes, shares = _split(values["shares"], 3)
    named = {
        "views": values["views"],
        "likes": values["likes"],
        "replies": values["comments"],
        "reposts": reposts,
        "quotes": quotes,
        "shares": shares,
    }
    asked = [m for m in request.args.get("metric", "").split(",") if m]
    if not asked or any(m not in named for m in asked):
        return graph_error(f"(#100) metric must be among: {', '.join(named)}", 100)
    return json_response(graph_insights(named, asked, object_id))


def threads_user_insights(version: str, user_id: str) -> Response:
    failure = _graph_check(THREADS_GUARD, threads.STYLE, version)
    if failure is not None:
        return failure
    if request.args.get("metric") != "followers_count":
        return graph_error("(#100) the sandbox serves metric=followers_count", 100)
    account = threads_account(user_id)
    entry = {
        "name": "followers_count",
        "period": "day",
        "title": "followers_count",
        "total_value": {"value": read_followers(state, "threads", account)},
        "id": f"{account}/insights/followers_count/day",
    }
    return json_response({"data": [entry]})


def threads_account(user_id: str) -> str:
    return resolve_user(user_id, access_token())


THREADS_GUARD = GraphGuard(state, "threads", threads.STYLE)


# -- Pinterest ----------------------------------------------------------------------------

PINTEREST_RANGE_DAYS = 90


def _pinterest_forbidden() -> Response:
    return pinterest._error(
        401,
        3,
        "Your token does not have sufficient permissions to perform this operation. Please "
        "ensure your token is authorized with the correct set of scopes.",
    )


def _pinterest_range() -> str | None:
    """Why the dates are refused, or None. The range is at most 90 days; that the start is
    at most 90 days back is not checked, as the sandbox's clock is moved at will."""
    try:
        start = date.fromisoformat(request.args.get("start_date", ""))
        end = date.fromisoformat(request.args.get("end_date", ""))
    except ValueError:
        return "start_date and end_date are required, as YYYY-MM-DD"
    if end < start or end - start > timedelta(days=PINTEREST_RANGE_DAYS):
        return f"end_date must be within {PINTEREST_RANGE_DAYS} days after start_date"
    return None


def pinterest_pin_analytics(pin_id: str) -> Response:
    """GET /v5/pins/{pin_id}/analytics?start_date&end_date&metric_types=…: the summary of
    the metrics asked (VIDEO_MRC_VIEW for a video Pin only); no daily breakdown."""
    token, failure = pinterest.authorize(publishing=False)
    failure = failure or metrics_fault(
        state, "pinterest", pinterest.STYLE, token, _pinterest_forbidden
    )
    if failure is not None:
        return failure
    problem = _pinterest_range()
    asked = [m for m in request.args.get("metric_types", "").split(",") if m]
    if problem or not asked:
        return pinterest._error(400, 1, problem or "metric_types is required")
    values = read_post(state, "pinterest", pin_id)
    if values is None:
        return pinterest._error(404, 50, "Pin not found.")
    with state.lock:
        video = state.ledger_index[("pinterest", pin_id)]["params"].get("media_type") == "video"
    pin_clicks, outbound = _split(values["clicks"], 2)
    named = {
        "IMPRESSION": values["impressions"],
        "SAVE": values["saves"],
        "PIN_CLICK": pin_clicks,
        "OUTBOUND_CLICK": outbound,
        **({"VIDEO_MRC_VIEW": values["views"]} if video else {}),
    }
    summary = {name: named[name] for name in asked if name in named}
    return json_response({"all": {"daily_metrics": [], "summary_metrics": summary}})


# -- Bluesky ------------------------------------------------------------------------------


def _bluesky_forbidden() -> Response:
    return bluesky._error(403, "ScopeMissingError", "Missing required scope for this method")


def _bluesky_session() -> tuple[dict[str, Any] | None, Response | None]:
    """The request's session, or the answer to give; insights faults name the (app)
    password the session was made with."""
    found, failure = bluesky.session_of(publishing=False)
    if failure is not None or found is None:
        return None, failure or bluesky._error(400, "InvalidToken", "Malformed token")
    failure = metrics_fault(state, "bluesky", bluesky.STYLE, found["password"], _bluesky_forbidden)
    return (None, failure) if failure is not None else (found, None)


def bluesky_get_posts() -> Response:
    """GET /xrpc/app.bsky.feed.getPosts?uris=…&uris=… (up to 25): the posts' views, with
    their counts; posts that are gone are left out."""
    _, failure = _bluesky_session()
    if failure is not None:
        return failure
    uris = request.args.getlist("uris")
    if not 1 <= len(uris) <= 25:
        return bluesky._error(400, "InvalidRequest", "uris must have 1 to 25 items")
    posts = []
    for uri in uris:
        values = read_post(state, "bluesky", uri)
        if values is None:
            continue
        did = uri.removeprefix("at://").split("/", 1)[0]
        with state.lock:
            record = bluesky.store()["records"].get(uri) or {}
            handle = state.ledger_index[("bluesky", uri)]["params"].get("handle", did)
        reposts, quotes = _split(values["shares"], 2)
        posts.append(
            {
                "uri": uri,
                "cid": record.get("cid", ""),
                "author": {"did": did, "handle": handle},
                "record": record.get("value", {}),
                "replyCount": values["comments"],
                "repostCount": reposts,
                "likeCount": values["likes"],
                "quoteCount": quotes,
                "indexedAt": "",
            }
        )
    return json_response({"posts": posts})


def bluesky_get_profile() -> Response:
    """GET /xrpc/app.bsky.actor.getProfile?actor=<did or handle>."""
    found, failure = _bluesky_session()
    if failure is not None or found is None:
        return failure or bluesky._error(400, "InvalidToken", "Malformed token")
    actor = request.args.get("actor", "")
    did = actor if actor.startswith("did:") else bluesky.did_for(actor.lower())
    return json_response(
        {
            "did": did,
            "handle": found["handle"] if did == found["did"] else actor,
            "followersCount": read_followers(state, "bluesky", did),
            "followsCount": 80,
            "postsCount": posts_of("bluesky", did),
        }
    )


# -- Mastodon -----------------------------------------------------------------------------


def _mastodon_forbidden() -> Response:
    return mastodon._error(403, "This action is outside the authorized scopes")


def mastodon_statuses() -> Response:
    """GET /api/v1/statuses?id[]=… (Mastodon 4.3+, up to 20): the statuses found, with
    their counts; one that is gone is left out. An older instance has no such route."""
    if not mastodon.batch_reads():
        return mastodon._error(404, "Record not found")
    _, failure = mastodon.authorize(publishing=False)
    failure = failure or metrics_fault(
        state, "mastodon", mastodon.STYLE, bearer_token(), _mastodon_forbidden
    )
    if failure is not None:
        return failure
    ids = request.args.getlist("id[]")
    if len(ids) > 20:
        return mastodon._error(422, "Validation failed: too many ids")
    found = []
    for status_id in dict.fromkeys(ids):
        with state.lock:
            stored = mastodon.store()["statuses"].get(status_id)
        status = mastodon._status_json(stored) if stored else {"id": status_id}
        counted = mastodon.with_counts(status)
        if counted is not None:
            found.append(counted)
    return json_response(found)


ROUTES: dict[str, list[Route]] = {
    "x": [Route("GET", "/2/tweets", x_tweets)],
    "tiktok": [
        Route("POST", "/v2/video/query/", tiktok_video_query),
        Route("GET", "/v2/user/info/", tiktok_user_info),
    ],
    "linkedin": [
        Route("GET", "/rest/socialActions", linkedin_social_actions),
        Route("GET", "/rest/networkSizes/<path:urn>", linkedin_network_size),
    ],
    "facebook": [
        Route("GET", "/<version>/", facebook_posts),
        # Instagram media of accounts connected through Facebook Login.
        Route(
            "GET",
            "/<version>/<object_id>/insights",
            partial(instagram_media_insights, instagram.FACEBOOK_HOST_GUARD),
            "instagram_media_insights",
        ),
    ],
    "instagram": [
        Route(
            "GET",
            "/<version>/<object_id>/insights",
            partial(instagram_media_insights, instagram.GUARD),
            "media_insights",
        )
    ],
    "threads": [
        Route("GET", "/<version>/<object_id>/insights", threads_media_insights),
        Route("GET", "/<version>/<user_id>/threads_insights", threads_user_insights),
    ],
    "pinterest": [Route("GET", "/v5/pins/<pin_id>/analytics", pinterest_pin_analytics)],
    "bluesky": [
        Route("GET", "/xrpc/app.bsky.feed.getPosts", bluesky_get_posts),
        Route("GET", "/xrpc/app.bsky.actor.getProfile", bluesky_get_profile),
    ],
    "mastodon": [Route("GET", "/api/v1/statuses", mastodon_statuses)],
}
