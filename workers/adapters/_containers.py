"""Instagram's and Threads' publishing flow: create the container(s), wait until the
platform has processed them, publish, read the permalink.

The container id is saved before publishing, so a retry or a reconcile asks the
container (PUBLISHED means it already went out) instead of posting again.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.config import Settings
from workers.adapters.base import (
    AccountCredentials,
    Adapter,
    DuplicateError,
    PlatformError,
    PublishContext,
    PublishRequest,
    PublishResult,
    ReconcileResult,
    ReconcileStatus,
    TransientError,
    checked_state,
    resuming_prepared,
    stamp_checked,
    working_handle,
)
from workers.adapters.graph import (
    LISTING_PAGE_SIZE,
    GraphResponse,
    earliest_match,
    graph_call,
    lower_time_bound,
    usage_from_headers,
)
from workers.adapters.kit import poll_until

# A container not published within 24 h of its creation expires (status EXPIRED).
CONTAINER_LIFETIME_SECONDS = 24 * 3600.0
# Containers (Instagram, Threads): poll often and briefly; a container still processing
# after the bound is a TransientError and the next attempt resumes the same container.
CONTAINER_POLL_INTERVAL = 3.0
CONTAINER_MAX_WAIT = 45.0
DEAD_CONTAINER_STATES = frozenset({"ERROR", "EXPIRED"})


@dataclass(frozen=True)
class ContainerPlan:
    """The containers one post needs: carousel children first, then the one to publish
    (its `children` parameter is filled in with the children's ids)."""

    parent: dict[str, str]
    children: list[dict[str, str]] = field(default_factory=list)


class GraphContainerAdapter(Adapter):
    """Instagram and Threads: create container(s), wait for FINISHED, publish, read the
    permalink. The container id is saved before publishing, so a retry or a reconcile
    asks the container (PUBLISHED means it already went out) instead of posting again."""

    api_version: str
    create_edge: str  # POST /{user}/<edge> creates a container
    publish_edge: str  # POST /{user}/<edge> with creation_id publishes it
    text_field: str  # "caption" / "text"
    status_field: str  # where the container's lifecycle state is
    status_detail_field: str  # where the failure detail is on ERROR
    permalink_fields: str

    def __init__(
        self, http: httpx.Client, base_url: str | None = None, settings: Settings | None = None
    ) -> None:
        super().__init__(http, base_url, settings)
        self.poll_interval = CONTAINER_POLL_INTERVAL
        self.max_wait = CONTAINER_MAX_WAIT

    @abstractmethod
    def container_plan(self, request: PublishRequest) -> ContainerPlan:
        """The platform's container parameters for this request's text, media, settings."""

    @abstractmethod
    def container_failure(self, container_id: str, detail: str) -> PlatformError:
        """Classify a container that ended in ERROR, from its status detail."""

    def listing_edge(self, request: PublishRequest) -> str:
        """The listing of the account's recent posts of this kind."""
        return self.create_edge

    def listing_path(self, request: PublishRequest) -> str:
        """Where reconcile looks for the post: the account's listing of this kind."""
        return f"{self.user_path(request)}/{self.listing_edge(request)}"

    def listing_text_field(self, request: PublishRequest) -> str | None:
        """The listed field that holds our text, or None when the kind has no text."""
        return self.text_field

    # -- helpers -------------------------------------------------------------------------

    def api_host(self, account: AccountCredentials) -> str:
        """The host role this account's calls go to (Instagram: by the login it came
        through)."""
        return "api"

    def graph_url(self, path: str, account: AccountCredentials) -> str:
        return self.url(f"/{self.api_version}{path}", self.api_host(account))

    def call(
        self, method: str, path: str, account: AccountCredentials, **kwargs: Any
    ) -> GraphResponse:
        """One Graph call for the account: its host, its token."""
        return graph_call(
            self.http,
            self.platform,
            method,
            self.graph_url(path, account),
            token=account.access_token,
            **kwargs,
        )

    # Whether DELETE /{media-id} exists (Threads: yes; Instagram's API has none).
    deletable: bool = False

    def delete_post(self, account: AccountCredentials, platform_post_id: str) -> None:
        if not self.deletable:
            super().delete_post(account, platform_post_id)
        self.call("DELETE", f"/{platform_post_id}", account)

    def user_path(self, request: PublishRequest) -> str:
        """The account id for paths; `me` resolves to the token's user."""
        return f"/{request.account.external_id or 'me'}"

    def container_state(self, account: AccountCredentials, container_id: str) -> tuple[str, str]:
        fields = f"{self.status_field},{self.status_detail_field},id"
        body = self.call("GET", f"/{container_id}", account, params={"fields": fields}).body
        return str(body.get(self.status_field) or ""), str(body.get(self.status_detail_field) or "")

    def prepared_until(self, handle: dict[str, Any]) -> float | None:
        """A container (and its carousel children, made just before it) expires 24 h after
        the handle's `created_at`; publish() then builds them again."""
        if not handle.get("container_id") or not handle.get("created_at"):
            return None
        return float(handle["created_at"]) + CONTAINER_LIFETIME_SECONDS

    # -- publish -------------------------------------------------------------------------

    def check_prepared(self, request: PublishRequest) -> PublishRequest:
        handle = request.handle or {}
        if not resuming_prepared(request) or not handle.get("container_id"):
            return request
        state, _ = self.container_state(request.account, handle["container_id"])
        # Anything but FINISHED (expired, failed, still processing) is publish()'s to handle.
        return stamp_checked(request, state) if state == "FINISHED" else request

    def publish(self, request: PublishRequest, context: PublishContext) -> PublishResult:
        account = request.account
        checked = checked_state(request)
        handle = working_handle(request)
        state = ""
        if handle.get("container_id") and checked == "FINISHED":
            state = checked  # seen FINISHED by check_prepared a moment before the instant
        elif handle.get("container_id"):
            state, _ = self.container_state(account, handle["container_id"])
            if state == "PUBLISHED":
                return self._adopt_published(request, handle)
            if state in DEAD_CONTAINER_STATES:
                handle = {}  # expired (24 h) or failed: build it again
        # One bound for all the waiting this attempt does (children, then the container).
        deadline = time.monotonic() + self.max_wait
        if not handle.get("container_id"):
            handle = self._create_containers(request, context, handle, deadline)
            state = ""
        container_id = handle["container_id"]
        if state != "FINISHED":  # a prepared container was just seen FINISHED: publish now
            self._wait_finished(account, container_id, deadline)

        context.save_handle(handle)
        context.mark_irreversible()
        response = self.call(
            "POST",
            f"{self.user_path(request)}/{self.publish_edge}",
            account,
            data={"creation_id": container_id},
        )
        media_id = str(response.body.get("id") or "")
        if not media_id:
            # The guide: media_publish may succeed without an id; the container knows.
            return self._adopt_published(request, handle)
        handle["media_id"] = media_id
        context.save_handle(handle)
        return self._result(account, media_id, handle, response.headers)

    def _create_containers(
        self,
        request: PublishRequest,
        context: PublishContext,
        previous: dict[str, Any],
        deadline: float,
    ) -> dict[str, Any]:
        """Create the carousel children (or reuse an earlier attempt's), then the
        container to publish, saving the handle after each step."""
        account = request.account
        plan = self.container_plan(request)
        create_path = f"{self.user_path(request)}/{self.create_edge}"
        parent = dict(plan.parent)
        handle: dict[str, Any] = {"created_at": previous.get("created_at") or time.time()}
        if plan.children:
            child_ids = self._reusable_children(account, previous)
            if child_ids is None:
                child_ids = [
                    str(self.call("POST", create_path, account, data=child).body["id"])
                    for child in plan.children
                ]
            handle["children"] = child_ids
            context.save_handle(handle)
            for child_id in child_ids:
                self._wait_finished(account, child_id, deadline)
            parent["children"] = ",".join(child_ids)
        handle["container_id"] = str(
            self.call("POST", create_path, account, data=parent).body["id"]
        )
        context.save_handle(handle)
        return handle

    def _reusable_children(
        self, account: AccountCredentials, previous: dict[str, Any]
    ) -> list[str] | None:
        """Children an earlier attempt created, if none of them died since."""
        child_ids = previous.get("children")
        if not child_ids or previous.get("container_id"):
            return None
        for child_id in child_ids:
            state, _ = self.container_state(account, child_id)
            if state in DEAD_CONTAINER_STATES:
                return None
        return list(child_ids)

    def _wait_finished(
        self, account: AccountCredentials, container_id: str, deadline: float
    ) -> None:
        """Poll until FINISHED; still processing at the deadline is a TransientError and
        the saved handle lets the next attempt resume this very container."""
        state = ""

        def look() -> bool | None:
            nonlocal state
            state, detail = self.container_state(account, container_id)
            if state == "ERROR":
                raise self.container_failure(container_id, detail)
            if state == "EXPIRED":
                raise TransientError(
                    f"{self.platform} container {container_id} expired before publishing",
                    code=f"{self.platform}_container_expired",
                    details={"container_id": container_id},
                )
            return True if state in ("FINISHED", "PUBLISHED") else None

        poll_until(
            look,
            interval=self.poll_interval,
            deadline=deadline,
            still_processing=lambda: TransientError(
                f"{self.platform} container {container_id} is still "
                f"{state or 'processing'}; the next attempt resumes it",
                code=f"{self.platform}_media_not_ready",
                details={"container_id": container_id},
            ),
        )

    def _adopt_published(self, request: PublishRequest, handle: dict[str, Any]) -> PublishResult:
        if handle.get("media_id"):
            return self._result(request.account, str(handle["media_id"]), handle)
        entry = self._find_in_listing(request, handle)
        if entry is None:
            raise DuplicateError(
                f"{self.platform} container {handle.get('container_id')} is already published, "
                "but its post is not in the account's recent listing",
                code=f"{self.platform}_already_published",
                details={"container_id": handle.get("container_id")},
            )
        return self._listed_result(entry, handle)

    def _result(
        self,
        account: AccountCredentials,
        media_id: str,
        handle: dict[str, Any],
        headers: httpx.Headers | None = None,
    ) -> PublishResult:
        """Read the permalink from the API; the post is out even if that read fails."""
        details: dict[str, Any] = {"container_id": handle.get("container_id")}
        if headers is not None and (usage := usage_from_headers(headers)):
            details["rate_limit"] = usage
        try:
            body = self.call(
                "GET", f"/{media_id}", account, params={"fields": self.permalink_fields}
            ).body
        except PlatformError as exc:
            details["permalink_error"] = exc.code
            return PublishResult(platform_post_id=media_id, url=None, details=details)
        details.update({k: v for k, v in body.items() if k not in ("id", "permalink")})
        return PublishResult(platform_post_id=media_id, url=body.get("permalink"), details=details)

    @staticmethod
    def _listed_result(entry: dict[str, Any], handle: dict[str, Any]) -> PublishResult:
        return PublishResult(
            platform_post_id=str(entry["id"]),
            url=entry.get("permalink"),
            details={"container_id": handle.get("container_id"), "adopted": True},
        )

    # -- reconcile -----------------------------------------------------------------------

    def reconcile(self, request: PublishRequest) -> ReconcileResult:
        """By the saved container's status; else among the account's recent posts."""
        account = request.account
        handle = dict(request.handle or {})
        if handle.get("media_id"):
            result = self._result(account, str(handle["media_id"]), handle)
            return ReconcileResult(ReconcileStatus.FOUND, result, "media id saved")
        container_id = handle.get("container_id")
        if container_id:
            state, _ = self.container_state(account, container_id)
            if state != "PUBLISHED":
                return ReconcileResult(
                    ReconcileStatus.NOT_FOUND, reason=f"container {container_id} is {state}"
                )
        entry = self._find_in_listing(request, handle)
        if entry is not None:
            return ReconcileResult(
                ReconcileStatus.FOUND, self._listed_result(entry, handle), "found in listing"
            )
        if container_id:
            return ReconcileResult(
                ReconcileStatus.UNKNOWN,
                reason=f"container {container_id} is PUBLISHED but its post is not listed",
            )
        return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching recent post")

    def _find_in_listing(
        self, request: PublishRequest, handle: dict[str, Any]
    ) -> dict[str, Any] | None:
        text_field = self.listing_text_field(request)
        fields = ",".join(f for f in ("id", text_field, "timestamp", "permalink") if f)
        body = self.call(
            "GET",
            self.listing_path(request),
            request.account,
            params={"fields": fields, "limit": LISTING_PAGE_SIZE},
        ).body
        entries = [e for e in body.get("data") or [] if isinstance(e, dict) and e.get("id")]
        return earliest_match(entries, text_field, request.text, lower_time_bound(request, handle))
