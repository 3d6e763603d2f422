"""WordPress through its REST API: a self-hosted site with an application password, or a
blog on WordPress.com (or a Jetpack site) signed in through WordPress.com's OAuth.

The account's external id is the site URL. A self-hosted site's token is
`user:application-password`, sent as HTTP Basic to `{site}/wp-json/wp/v2/...`; a
WordPress.com blog (`settings.blog_id`) has a Bearer token and the same wp/v2 routes under
`public-api.wordpress.com/wp/v2/sites/{blog_id}/...`, with the same bodies.

Ahead of the instant the adapter resolves the post's categories and tags to ids
(creating the missing ones) and uploads its images and videos to /wp/v2/media; at the
instant only POST /wp/v2/posts is left, with the first image as `featured_media` and the
other media in the content.

WordPress has no idempotency key, so every post carries a slug Crier chooses (the
caller's `slug`, else one derived from the title and the target) and records before the
create; reconcile (and a resumed publish) look the slug up, so a retried create never
doubles a post.
"""

from __future__ import annotations

import hashlib
import html
import re
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from app.credentials import wordpress_site
from app.services.outbound import UnsafeURLError, resolve
from workers.adapters import register
from workers.adapters._wordpress_metrics import WordPressMetrics
from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    AuthRevokedError,
    FollowUp,
    MediaItem,
    PermanentError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    ReconcileResult,
    ReconcileStatus,
    json_body,
    resuming_prepared,
    working_handle,
)
from workers.adapters.comments import COMMENT_PAGE_SIZE, begin_comment, found_comment
from workers.adapters.kit import (
    ErrorCodes,
    classify_status,
    reconcile_since,
    retry_after_seconds,
)

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
REST = "/wp-json/wp/v2"
# The wp/v2 routes of a WordPress.com blog: `{WPCOM_REST}/{blog_id}/posts`, ...
WPCOM_REST = "/wp/v2/sites"
# WordPress.com's answers to a token it no longer takes (`{"error", "message"}`).
WPCOM_TOKEN_ERRORS = frozenset({"invalid_token", "authorization_required", "unauthorized"})
# Core has no rate limit; a host's or plugin's 429 without Retry-After waits this long.
DEFAULT_RATE_LIMIT_WAIT_SECONDS = 60.0
ERROR_CODES = ErrorCodes(
    rate_limited="wordpress_rate_limited",
    auth_expired="wordpress_unauthorized",
    server_error="wordpress_server_error",
    rejected="wordpress_invalid_request",
)
# WordPress's own error codes that mean the credential no longer works: reconnect.
CREDENTIAL_REFUSED = frozenset(
    {"incorrect_password", "invalid_username", "invalid_email", "application_passwords_disabled"}
)
REFUSALS = {
    "rest_cannot_create": "wordpress_cannot_create",
    "rest_cannot_publish": "wordpress_cannot_publish",
    "rest_cannot_create_terms": "wordpress_cannot_create_terms",
    "rest_cannot_assign_term": "wordpress_cannot_assign_term",
    "rest_no_route": "wordpress_rest_unavailable",
    "rest_upload_sideload_error": "wordpress_upload_refused",
}
RECONCILE_CLOCK_SKEW = timedelta(minutes=2)
RECONCILE_SEARCH_PAGE = 20
# Statuses a post of ours can have on the site (context=edit sees them all).
ANY_STATUS = "publish,future,draft,pending,private"
SLUG_TITLE_CHARS = 60
_SLUG_RE = re.compile(r"[^a-z0-9]+")


def post_slug(request: PublishRequest) -> str:
    """The caller's slug, else the title's words and a mark of the target: the same target
    always asks for the same slug, so its post can be found again."""
    if request.settings.get("slug"):
        return str(request.settings["slug"])
    words = _SLUG_RE.sub("-", str(request.settings.get("title") or "").lower()).strip("-")
    mark = hashlib.sha256(f"crier-target:{request.target_id}".encode()).hexdigest()[:8]
    return f"{words[:SLUG_TITLE_CHARS].rstrip('-')}-{mark}" if words else f"post-{mark}"


