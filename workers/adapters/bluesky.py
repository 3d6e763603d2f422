"""Bluesky (AT Protocol): app-password sessions, blobs and video jobs, createRecord with a
record key chosen from the target, so a retried create can never make a second post.

An account's stored access token is its app password (the durable credential) and its
stored refresh token the current session (`accessJwt`, `refreshJwt`, DID, handle, PDS) as
JSON, both encrypted. A session is reused while it lives, refreshed with
`com.atproto.server.refreshSession`, and made anew with `createSession` (limited to 30
per 5 minutes per handle) only when the refresh is refused. Sessions are also cached
per account in the process.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.config import Settings
from workers.adapters import register
from workers.adapters._atproto import (
    ERROR_CODES,
    Session,
    as_reply,
    check_size,
    classify,
    classify_sign_in,
    detect_facets,
    first_link,
    is_reply,
    parse_time,
    permalink,
    rate_limit_details,
    rkey_of,
    session_from,
    tid,
)
from workers.adapters._bluesky_metrics import BlueskyMetrics
from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    AuthExpiredError,
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
    TokenSet,
    TransientError,
    json_body,
    resuming_prepared,
    working_handle,
)
from workers.adapters.kit import poll_until, reconcile_since, stream_file

TIMEOUT = httpx.Timeout(30.0, connect=10.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
DEFAULT_PDS = "https://bsky.social"
POST_COLLECTION = "app.bsky.feed.post"
# Blobs no record references are removed by the PDS after a while; a prepared upload is
# used within this time or uploaded again.
BLOB_REUSE_SECONDS = 60 * 60
VIDEO_PROCESSING_TIMEOUT_SECONDS = 300.0
VIDEO_POLL_SECONDS = 2.0
RECONCILE_CLOCK_SKEW = timedelta(minutes=2)
RECONCILE_PAGE_SIZE = 100


@register
class BlueskyAdapter(BlueskyMetrics, Adapter):
    platform = "bluesky"
    # The default PDS (accounts hosted by Bluesky; others name theirs) and the video service.
    hosts = {"api": "bsky.social", "video": "video.bsky.app"}
    supports_refresh = True
    # The stored app password can always make a new session: refresh needs no token.
    refreshes_access_token = True

    poll_interval = VIDEO_POLL_SECONDS

    def __init__(
        self, http: httpx.Client, base_url: str | None = None, settings: Settings | None = None
    ) -> None:
        super().__init__(http, base_url, settings)
        # account id -> (the app password it was made with, session): createSession is
        # spent sparingly; a reconnected account (another password) starts again.
        self._sessions: dict[int, tuple[str, Session]] = {}

    # -- URLs ------------------------------------------------------------------------------

    def xrpc(self, method: str, pds: str | None = None) -> str:
        """A PDS method's URL: the account's PDS, or under CRIER_PLATFORM_BASE_URL the
        sandbox's `/bluesky` (the per-account host is replaced too)."""
        path = f"/xrpc/{method}"
        if self.base_url:
            return f"{self.base_url}/{self.platform}{path}"
        return f"{(pds or DEFAULT_PDS).rstrip('/')}{path}"

    def account_pds(self, account: AccountCredentials) -> str:
        stored = Session.from_json(account.refresh_token)
        return str(account.settings.get("pds") or (stored.pds if stored else "") or DEFAULT_PDS)

    # -- sessions --------------------------------------------------------------------------

    def session(self, account: AccountCredentials) -> Session:
        """A live session for the account: cached, stored, refreshed or created."""
        cached = self._sessions.get(account.account_id)
        if cached is not None and cached[0] == account.access_token and cached[1].usable():
            return cached[1]
        stored = Session.from_json(account.refresh_token)
        if stored is not None and stored.usable():
            self._sessions[account.account_id] = (account.access_token, stored)
            return stored
        return self._renew(account)

    def forget_session(self, account: AccountCredentials) -> None:
        self._sessions.pop(account.account_id, None)

    def _renew(self, account: AccountCredentials) -> Session:
        cached = self._sessions.get(account.account_id)
        latest = cached[1] if cached and cached[0] == account.access_token else None
        latest = latest or Session.from_json(account.refresh_token)
        session = None
        if latest is not None:
            try:
                session = self._refresh_session(latest)
            except (AuthExpiredError, AuthRevokedError):
                session = None  # the refresh JWT is spent or revoked: sign in again
        if session is None:
            session = self.create_session(
                self._identifier(account), account.access_token, self.account_pds(account)
            )
        self._sessions[account.account_id] = (account.access_token, session)
        return session

    def _identifier(self, account: AccountCredentials) -> str:
        stored = Session.from_json(account.refresh_token)
        found = account.settings.get("handle") or account.external_id or (stored and stored.did)
        if not found:
            raise AuthRevokedError(
                "the Bluesky account has no handle to sign in with; reconnect it",
                code="bluesky_no_handle",
            )
        return str(found).lstrip("@")

    def create_session(self, identifier: str, password: str, pds: str) -> Session:
        response = self.send(
            "POST",
            self.xrpc("com.atproto.server.createSession", pds),
            failure="Bluesky sign-in failed",
            classify=classify_sign_in,
            json={"identifier": identifier, "password": password},
            timeout=TIMEOUT,
        )
        return session_from(response.json(), pds)

    def _refresh_session(self, session: Session) -> Session:
        response = self.send(
            "POST",
            self.xrpc("com.atproto.server.refreshSession", session.pds),
            failure="Bluesky session refresh failed",
            classify=classify,
            headers={"Authorization": f"Bearer {session.refresh_jwt}"},
            timeout=TIMEOUT,
        )
        return session_from(response.json(), session.pds)

    def refresh_token(self, account: AccountCredentials) -> TokenSet:
        """A new session kept with the account (its refresh token); the app password
        stays its access token."""
        session = self._renew(account)
        return TokenSet(access_token=account.access_token, refresh_token=session.to_json())

    # -- publish ---------------------------------------------------------------------------

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        check_size(request.text)
        session = self.session(request.account)
        handle = working_handle(request)
        prepared = resuming_prepared(request)
        if handle.get("posted_at") and not prepared and handle.get("rkey"):
            found = self._get_post(session.did, str(handle["rkey"]), session.pds)
            if found is not None:
                return self._result(session, found, reconciled=True)
        return self._post(request, session, handle, prepared, context)

    def _post(
        self,
        request: PublishRequest,
        session: Session,
        handle: dict[str, Any],
        prepared: bool,
        context: PublishContext,
        reply: dict[str, Any] | None = None,
    ) -> PublishResult:
        """The record made and created under its key; `reply`: its {root, parent} refs."""
        embed = self._embed(request, session, handle, context)
        now = time.time_ns() // 1000
        if not handle.get("rkey"):
            # Chosen once, the first time the target gets this far (a prepare included):
            # every later create of this target repeats it, so none can make a second post.
            handle["rkey"] = tid(now, request.target_id)
        if prepared or not handle.get("created_at"):
            # The post's time is when it is sent, not when it was prepared.
            handle["created_at"] = (
                datetime.fromtimestamp(now / 1e6, UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": request.text,
            "createdAt": handle["created_at"],
        }
        facets = handle.get("facets")
        if facets is None:
            facets = detect_facets(request.text, self._resolve_handle)
            handle["facets"] = facets
        if facets:
            record["facets"] = facets
        if reply:
            record["reply"] = reply
        if embed:
            record["embed"] = embed
        langs = request.settings.get("langs")
        if langs:
            record["langs"] = list(langs)
        handle.update(did=session.did, handle=session.handle)
        if prepared or not handle.get("posted_at"):
            handle["posted_at"] = datetime.now(UTC).isoformat()
        context.save_handle(handle)
        context.mark_irreversible()
        created = self.create_post(session, record, str(handle["rkey"]))
        return self._result(session, created, reconciled=False)

    def publish_reply(
        self,
        request: PublishRequest,
        parent: PublishResult,
        item: FollowUp,
        context: PublishContext,
    ) -> PublishResult:
        """createRecord with `record.reply`: the item under `parent`, in its thread."""
        check_size(item.text)
        session = self.session(request.account)
        refs = self._reply_refs(session, parent)
        # The post's language tags and link card setting carry over; its alt texts do not.
        reply = replace(
            request,
            text=item.text,
            media=list(item.media),
            settings={k: v for k, v in request.settings.items() if k in ("langs", "linkCard")},
        )
        result = self._post(reply, session, dict(item.handle or {}), False, context, refs)
        return as_reply(result, refs["root"], parent)

    def _reply_refs(self, session: Session, parent: PublishResult) -> dict[str, Any]:
        """{root, parent} refs: from the parent's result, else its record (read back)."""
        details = parent.details or {}
        uri = parent.platform_post_id
        cid, root = details.get("cid"), details.get("root")
        if not cid or (details.get("reply_to") and not root):
            parts = uri.split("/")
            found = None
            if uri.startswith("at://") and len(parts) == 5:
                found = self._get_post(parts[2], parts[4], session.pds)
            if found is None:
                raise PermanentError(
                    f"the post to reply to ({uri}) is not on Bluesky",
                    code="bluesky_parent_missing",
                )
            cid = found.get("cid")
            root = ((found.get("value") or {}).get("reply") or {}).get("root")
        ref = {"uri": uri, "cid": cid}
        return {"root": root or ref, "parent": ref}

    def find_follow_up(
        self, request: PublishRequest, parent: PublishResult, item: FollowUp
    ) -> ReconcileResult:
        """By the record key the item's attempt chose; without one, the account's newest
        records for a reply to `parent` with the item's text, made since the attempt."""
        handle = item.handle or {}
        session = self.session(request.account)
        since = reconcile_since(handle.get("posted_at") or item.started_at, RECONCILE_CLOCK_SKEW)
        if handle.get("rkey"):
            found = self._get_post(session.did, str(handle["rkey"]), session.pds)
            candidates, since = ([found] if found else []), None
        else:
            candidates = self._list_records(session.did, session.pds)
        for record in candidates:
            if is_reply(record, parent.platform_post_id, item.text, since):
                result = self._result(session, record, reconciled=True)
                root = record["value"]["reply"].get("root")
                return ReconcileResult(ReconcileStatus.FOUND, as_reply(result, root, parent))
        return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching reply")

    def create_post(self, session: Session, record: dict[str, Any], rkey: str) -> dict[str, Any]:
        """createRecord under a chosen record key: a post, or (with `record["reply"]` set
        to {root, parent} strong refs) a reply. A create refused because the key exists
        is the earlier attempt's post, adopted once read back."""
        body = {"repo": session.did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}
        try:
            response = self.send(
                "POST",
                self.xrpc("com.atproto.repo.createRecord", session.pds),
                failure="Bluesky post failed",
                classify=classify,
                json=body,
                headers={"Authorization": f"Bearer {session.access_jwt}"},
                timeout=TIMEOUT,
            )
        except PlatformError as error:
            if error.code != ERROR_CODES.rejected:
                raise
            existing = self._get_post(session.did, rkey, session.pds)
            if existing is None or existing.get("value", {}).get("text") != record["text"]:
                raise
            return existing
        created = response.json()
        details = rate_limit_details(response.headers)
        return {**created, "rate_limit": details} if details else created

    def _result(
        self, session: Session, created: dict[str, Any], *, reconciled: bool
    ) -> PublishResult:
        uri = str(created["uri"])
        details: dict[str, Any] = {"cid": created.get("cid"), "rkey": rkey_of(uri)}
        if created.get("rate_limit"):
            details["rate_limit"] = created["rate_limit"]
        if reconciled:
            details["reconciled"] = True
        return PublishResult(
            platform_post_id=uri,
            url=permalink(session.handle, session.did, rkey_of(uri)),
            details=details,
        )

    def _resolve_handle(self, mention: str) -> str | None:
        """The DID of a mentioned handle; None when it does not resolve (no link then)."""
        try:
            response = self.send(
                "GET",
                self.xrpc("com.atproto.identity.resolveHandle"),
                failure="resolving a Bluesky handle failed",
                params={"handle": mention},
                timeout=TIMEOUT,
            )
        except TransientError:
            return None
        if response.status_code != 200:
            return None
        did = json_body(response).get("did")
        return str(did) if did else None

    # -- media -----------------------------------------------------------------------------

    def _embed(
        self,
        request: PublishRequest,
        session: Session,
        handle: dict[str, Any],
        context: PublishContext,
    ) -> dict[str, Any] | None:
        alts = list(request.settings.get("altTexts") or [])
        videos = [m for m in request.media if m.kind == "video"]
        if videos:
            if len(request.media) != 1:
                raise PermanentError(
                    "a Bluesky post carries one video or up to 4 images, not both",
                    code="bluesky_media_mix",
                )
            blob = self._video_blob(session, videos[0], handle, context)
            embed: dict[str, Any] = {"$type": "app.bsky.embed.video", "video": blob}
            embed["alt"] = alts[0] if alts else ""
            if videos[0].width and videos[0].height:
                embed["aspectRatio"] = {"width": videos[0].width, "height": videos[0].height}
            return embed
        if request.media:
            blobs = self._image_blobs(session, request.media, handle, context)
            images = []
            for index, (item, blob) in enumerate(zip(request.media, blobs, strict=True)):
                image: dict[str, Any] = {
                    "image": blob,
                    "alt": alts[index] if index < len(alts) else "",
                }
                if item.width and item.height:
                    image["aspectRatio"] = {"width": item.width, "height": item.height}
                images.append(image)
            return {"$type": "app.bsky.embed.images", "images": images}
        link = first_link(request.text) if request.settings.get("linkCard", True) else None
        if link:
            host = urlsplit(link).hostname or link
            return {
                "$type": "app.bsky.embed.external",
                "external": {"uri": link, "title": host, "description": ""},
            }
        return None

    def _blobs_fresh(self, handle: dict[str, Any]) -> bool:
        return time.time() - float(handle.get("blobs_at") or 0) < BLOB_REUSE_SECONDS

    def _image_blobs(
        self,
        session: Session,
        media: list[MediaItem],
        handle: dict[str, Any],
        context: PublishContext,
    ) -> list[dict[str, Any]]:
        if handle.get("blobs") and self._blobs_fresh(handle):
            return list(handle["blobs"])
        blobs = []
        for item in media:
            with open(item.path, "rb") as source:
                response = self.send(
                    "POST",
                    self.xrpc("com.atproto.repo.uploadBlob", session.pds),
                    failure="Bluesky image upload failed",
                    classify=classify,
                    content=source.read(),
                    headers={
                        "Authorization": f"Bearer {session.access_jwt}",
                        "Content-Type": item.mime_type,
                    },
                    timeout=UPLOAD_TIMEOUT,
                )
            blobs.append(response.json()["blob"])
        handle.update(blobs=blobs, blobs_at=time.time())
        context.save_handle(handle)
        return blobs

    def _video_blob(
        self, session: Session, item: MediaItem, handle: dict[str, Any], context: PublishContext
    ) -> dict[str, Any]:
        if handle.get("blobs") and self._blobs_fresh(handle):
            return dict(handle["blobs"][0])
        job_id = handle.get("video_job") if self._blobs_fresh(handle) else None
        if not job_id:
            job_id = self._upload_video(session, item)
            handle.update(video_job=job_id, blobs_at=time.time())
            # Saved before the wait: a retry resumes the job rather than uploading again.
            context.save_handle(handle)
        blob = self._await_job(str(job_id))
        handle["blobs"] = [blob]
        context.save_handle(handle)
        return blob

    def _upload_video(self, session: Session, item: MediaItem) -> str:
        pds_host = urlsplit(session.pds).hostname or "bsky.social"
        token = self.send(
            "GET",
            self.xrpc("com.atproto.server.getServiceAuth", session.pds),
            failure="Bluesky video authorisation failed",
            classify=classify,
            params={
                "aud": f"did:web:{pds_host}",
                "lxm": "com.atproto.repo.uploadBlob",
                "exp": str(int(time.time()) + 30 * 60),
            },
            headers={"Authorization": f"Bearer {session.access_jwt}"},
            timeout=TIMEOUT,
        ).json()["token"]
        response = self.send(
            "POST",
            self.url("/xrpc/app.bsky.video.uploadVideo", "video"),
            failure="Bluesky video upload failed",
            params={"did": session.did, "name": item.filename or f"{item.id}.mp4"},
            content=stream_file(item.path),
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": item.mime_type,
                "Content-Length": str(item.size_bytes),
            },
            timeout=UPLOAD_TIMEOUT,
        )
        body = json_body(response)
        status = body.get("jobStatus") if isinstance(body.get("jobStatus"), dict) else body
        # The service answers 409 with the job of a video it already has.
        if response.status_code >= 300 and not (
            response.status_code == 409 and status.get("jobId")
        ):
            raise classify(response)
        return str(status["jobId"])

    def _await_job(self, job_id: str) -> dict[str, Any]:
        def look() -> dict[str, Any] | None:
            status = self.send(
                "GET",
                self.url("/xrpc/app.bsky.video.getJobStatus", "video"),
                failure="reading a Bluesky video job failed",
                classify=classify,
                params={"jobId": job_id},
                timeout=TIMEOUT,
            ).json()["jobStatus"]
            if status.get("state") == "JOB_STATE_COMPLETED" and status.get("blob"):
                return dict(status["blob"])
            if status.get("state") == "JOB_STATE_FAILED":
                reason = status.get("error") or status.get("message")
                raise PermanentError(
                    f"Bluesky could not process the video: {reason}",
                    code="bluesky_video_processing_failed",
                )
            return None

        return poll_until(
            look,
            interval=lambda: self.poll_interval,
            deadline=time.monotonic() + VIDEO_PROCESSING_TIMEOUT_SECONDS,
            still_processing=lambda: TransientError(
                "Bluesky is still processing the video", code="bluesky_video_processing_timeout"
            ),
        )

    def prepared_until(self, handle: dict[str, Any]) -> float | None:
        if not handle.get("blobs_at"):
            return None
        return float(handle["blobs_at"]) + BLOB_REUSE_SECONDS

    # -- reconcile and delete --------------------------------------------------------------

    def _get_post(self, did: str, rkey: str, pds: str) -> dict[str, Any] | None:
        response = self.send(
            "GET",
            self.xrpc("com.atproto.repo.getRecord", pds),
            failure="reading a Bluesky post failed",
            params={"repo": did, "collection": POST_COLLECTION, "rkey": rkey},
            timeout=TIMEOUT,
        )
        if response.status_code == 400 and json_body(response).get("error") == "RecordNotFound":
            return None
        if response.status_code >= 300:
            raise classify(response)
        return response.json()

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        """By the record key the attempt chose (getRecord); without one, among the
        account's newest records (listRecords) by text and createdAt."""
        handle = request.handle or {}
        account = request.account
        stored = Session.from_json(account.refresh_token)
        did = handle.get("did") or (stored.did if stored else None)
        name = handle.get("handle") or account.settings.get("handle") or account.external_id
        if not did:
            did = self.session(account).did
        pds = self.account_pds(account)
        view = Session("", "", str(did), str(name or did), pds)
        if handle.get("rkey"):
            found = self._get_post(str(did), str(handle["rkey"]), pds)
            if found is None:
                return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no record under its key")
            return ReconcileResult(
                ReconcileStatus.FOUND, result=self._result(view, found, reconciled=True)
            )
        since = reconcile_since(
            request.irreversible_started_at or handle.get("posted_at"), RECONCILE_CLOCK_SKEW
        )
        for record in self._list_records(str(did), pds):
            value = record.get("value") or {}
            created = parse_time(value.get("createdAt"))
            if value.get("text") == request.text and created is not None and created >= since:
                return ReconcileResult(
                    ReconcileStatus.FOUND, result=self._result(view, record, reconciled=True)
                )
        return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching recent record")

    def _list_records(self, did: str, pds: str) -> list[dict[str, Any]]:
        response = self.send(
            "GET",
            self.xrpc("com.atproto.repo.listRecords", pds),
            failure="listing Bluesky posts failed",
            classify=classify,
            params={"repo": did, "collection": POST_COLLECTION, "limit": RECONCILE_PAGE_SIZE},
            timeout=TIMEOUT,
        )
        return list(response.json().get("records") or [])

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        session = self.session(account)
        self.send(
            "POST",
            self.xrpc("com.atproto.repo.deleteRecord", session.pds),
            failure="Bluesky delete failed",
            classify=classify,
            json={
                "repo": session.did,
                "collection": POST_COLLECTION,
                "rkey": rkey_of(platform_post_id),
            },
            headers={"Authorization": f"Bearer {session.access_jwt}"},
            timeout=TIMEOUT,
        )
