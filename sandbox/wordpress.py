"""WordPress REST API stand-in (a self-hosted site with application passwords, and
WordPress.com blogs): the current user, categories and tags, media uploads, posts, the
site's post search, and comments under a post (recorded in the ledger with `reply_to`,
the post's id).

Every self-hosted site a test names is this one site, under `/wordpress/wp-json/wp/v2`.
Its requests authenticate with HTTP Basic `user:application-password`; any such pair
with both parts is a user of the site, an editor, except logins starting with
"subscriber" (who may not create posts). A WordPress.com blog has the same routes under
`/wordpress/wp/v2/sites/{blog_id}`, each blog with posts, media and terms of its own,
signed with the Bearer token of that blog's consent (sandbox/oauth_routes.py; another
blog's id is refused, 403); its ledger entries name the blog id as the account. Errors
are WordPress's `{"code", "message", "data": {"status"}}`. Slugs are made unique the way
WordPress does (`-2`, `-3`, ...).
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from flask import Response, g, request

from sandbox import oauth
from sandbox.core import (
    FaultStyle,
    Route,
    inject_faults,
    json_response,
    now_iso,
    should_lose_response,
    sniffed_media_kind,
    state,
)
from sandbox.insights import metrics_fault, read_post

PLATFORM = "wordpress"
BLUEPRINT_NAME = "sandbox_wordpress"
SITE = "https://blog.example.com"
REST = "/wp-json/wp/v2"
# A WordPress.com blog's wp/v2 routes (public-api.wordpress.com).
BLOG_REST = "/wp/v2/sites/<blog_id>"
STATUSES = frozenset({"publish", "draft", "pending", "private", "future"})
PER_PAGE_MAX = 100
# What the sandbox keeps of an upload that WordPress does not show.
PRIVATE = frozenset({"owner", "kind", "bytes", "sha256"})
_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response(
        {"code": code, "message": message, "data": {"status": status}}, status, headers
    )


def _rate_limited(retry_after: int) -> Response:
    # Core has no rate limit: hosts and security plugins add one, with Retry-After.
    headers = {"Retry-After": str(retry_after)}
    return _error(429, "rest_too_many_requests", "Too many requests.", headers)


def _server_error(status: int) -> Response:
    return _error(
        status, "internal_server_error", "There has been a critical error on this website."
    )


def _incorrect_password() -> Response:
    return _error(
        401, "incorrect_password", "The provided password is an invalid application password."
    )


# Application passwords do not expire; a revoked one is simply no longer valid.
STYLE = FaultStyle(
    rate_limited=_rate_limited,
    error=_server_error,
    auth_expired=_incorrect_password,
    auth_revoked=_incorrect_password,
)


def site() -> str:
    """The address of the site the request is for: the WordPress.com blog's, or SITE."""
    blog = g.get("wordpress_blog")
    return str(blog["url"]) if blog else SITE


def _account(login: str) -> str:
    """Who a ledger entry is for: the WordPress.com blog (its id), or the site's user."""
    blog = g.get("wordpress_blog")
    return str(blog["id"]) if blog else login


def store() -> dict[str, Any]:
    blog = g.get("wordpress_blog")
    with state.lock:
        data = state.store(PLATFORM if blog is None else f"{PLATFORM}:{blog['id']}")
        data.setdefault("terms", {"categories": {}, "tags": {}})
        data.setdefault("media", {})
        data.setdefault("posts", {})
        data.setdefault("comments", {})
        return data


def _credential() -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        pair = base64.b64decode(header[6:].strip()).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    login, _, password = pair.partition(":")
    return pair if login and password else None


def authorize(publishing: bool) -> tuple[str, Response | None]:
    """(login, None), or the answer to give: 401 rest_not_logged_in without credentials."""
    blog_id = (request.view_args or {}).get("blog_id")
    if blog_id is not None:
        return _authorize_blog(str(blog_id), publishing)
    credential = _credential()
    if credential is None:
        fault = inject_faults(state, PLATFORM, STYLE, None, publishing)
        return "", fault or _error(401, "rest_not_logged_in", "You are not currently logged in.")
    fault = inject_faults(state, PLATFORM, STYLE, credential, publishing)
    return credential.partition(":")[0], fault


