"""The container lifecycle's handlers, served by Instagram and Threads (and, for
Instagram accounts connected through Facebook Login, on Facebook's host): POST
/{user-id}/{create_edge} (create), POST /{user-id}/{publish_edge} (publish, under the
24 h cap), GET /{id} (a container's status or a published media object), GET
/{user-id}/{create_edge} (the published media), and DELETE /{id} where the platform has it.

Each handler takes the platform's guard and `ContainerPlatform` first; `container_routes`
binds them into a platform's routing table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from flask import Response

from sandbox.core import Route, SandboxState, json_response, state
from sandbox.graph import (
    GraphGuard,
    answer_published,
    buc_usage,
    container_status,
    failed_container_error,
    get_container,
    get_media,
    graph_params,
    invalid_parameter,
    listing,
    media_of,
    new_container,
    note_publish,
    object_not_found,
    pick_fields,
    publishes_in_window,
    quota_exhausted,
    requested_fields,
    store_media,
)
from sandbox.insights import graph_account_fields


@dataclass(frozen=True)
class ContainerPlatform:
    """Where Instagram's container API and Threads' differ; `container_routes` serves
    both with the same handlers."""

    platform: str
    usage_type: str
    daily_post_cap: int
    # The subcode of the posts-per-24 h cap's error (None: the platform names none).
    quota_subcode: int | None
    # POST /{user-id}/{create_edge} makes a container; GET on it lists published media.
    create_edge: str
    # POST /{user-id}/{publish_edge} publishes a container (also the endpoint's name).
    publish_edge: str
    # The container field holding the post's text, which the ledger records.
    text_field: str
    # One create call's parameters checked: the container's fields, or the error.
    validate: Callable[[SandboxState, str, dict[str, Any]], dict[str, Any] | Response]
    # The media object publishing makes of a container: (container, media id, time).
    published_media: Callable[[dict[str, Any], str, float], dict[str, Any]]
    # Statuses that publishing refuses with the platform's own error; any other status
    # but FINISHED (or ERROR from a failed pull) gets a plain invalid parameter.
    status_refusals: Mapping[str, Callable[[], Response]]
    # What GET /{container-id} shows besides the id: (container, status) -> fields.
    status_fields: Callable[[dict[str, Any], str], dict[str, Any]]
    # Which published media the create edge's listing shows (None: all of them).
    listed: Callable[[dict[str, Any]], bool] | None = None
    # Whether DELETE /{media-id} takes a published post down (Threads yes, Instagram no).
    deletable: bool = False


# GET /{id} for a container or a published media object: (version, id) → the answer, or
# None when the id is neither (a host serving other objects too answers for those).
ObjectReader = Callable[[str, str], Response | None]


def create_container(
    guard: GraphGuard, api: ContainerPlatform, version: str, user_id: str
) -> Response:
    owner, failure = guard.check_account(version, user_id, publishing=True)
    if failure is not None:
        return failure
    fields = api.validate(state, owner, graph_params())
    if isinstance(fields, Response):
        return fields
    container = new_container(state, api.platform, owner, fields)
    return json_response({"id": container["id"]})


def publish(guard: GraphGuard, api: ContainerPlatform, version: str, user_id: str) -> Response:
    owner, failure = guard.check_account(version, user_id, publishing=True)
    if failure is not None:
        return failure
    creation_id = str(graph_params().get("creation_id") or "")
    if not creation_id:
        return invalid_parameter("The parameter creation_id is required")
    container = get_container(state, api.platform, creation_id)
    if container is None or container["owner"] != owner:
        return object_not_found(creation_id, "post")
    if container["params"].get("is_carousel_item"):
        return invalid_parameter("A carousel item cannot be published on its own")
    with state.lock:
        stamps = publishes_in_window(state, api.platform, owner)
        status = container_status(state, api.platform, container)
        refusal = api.status_refusals.get(status)
        if refusal is not None:
            return refusal()
        failed = failed_container_error(state, api.platform, container)
        if status == "ERROR" and failed is not None:
            return failed  # its media could not be pulled
        if status != "FINISHED":
            return invalid_parameter(f"The media container is {status} and cannot be published")
        cap = api.daily_post_cap
        if len(stamps) >= cap:
            return quota_exhausted(owner, api.usage_type, stamps[0], cap, api.quota_subcode)
        media = _publish_container(state, api, container)
    percent = min(99, (len(stamps) + 1) * 100 // cap)
    usage = buc_usage(owner, api.usage_type, percent)
    return answer_published(state, api.platform, {"id": media["id"]}, usage)


def find_object(
    guard: GraphGuard, api: ContainerPlatform, version: str, object_id: str
) -> Response | None:
    container = get_container(state, api.platform, object_id)
    media = get_media(state, api.platform, object_id) if container is None else None
    if container is None and media is None:
        return None
    owner = (container or media or {}).get("owner")
    _, failure = guard.check(version, publishing=False, account=owner)
    if failure is not None:
        return failure
    if container is not None:
        status = container_status(state, api.platform, container)
        item = {"id": object_id, **api.status_fields(container, status)}
        return json_response(pick_fields(item, requested_fields(("id",))))
    return json_response(pick_fields(media or {}, requested_fields(("id",))))


def read_object(
    guard: GraphGuard, api: ContainerPlatform, version: str, object_id: str
) -> Response:
    found = find_object(guard, api, version, object_id)
    if found is not None:
        return found
    _, failure = guard.check(version, publishing=False)
    return failure or graph_account_fields(api.platform, object_id) or object_not_found(object_id)


def list_published(
    guard: GraphGuard, api: ContainerPlatform, version: str, user_id: str
) -> Response:
    owner, failure = guard.check_account(version, user_id, publishing=False)
    if failure is not None:
        return failure
    owned = media_of(state, api.platform, owner)
    shown = owned if api.listed is None else [m for m in owned if api.listed(m)]
    return listing(shown, requested_fields(("id",)))


def delete_media(
    guard: GraphGuard, api: ContainerPlatform, version: str, object_id: str
) -> Response:
    _owner, failure = guard.check(version, publishing=False)
    if failure is not None:
        return failure
    with state.lock:
        media = state.store(api.platform).setdefault("media", {}).pop(object_id, None)
    if media is None:
        return object_not_found(object_id)
    state.delete(api.platform, object_id)
    return json_response({"success": True})


def container_routes(
    guard: GraphGuard,
    api: ContainerPlatform,
    *,
    serve_reads: bool = True,
    endpoint_prefix: str = "",
) -> tuple[list[Route], ObjectReader]:
    """The container lifecycle's rows of a routing table, bound to one platform's guard,
    and the reader of its containers and media. A host that serves other objects at GET
    /{id} too (graph.facebook.com: Pages' posts, and Instagram's containers for accounts
    connected through Facebook Login) passes `serve_reads=False` and asks the reader
    first."""
    user_edge = "/<version>/<user_id>/"
    name = endpoint_prefix
    routes = [
        Route(
            "POST",
            user_edge + api.create_edge,
            partial(create_container, guard, api),
            name + "create_container",
        ),
        Route(
            "POST",
            user_edge + api.publish_edge,
            partial(publish, guard, api),
            name + api.publish_edge,
        ),
    ]
    if serve_reads:
        routes.append(
            Route("GET", "/<version>/<object_id>", partial(read_object, guard, api), "read_object")
        )
    if api.deletable:
        routes.append(
            Route(
                "DELETE",
                "/<version>/<object_id>",
                partial(delete_media, guard, api),
                "delete_media",
            )
        )
    routes.append(
        Route(
            "GET",
            user_edge + api.create_edge,
            partial(list_published, guard, api),
            f"{name}list_{api.create_edge}",
        )
    )
    return routes, partial(find_object, guard, api)


def _publish_container(
    state: SandboxState, api: ContainerPlatform, container: dict[str, Any]
) -> dict[str, Any]:
    """Turn a FINISHED container into published media: once, under the state lock."""
    media_id = str(state.next_id())
    media = api.published_media(container, media_id, time.time())
    owner = container["owner"]
    container["media_id"] = media_id
    store_media(state, api.platform, media)
    note_publish(state, api.platform, owner)
    text = container[api.text_field]
    reply_to = container["params"].get("reply_to_id")
    state.record(
        api.platform, owner, media_id, text, container["media"], container["params"], reply_to
    )
    return media