@register
class WordPressAdapter(WordPressMetrics, Adapter):
    platform = "wordpress"
    # A self-hosted site is its own host (the account's external id); WordPress.com blogs
    # are reached through its public API.
    hosts = {"api": "public-api.wordpress.com"}

    def site_url(self, account: AccountCredentials, path: str) -> str:
        """`{site}{path}`, or `{CRIER_PLATFORM_BASE_URL}/wordpress{path}` when set. The
        site is a URL a caller gave: it must resolve to public addresses on an allowed
        port (the outbound rules), so an account cannot point Crier into its own network.
        A WordPress.com blog's `{REST}/x` is `/wp/v2/sites/{blog_id}/x` on its public API."""
        blog_id = wordpress_com_blog(account)
        if blog_id is not None:
            return self.url(f"{WPCOM_REST}/{blog_id}{path.removeprefix(REST)}")
        if self.base_url:
            return f"{self.base_url}/{self.platform}{path}"
        site = wordpress_site(account.external_id or "")
        if site is None:
            raise PermanentError(
                f"the account's site URL {account.external_id!r} is not an http(s) URL",
                code="wordpress_site_invalid",
            )
        try:
            resolve(
                site,
                allow_private=self.settings.allow_private_urls,
                ports=self.settings.outbound_ports,
            )
        except UnsafeURLError as exc:
            raise PermanentError(str(exc), code="wordpress_site_refused") from exc
        return f"{site}{path}"

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        account = request.account
        handle = working_handle(request)
        prepared = resuming_prepared(request)
        if handle.get("posted_at") and not prepared:
            found = self._find_post(request, handle)
            if found is not None:
                return found

        if "categories" not in handle:
            handle["categories"] = self._term_ids(account, "categories", request)
            handle["tags"] = self._term_ids(account, "tags", request)
            context.save_handle(handle)
        uploaded = list(handle.get("media") or [])
        for item in request.media[len(uploaded) :]:
            uploaded.append(self._upload(account, item, request.settings.get("altText")))
            handle["media"] = uploaded
            context.save_handle(handle)

        body = self._post_body(request, handle, uploaded)
        handle.update(slug=body["slug"], title=body["title"])
        if prepared or not handle.get("posted_at"):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        context.save_handle(handle)
        context.mark_irreversible()
        post = self._create_post(account, body)
        return _result(post)

    def _create_post(self, account: AccountCredentials, body: dict[str, Any]) -> dict[str, Any]:
        """POST /wp/v2/posts: the one request that makes the post public."""
        return self._json(
            self._call("POST", self.site_url(account, f"{REST}/posts"), account, json=body)
        )

    def _post_body(
        self, request: PublishRequest, handle: dict[str, Any], uploaded: list[dict[str, Any]]
    ) -> dict[str, Any]:
        settings = request.settings
        content = request.text
        alt = html.escape(str(settings.get("altText") or ""), quote=True)
        featured = next((item for item in uploaded if item.get("kind", "image") == "image"), None)
        for item in uploaded:
            if item is featured:
                continue
            src = html.escape(str(item["source_url"]), quote=True)
            if item.get("kind") == "video":
                video = f'<video controls src="{src}"></video>'
                content += f'\n<figure class="wp-block-video">{video}</figure>'
            else:
                content += (
                    f'\n<figure class="wp-block-image"><img src="{src}" alt="{alt}" '
                    f'class="wp-image-{int(item["id"])}"/></figure>'
                )
        body: dict[str, Any] = {
            "title": settings.get("title") or "",
            "content": content,
            "status": settings.get("status") or "publish",
            "slug": handle.get("slug") or post_slug(request),
        }
        if settings.get("excerpt"):
            body["excerpt"] = settings["excerpt"]
        if handle.get("categories"):
            body["categories"] = handle["categories"]
        if handle.get("tags"):
            body["tags"] = handle["tags"]
        if featured is not None:
            body["featured_media"] = int(featured["id"])
        return body

    # -- terms and media -------------------------------------------------------------------

    def _term_ids(
        self, account: AccountCredentials, taxonomy: str, request: PublishRequest
    ) -> list[int]:
        """The ids of the post's category (or tag) names, creating the ones the site lacks."""
        ids: list[int] = []
        for name in request.settings.get(taxonomy) or []:
            url = self.site_url(account, f"{REST}/{taxonomy}")
            found = self._call("GET", url, account, params={"search": name, "per_page": 100})
            match = [
                t for t in found.json() or [] if str(t.get("name", "")).lower() == name.lower()
            ]
            if match:
                ids.append(int(match[0]["id"]))
                continue
            created = self.send(
                "POST",
                url,
                failure="WordPress request failed",
                json={"name": name},
                headers=_auth(account),
                timeout=TIMEOUT,
            )
            body = json_body(created)
            if created.status_code == 400 and body.get("code") == "term_exists":
                ids.append(int((body.get("data") or {})["term_id"]))
            elif created.status_code >= 300:
                raise classify(created)
            else:
                ids.append(int(body["id"]))
        return ids

    def _upload(
        self, account: AccountCredentials, item: MediaItem, alt_text: str | None
    ) -> dict[str, Any]:
        """The raw file to /wp/v2/media (WordPress names it from Content-Disposition); the
        alt text applies to images."""
        filename = (item.filename or f"{item.id}.{item.mime_type.split('/')[-1]}").replace('"', "")
        headers = {
            **_auth(account),
            "Content-Type": item.mime_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
        }
        params = {"alt_text": alt_text} if alt_text and item.kind == "image" else None
        with open(item.path, "rb") as source:
            response = self.send(
                "POST",
                self.site_url(account, f"{REST}/media"),
                failure="WordPress media upload failed",
                classify=classify,
                content=source.read(),
                headers=headers,
                params=params,
                timeout=UPLOAD_TIMEOUT,
            )
        media = self._json(response)
        return {
            "id": int(media["id"]),
            "source_url": str(media.get("source_url") or ""),
            "kind": item.kind,
        }

    def discard_prepared(self, account: AccountCredentials, handle: dict[str, Any]) -> int:
        """Delete (for good: media have no trash) the media a prepare uploaded for a post
        that will not go out; media already gone are not counted. Should the post be on
        the site after all, its media stay."""
        if not handle.get("media"):
            return 0
        slug, title = handle.get("slug"), handle.get("title")
        if slug and self._find(account, str(slug), str(title or ""), handle.get("posted_at")):
            return 0
        deleted = 0
        for item in handle.get("media") or []:
            response = self.send(
                "DELETE",
                self.site_url(account, f"{REST}/media/{int(item['id'])}"),
                failure="WordPress request failed",
                params={"force": "true"},
                headers=_auth(account),
                timeout=TIMEOUT,
            )
            if response.status_code == 404:
                continue
            if response.status_code >= 300:
                raise classify(response)
            deleted += 1
        return deleted

    # -- reconcile -------------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        found = self._find_post(request, request.handle or {})
        if found is None:
            return ReconcileResult(
                ReconcileStatus.NOT_FOUND, reason="no post with our slug on the site"
            )
        return ReconcileResult(ReconcileStatus.FOUND, result=found)

    def _find_post(self, request: PublishRequest, handle: dict[str, Any]) -> PublishResult | None:
        return self._find(
            request.account,
            handle.get("slug") or post_slug(request),
            str(request.settings.get("title") or ""),
            handle.get("posted_at") or request.irreversible_started_at,
        )

    def _find(
        self, account: AccountCredentials, slug: str, title: str, started: Any
    ) -> PublishResult | None:
        """The site's post with our slug and title made since the attempt began; where
        WordPress made the slug unique (`-2`), the newest such post under that slug's stem."""
        since = reconcile_since(started, RECONCILE_CLOCK_SKEW)
        url = self.site_url(account, f"{REST}/posts")
        common = {"status": ANY_STATUS, "context": "edit"}

        def ours(post: dict[str, Any]) -> bool:
            same_title = (post.get("title") or {}).get("raw", title) == title
            return same_title and _posted_since(post, since)

        for post in self._json_list(
            self._call("GET", url, account, params={**common, "slug": slug})
        ):
            if ours(post):
                return _result(post, reconciled=True)
        if not title:
            return None
        params = {**common, "search": title, "per_page": RECONCILE_SEARCH_PAGE}
        for post in self._json_list(self._call("GET", url, account, params=params)):
            if str(post.get("slug", "")).startswith(f"{slug}-") and ours(post):
                return _result(post, reconciled=True)
        return None

    # -- first comment ---------------------------------------------------------------------

    def publish_comment(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        """POST /wp/v2/comments under the post, as the account's user (approved at once for
        an author of the site; a site may still hold it for moderation)."""
        account = request.account
        body = {"post": int(parent.platform_post_id), "content": item.text}
        begin_comment(context)
        comment = self._json(
            self._call("POST", self.site_url(account, f"{REST}/comments"), account, json=body)
        )
        return _comment_result(comment, parent)

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        """The post's comments (every status, as their author may read them) with the
        item's text since its attempt began."""
        account = request.account
        params = {
            "post": int(parent.platform_post_id),
            "context": "edit",
            "status": "all",
            "per_page": COMMENT_PAGE_SIZE,
        }
        listed = {
            str(c["id"]): c
            for c in self._json_list(
                self._call(
                    "GET", self.site_url(account, f"{REST}/comments"), account, params=params
                )
            )
            if c.get("id")
        }
        return found_comment(
            item,
            [(cid, _comment_text(c), _comment_time(c)) for cid, c in listed.items()],
            lambda cid: _comment_result(listed[cid], parent),
        )

    # -- HTTP ------------------------------------------------------------------------------

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        """Moves the post to the site's trash (where it can be restored)."""
        self._call(
            "DELETE", self.site_url(account, f"{REST}/posts/{int(platform_post_id)}"), account
        )

    def _call(
        self, method: str, url: str, account: AccountCredentials, **kwargs: Any
    ) -> httpx.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return self.send(
            method,
            url,
            failure="WordPress request failed",
            classify=classify,
            headers=_auth(account),
            **kwargs,
        )

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        body = json_body(response)
        if not body:
            raise _not_rest(response)
        return body

    @staticmethod
    def _json_list(response: httpx.Response) -> list[dict[str, Any]]:
        try:
            body = response.json()
        except ValueError:
            raise _not_rest(response) from None
        if not isinstance(body, list):
            raise _not_rest(response)
        return [item for item in body if isinstance(item, dict)]


def wordpress_com_blog(account: AccountCredentials) -> str | None:
    """The blog id of an account connected through WordPress.com; None for a self-hosted
    site with an application password."""
    blog_id = (account.settings or {}).get("blog_id")
    return str(blog_id) if blog_id else None


def _auth(account: AccountCredentials) -> dict[str, str]:
    """HTTP Basic with the account's `user:application-password` (WordPress shows the
    password in groups of four separated by spaces; it accepts it either way), or a
    WordPress.com blog's Bearer token."""
    if wordpress_com_blog(account) is not None:
        return {"Authorization": f"Bearer {account.access_token}"}
    basic = b64encode(account.access_token.encode()).decode()
    return {"Authorization": f"Basic {basic}"}


def _result(post: dict[str, Any], reconciled: bool = False) -> PublishResult:
    details: dict[str, Any] = {"status": post.get("status"), "slug": post.get("slug")}
    if reconciled:
        details["reconciled"] = True
    return PublishResult(platform_post_id=str(post["id"]), url=post.get("link"), details=details)


def _comment_result(comment: dict[str, Any], parent: PublishResult) -> PublishResult:
    details = {"reply_to": parent.platform_post_id, "status": comment.get("status")}
    return PublishResult(str(comment["id"]), comment.get("link") or parent.url, details)


def _comment_text(comment: dict[str, Any]) -> str:
    """The comment as written (`content.raw`, edit context), else its rendered HTML's text."""
    content = comment.get("content") or {}
    raw = content.get("raw")
    if raw is not None:
        return str(raw)
    return html.unescape(re.sub(r"<[^>]+>", "", str(content.get("rendered") or ""))).strip()


def _comment_time(comment: dict[str, Any]) -> float | None:
    raw = comment.get("date_gmt")
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC).timestamp() if raw else None