def _authorize_blog(blog_id: str, publishing: bool) -> tuple[str, Response | None]:
    """A WordPress.com blog's route: the Bearer token of that blog's grant."""
    token = oauth.bearer()
    grant = oauth.owner(state, token)
    if grant is None or grant.get("platform") != PLATFORM or not grant.get("blog_id"):
        fault = inject_faults(state, PLATFORM, STYLE, None, publishing)
        return "", fault or _error(401, "rest_not_logged_in", "You are not currently logged in.")
    fault = inject_faults(state, PLATFORM, STYLE, token, publishing)
    if fault is not None:
        return "", fault
    if str(grant["blog_id"]) != blog_id:
        return "", _error(403, "rest_forbidden", "Sorry, you are not allowed to do that.")
    g.wordpress_blog = {"id": blog_id, "url": grant["blog_url"]}
    return str(grant["login"]), None


def user_id(login: str) -> int:
    return int(hashlib.sha256(f"wp:{login}".encode()).hexdigest()[:6], 16)


def slugify(text: str) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-") or "post"


# -- users ----------------------------------------------------------------------------------


def users_me() -> Response:
    login, fault = authorize(publishing=False)
    if fault:
        return fault
    roles = ["subscriber"] if login.startswith("subscriber") else ["editor"]
    body: dict[str, Any] = {
        "id": user_id(login),
        "name": login.title(),
        "slug": slugify(login),
        "link": f"{site()}/author/{slugify(login)}/",
    }
    if request.args.get("context") == "edit":
        body.update(username=login, roles=roles)
    return json_response(body)


# -- terms ----------------------------------------------------------------------------------


def _term_json(term: dict[str, Any], taxonomy: str) -> dict[str, Any]:
    base = "category" if taxonomy == "categories" else "tag"
    return {**term, "link": f"{site()}/{base}/{term['slug']}/", "taxonomy": base}


def list_terms(taxonomy: str) -> Response:
    _, fault = authorize(publishing=False)
    if fault:
        return fault
    search = request.args.get("search", "").lower()
    with state.lock:
        terms = list(store()["terms"][taxonomy].values())
    found = [_term_json(t, taxonomy) for t in terms if search in t["name"].lower()]
    return json_response(found[:PER_PAGE_MAX], headers={"X-WP-Total": str(len(found))})


def create_term(taxonomy: str) -> Response:
    login, fault = authorize(publishing=False)
    if fault:
        return fault
    if login.startswith("subscriber"):
        return _error(
            403,
            "rest_cannot_create",
            "Sorry, you are not allowed to create terms in this taxonomy.",
        )
    body = request.get_json(silent=True) or {}
    name = str(body.get("name") or "").strip()
    if not name:
        return _error(400, "rest_missing_callback_param", "Missing parameter(s): name")
    with state.lock:
        terms = store()["terms"][taxonomy]
        for term in terms.values():
            if term["name"].lower() == name.lower():
                return json_response(
                    {
                        "code": "term_exists",
                        "message": "A term with the name provided already exists with this parent.",
                        "data": {"status": 400, "term_id": term["id"]},
                    },
                    400,
                )
        term = {"id": state.next_id() % 10**6, "name": name, "slug": slugify(name), "count": 0}
        terms[term["id"]] = term
    return json_response(_term_json(term, taxonomy), 201)


def list_categories() -> Response:
    return list_terms("categories")


def create_category() -> Response:
    return create_term("categories")


def list_tags() -> Response:
    return list_terms("tags")


def create_tag() -> Response:
    return create_term("tags")


# -- media ----------------------------------------------------------------------------------


def upload_media() -> Response:
    login, fault = authorize(publishing=True)
    if fault:
        return fault
    upload = request.files.get("file")
    if upload is not None:
        data, filename, mime = upload.read(), upload.filename or "", upload.mimetype
    else:
        disposition = request.headers.get("Content-Disposition", "")
        match = re.search(r'filename="?([^";]+)"?', disposition)
        if not request.data:
            return _error(400, "rest_upload_no_data", "No data supplied.")
        if not disposition:
            return _error(
                400, "rest_upload_no_content_disposition", "No Content-Disposition supplied."
            )
        if match is None:
            return _error(
                400, "rest_upload_invalid_disposition", "Invalid Content-Disposition supplied."
            )
        data, filename, mime = request.data, match.group(1), request.content_type or ""
    kind = sniffed_media_kind(data[:262])
    if kind not in ("image", "video") or not mime.startswith(f"{kind}/"):
        return _error(
            500,
            "rest_upload_sideload_error",
            "Sorry, you are not allowed to upload this file type.",
        )
    media_id = state.next_id() % 10**7
    item = {
        "id": media_id,
        "owner": login,
        "kind": kind,
        "source_url": f"{site()}/wp-content/uploads/{media_id}/{filename}",
        "mime_type": mime,
        "media_type": "image" if kind == "image" else "file",
        "alt_text": request.args.get("alt_text") or request.form.get("alt_text", ""),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    with state.lock:
        store()["media"][media_id] = item
    state.note_upload(PLATFORM, kind, str(media_id))
    public = {k: v for k, v in item.items() if k not in PRIVATE}
    return json_response(public, 201, {"Location": f"{site()}{REST}/media/{media_id}"})


def media_item(media_id: int) -> Response:
    _, fault = authorize(publishing=False)
    if fault:
        return fault
    with state.lock:
        item = store()["media"].get(media_id)
        if item is None:
            return _error(404, "rest_post_invalid_id", "Invalid post ID.")
        if request.method == "DELETE":
            del store()["media"][media_id]
            return json_response({"deleted": True, "previous": {"id": media_id}})
    return json_response({k: v for k, v in item.items() if k not in PRIVATE})


# -- posts ----------------------------------------------------------------------------------


def _post_json(post: dict[str, Any], edit: bool) -> dict[str, Any]:
    body = {
        "id": post["id"],
        "date_gmt": post["date_gmt"],
        "slug": post["slug"],
        "status": post["status"],
        "link": f"{site()}/{post['slug']}/"
        if post["status"] == "publish"
        else f"{site()}/?p={post['id']}",
        "title": {"rendered": post["title"]},
        "content": {"rendered": post["content"]},
        "excerpt": {"rendered": post["excerpt"]},
        "featured_media": post["featured_media"],
        "categories": post["categories"],
        "tags": post["tags"],
        "author": post["author"],
    }
    if edit:
        body["title"]["raw"] = post["title"]
        body["content"]["raw"] = post["content"]
    return body


def _media_shown(post: dict[str, Any]) -> list[dict[str, Any]]:
    """The uploads a post shows: its featured image, then those its content links to."""
    shown = []
    for item in store()["media"].values():
        featured = item["id"] == post["featured_media"]
        if featured or item["source_url"] in post["content"]:
            entry = {"kind": item["kind"], "media_id": item["id"], "sha256": item["sha256"]}
            shown.append({**entry, "role": "featured" if featured else "content"})
    return sorted(shown, key=lambda e: e["role"] != "featured")


def _unique_slug(wanted: str, posts: dict[int, dict[str, Any]]) -> str:
    taken = {p["slug"] for p in posts.values()}
    slug, n = wanted, 2
    while slug in taken:
        slug, n = f"{wanted}-{n}", n + 1
    return slug


def _check_post(body: dict[str, Any], login: str) -> Response | None:
    if login.startswith("subscriber"):
        return _error(
            403, "rest_cannot_create", "Sorry, you are not allowed to create posts as this user."
        )
    if not body.get("title") and not body.get("content"):
        return _error(400, "empty_content", "Content, title, and excerpt are empty.")
    if body.get("status", "draft") not in STATUSES:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): status")
    with state.lock:
        media = store()["media"]
        terms = store()["terms"]
        if body.get("featured_media") and int(body["featured_media"]) not in media:
            return _error(400, "rest_invalid_featured_media", "Invalid featured media ID.")
        for taxonomy in ("categories", "tags"):
            if any(int(t) not in terms[taxonomy] for t in body.get(taxonomy) or []):
                return _error(400, "rest_invalid_param", f"Invalid parameter(s): {taxonomy}")
    return None