def _posted_since(post: dict[str, Any], since: datetime) -> bool:
    raw = post.get("date_gmt")
    if not raw:
        return True  # a draft without a date: the slug alone is ours
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC) >= since


def _not_rest(response: httpx.Response) -> PlatformError:
    return PermanentError(
        f"the site did not answer as the WordPress REST API (HTTP {response.status_code}, "
        f"{response.headers.get('content-type') or 'no content type'}): check the site URL",
        code="wordpress_not_rest",
        http_status=response.status_code,
    )


def classify(response: httpx.Response) -> PlatformError:
    """WordPress's `{code, message, data: {status}}` errors to a PlatformError."""
    status = response.status_code
    body = json_body(response)
    code = str(body.get("code") or "")
    message = html.unescape(str(body.get("message") or response.reason_phrase))
    details = {"wordpress_code": code} if code else None
    if _is_wordpress_com(response) and (
        status == 401 or str(body.get("error") or "") in WPCOM_TOKEN_ERRORS
    ):
        return AuthRevokedError(
            f"WordPress.com refused the token: {message}",
            code="wordpress_token_refused",
            http_status=status,
            details=details,
        )
    if code in CREDENTIAL_REFUSED:
        return AuthRevokedError(
            message, code="wordpress_credential_refused", http_status=status, details=details
        )
    if status == 401:
        # No credential reached WordPress: a server or security plugin may strip the
        # Authorization header.
        return AuthRevokedError(
            f"{message} (the site did not see the application password: its server may "
            "strip the Authorization header)",
            code="wordpress_not_logged_in",
            http_status=status,
            details=details,
        )
    if code in REFUSALS:
        return PermanentError(message, code=REFUSALS[code], http_status=status, details=details)
    if status == 403:
        return PermanentError(
            message, code="wordpress_forbidden", http_status=status, details=details
        )
    wait = retry_after_seconds(response.headers, DEFAULT_RATE_LIMIT_WAIT_SECONDS)
    return classify_status(status, message, ERROR_CODES, rate_limit_wait=wait, details=details)


def _is_wordpress_com(response: httpx.Response) -> bool:
    """Whether the answer is WordPress.com's (a blog's wp/v2 routes on its public API)."""
    try:
        return f"{WPCOM_REST}/" in response.request.url.path
    except RuntimeError:  # an answer built without its request
        return False