def create_post() -> Response:
    login, fault = authorize(publishing=True)
    if fault:
        return fault
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
    problem = _check_post(body, login)
    if problem:
        return problem
    with state.lock:
        posts = store()["posts"]
        wanted = slugify(str(body.get("slug") or body.get("title") or "post"))
        post = {
            "id": state.next_id() % 10**7,
            "date_gmt": now_iso()[:19],
            "slug": _unique_slug(wanted, posts),
            "status": body.get("status", "draft"),
            "title": str(body.get("title") or ""),
            "content": str(body.get("content") or ""),
            "excerpt": str(body.get("excerpt") or ""),
            "featured_media": int(body.get("featured_media") or 0),
            "categories": [int(t) for t in body.get("categories") or []],
            "tags": [int(t) for t in body.get("tags") or []],
            "author": user_id(login),
        }
        posts[post["id"]] = post
        ledger_media = _media_shown(post)
    params = {k: v for k, v in post.items() if k not in ("content", "id")}
    state.record(PLATFORM, _account(login), str(post["id"]), post["content"], ledger_media, params)
    if should_lose_response(state, PLATFORM):
        return _error(504, "gateway_timeout", "Gateway Timeout")
    return json_response(_post_json(post, edit=True), 201)


def list_posts() -> Response:
    _, fault = authorize(publishing=False)
    if fault:
        return fault
    args = request.args
    statuses = set((args.get("status") or "publish").split(","))
    edit = args.get("context") == "edit"
    if statuses - {"publish"} and not edit:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): status")
    try:
        per_page = int(args.get("per_page", 10))
    except ValueError:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
    if not 1 <= per_page <= PER_PAGE_MAX:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
    deleted = {e["id"] for e in state.ledger if e["platform"] == PLATFORM and "deleted_at" in e}
    with state.lock:
        posts = [p for p in store()["posts"].values() if str(p["id"]) not in deleted]
    found = [
        p
        for p in sorted(posts, key=lambda p: p["id"], reverse=True)
        if p["status"] in statuses
        and (not args.get("slug") or p["slug"] in args["slug"].split(","))
        and (
            not args.get("search") or args["search"].lower() in (p["title"] + p["content"]).lower()
        )
    ]
    headers = {
        "X-WP-Total": str(len(found)),
        "X-WP-TotalPages": str(max(1, -(-len(found) // per_page))),
    }
    return json_response([_post_json(p, edit) for p in found[:per_page]], headers=headers)


def delete_post(post_id: int) -> Response:
    login, fault = authorize(publishing=False)
    if fault:
        return fault
    if not state.delete(PLATFORM, str(post_id), _account(login)):
        return _error(404, "rest_post_invalid_id", "Invalid post ID.")
    return json_response({"deleted": True, "previous": {"id": post_id}})


# -- comments -------------------------------------------------------------------------------


def _comment_json(comment: dict[str, Any], edit: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": comment["id"],
        "post": comment["post"],
        "parent": comment["parent"],
        "author": comment["author"],
        "author_name": comment["author_name"],
        "date_gmt": comment["date_gmt"],
        "status": "approved",
        "link": f"{comment['post_link']}#comment-{comment['id']}",
        "content": {"rendered": f"<p>{comment['content']}</p>\n"},
    }
    if edit:
        body["content"]["raw"] = comment["content"]
    return body


def create_comment() -> Response:
    """POST /wp/v2/comments {post, content, parent?}: as the signed-in user, approved."""
    login, fault = authorize(publishing=True)
    if fault:
        return fault
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
    content = str(body.get("content") or "").strip()
    if not content:
        return _error(400, "rest_comment_content_invalid", "Invalid comment content.")
    deleted = {e["id"] for e in state.ledger if e["platform"] == PLATFORM and "deleted_at" in e}
    with state.lock:
        data = store()
        post = data["posts"].get(_int(body.get("post")))
        if post is None or str(post["id"]) in deleted:
            return _error(
                403,
                "rest_comment_invalid_post_id",
                "Sorry, you are not allowed to create this comment without a post.",
            )
        parent = _int(body.get("parent")) or 0
        if parent and parent not in data["comments"]:
            return _error(400, "rest_comment_invalid_parent", "Invalid parent comment ID.")
        comment = {
            "id": state.next_id() % 10**7,
            "post": post["id"],
            "parent": parent,
            "author": user_id(login),
            "author_name": login.title(),
            "date_gmt": now_iso()[:19],
            "content": content,
            "post_link": _post_json(post, edit=False)["link"],
        }
        data["comments"][comment["id"]] = comment
    reply_to = str(parent or post["id"])
    state.record(PLATFORM, _account(login), str(comment["id"]), content, [], {}, reply_to=reply_to)
    if should_lose_response(state, PLATFORM):
        return _error(504, "gateway_timeout", "Gateway Timeout")
    return json_response(_comment_json(comment, edit=True), 201)


def _forbidden() -> Response:
    return _error(403, "rest_forbidden", "Sorry, you are not allowed to do that.")


def list_comments() -> Response:
    """GET /wp/v2/comments?post=: newest first; `context=edit` adds the raw content.
    Naming one post is an insights read (docs/sandbox.md): `X-WP-Total` also counts its
    readers' comments by the sandbox clock (`figures()`, logged), which are not listed."""
    _, fault = authorize(publishing=False)
    if fault:
        return fault
    args = request.args
    try:
        per_page = int(args.get("per_page", 10))
    except ValueError:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
    if not 1 <= per_page <= PER_PAGE_MAX:
        return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page")
    posts = {_int(p) for p in (args.get("post") or "").split(",") if p}
    readers = 0
    if len(posts) == 1:
        failure = metrics_fault(state, PLATFORM, STYLE, _credential(), _forbidden)
        if failure is not None:
            return failure
        values = read_post(state, PLATFORM, str(next(iter(posts))))
        readers = values["comments"] if values is not None else 0
    with state.lock:
        found = [
            c
            for c in sorted(store()["comments"].values(), key=lambda c: c["id"], reverse=True)
            if not posts or c["post"] in posts
        ]
    edit = args.get("context") == "edit"
    headers = {"X-WP-Total": str(len(found) + readers)}
    return json_response([_comment_json(c, edit) for c in found[:per_page]], headers=headers)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


SITE_ROUTES = (
    Route("GET", "/users/me", users_me),
    Route("GET", "/categories", list_categories),
    Route("POST", "/categories", create_category),
    Route("GET", "/tags", list_tags),
    Route("POST", "/tags", create_tag),
    Route("POST", "/media", upload_media),
    Route("GET", "/media/<int:media_id>", media_item),
    Route("DELETE", "/media/<int:media_id>", media_item, endpoint="delete_media"),
    Route("GET", "/posts", list_posts),
    Route("POST", "/posts", create_post),
    Route("DELETE", "/posts/<int:post_id>", delete_post),
    Route("GET", "/comments", list_comments),
    Route("POST", "/comments", create_comment),
)


def _on_blog(route: Route) -> Route:
    """The route under a WordPress.com blog: the same handler, the blog id aside."""
    view = route.view

    def on_blog(blog_id: str, **kwargs: Any) -> Response:
        return view(**kwargs)

    endpoint = f"blog_{route.endpoint or view.__name__}"
    return Route(route.method, f"{BLOG_REST}{route.path}", on_blog, endpoint=endpoint)


ROUTES = (
    *(Route(r.method, f"{REST}{r.path}", r.view, r.endpoint) for r in SITE_ROUTES),
    *(_on_blog(r) for r in SITE_ROUTES),
)
