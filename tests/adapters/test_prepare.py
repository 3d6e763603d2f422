"""Prepare ahead, publish at the instant: the contract every adapter honours.

The pipeline prepares a target by running `publish()` with a `PreparingContext`, which
stops it at `mark_irreversible()`. Preparing must make nothing public; publishing later
with the saved handle must redo no step (no second upload session, no second container)
and make exactly one request that makes the post public. Handles the platform let expire
(containers after 24 h, X media ids) are rebuilt rather than failing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox import create_sandbox_app
from sandbox.core import SandboxState
from sandbox.pinterest import DEFAULT_LOGIN, boards_of
from tests.adapters.conftest import make_request
from tests.adapters.test_interface import EXTERNAL_IDS, TOKENS, RecordingContext, adapter_for
from tests.servers import serve_wsgi
from workers.adapters import adapter_classes
from workers.adapters import x as x_adapter
from workers.adapters.base import (
    CHECK_FRESH_SECONDS,
    CHECKED_KEY,
    PREPARED_KEY,
    Adapter,
    DuplicateError,
    MediaItem,
    PreparingContext,
    PublishRequest,
    ReadyToPublish,
    ReconcileStatus,
    TransientError,
)

DAY = 24 * 60 * 60
FACEBOOK_LOGIN = {"login": "facebook", "page_id": "100000000000001"}
PIN_BOARD = boards_of(DEFAULT_LOGIN)[0]["id"]


@dataclass(frozen=True)
class Case:
    platform: str
    kind: str
    settings: dict[str, Any]
    media: tuple[str, ...]  # "image" | "image2" | "video"
    # The account's settings: Instagram through Facebook Login publishes on the other host.
    account: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("x", "text", {}, ()),
    Case("x", "image", {}, ("image",)),
    Case("x", "multi-image", {}, ("image", "image2")),
    Case("x", "video", {}, ("video",)),
    Case("linkedin", "text", {}, ()),
    Case("linkedin", "image", {}, ("image",)),
    Case("linkedin", "multi-image", {}, ("image", "image2")),
    Case("linkedin", "video", {}, ("video",)),
    Case("facebook", "text", {}, ()),
    Case("facebook", "image", {}, ("image",)),
    Case("facebook", "multi-image", {}, ("image", "image2")),
    Case("facebook", "video", {"videoType": "video"}, ("video",)),
    Case("facebook", "reel", {"videoType": "reel"}, ("video",)),
    Case("instagram", "image", {"contentType": "Post"}, ("image",)),
    Case("instagram", "carousel", {"contentType": "Post"}, ("image", "video")),
    Case("instagram", "reel", {"contentType": "Reels"}, ("video",)),
    Case("instagram", "story", {"contentType": "Story"}, ("image",)),
    Case("instagram", "fb-login-image", {"contentType": "Post"}, ("image",), FACEBOOK_LOGIN),
    Case(
        "instagram",
        "fb-login-carousel",
        {"contentType": "Post"},
        ("image", "video"),
        FACEBOOK_LOGIN,
    ),
    Case("instagram", "fb-login-story", {"contentType": "Story"}, ("image",), FACEBOOK_LOGIN),
    Case("threads", "text", {}, ()),
    Case("threads", "image", {}, ("image",)),
    Case("threads", "video", {}, ("video",)),
    Case("threads", "carousel", {}, ("image", "video")),
    Case("youtube", "video", {"title": "Prepared video"}, ("video",)),
    Case("youtube", "unlisted video", {"title": "Quiet", "privacyStatus": "unlisted"}, ("video",)),
    Case("tiktok", "video", {"privacyLevel": "PUBLIC_TO_EVERYONE"}, ("video",)),
    # Telegram stages nothing (a file sent is a message): the handle only names the chat.
    Case("telegram", "text", {}, ()),
    Case("telegram", "image", {}, ("image",)),
    # Discord reads the channel's server and the bot's id ahead; the message is one call.
    Case("discord", "text", {}, ()),
    Case("discord", "multi-image", {}, ("image", "image2")),
    Case("bluesky", "text", {}, ()),
    Case("bluesky", "image", {"altTexts": ["alt"]}, ("image",)),
    Case("bluesky", "multi-image", {}, ("image", "image2")),
    Case("bluesky", "video", {}, ("video",)),
    Case("mastodon", "text", {}, ()),
    Case("mastodon", "image", {"altTexts": ["alt"]}, ("image",)),
    Case("mastodon", "multi-image", {}, ("image", "image2")),
    Case("mastodon", "video", {"visibility": "unlisted"}, ("video",)),
    Case("pinterest", "image", {"boardId": PIN_BOARD}, ("image",)),
    Case("pinterest", "carousel", {"boardId": PIN_BOARD}, ("image", "image2")),
    Case("pinterest", "video", {"boardId": PIN_BOARD, "coverKeyFrameTime": 1.0}, ("video",)),
    Case("wordpress", "text", {"title": "Prepared", "categories": ["News"]}, ()),
    Case("wordpress", "image", {"title": "Prepared", "tags": ["staged"]}, ("image",)),
    Case("wordpress", "multi-image", {"title": "Prepared"}, ("image", "image2")),
    Case("wordpress", "video", {"title": "Prepared"}, ("video",)),
]


@pytest.fixture(scope="module")
def sandbox_state() -> SandboxState:
    return SandboxState()


@pytest.fixture(scope="module")
def state_sandbox_url(sandbox_state: SandboxState) -> Iterator[str]:
    """A sandbox of this module's own, so tests can age what it holds (expiry)."""
    with serve_wsgi(create_sandbox_app(sandbox_state)) as url:
        yield url


@pytest.fixture
def control(state_sandbox_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=state_sandbox_url, timeout=10) as client:
        client.post("/_reset").raise_for_status()
        yield client
        client.post("/_reset")


@pytest.fixture
def second_image(tmp_path: Path, image_item: MediaItem) -> MediaItem:
    path = tmp_path / "photo2.jpg"
    path.write_bytes(Path(image_item.path).read_bytes())
    return replace(
        image_item,
        id="33333333-3333-4333-8333-333333333333",
        path=str(path),
        public_url="https://crier.example/media/public/photo2-token",
        filename="photo2.jpg",
    )


def _request(case: Case, media: dict[str, MediaItem], text: str | None = None) -> PublishRequest:
    request = make_request(
        case.platform,
        text=text or f"Prepared {case.kind} on {case.platform}",
        settings=dict(case.settings),
        media=[media[name] for name in case.media],
        access_token=TOKENS.get(case.platform, f"{case.platform}-prepare-token"),
        external_id=EXTERNAL_IDS[case.platform],
    )
    return replace(request, account=replace(request.account, settings=dict(case.account)))


def _ledger(control: httpx.Client, platform: str) -> list[dict[str, Any]]:
    return control.get("/_ledger", params={"platform": platform}).json()


def _uploads(control: httpx.Client, platform: str) -> list[dict[str, Any]]:
    return control.get("/_uploads", params={"platform": platform}).json()


def _prepare(adapter: Adapter, request: PublishRequest) -> dict[str, Any]:
    context = PreparingContext()
    with pytest.raises(ReadyToPublish):
        adapter.publish(request, context)
    assert context.handle is not None, "prepare saved no handle"
    return context.handle


@pytest.fixture
def media(
    image_item: MediaItem, second_image: MediaItem, video_item: MediaItem
) -> dict[str, MediaItem]:
    return {"image": image_item, "image2": second_image, "video": video_item}


def test_every_platform_has_a_case_and_says_whether_it_can_prepare() -> None:
    assert {case.platform for case in CASES} == set(adapter_classes())
    for platform, cls in adapter_classes().items():
        assert isinstance(cls.can_prepare, bool), platform
    assert adapter_classes()["tiktok"].can_prepare is False
    assert all(cls.can_prepare for name, cls in adapter_classes().items() if name != "tiktok")


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.platform}-{c.kind}")
def test_prepare_makes_nothing_public_and_publish_redoes_no_step(
    case: Case, http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)

    handle = _prepare(adapter, request)

    assert _ledger(control, case.platform) == [], "preparing made something public"
    uploads_prepared = _uploads(control, case.platform)

    context = RecordingContext()
    # The ledger stamps milliseconds: compare at that precision.
    now = datetime.now(UTC)
    started = now.replace(microsecond=now.microsecond // 1000 * 1000)
    result = adapter.publish(replace(request, handle=handle), context)

    [entry] = _ledger(control, case.platform)
    assert entry["id"] == result.platform_post_id
    assert datetime.fromisoformat(entry["received_at"]) >= started, "public before the instant"
    assert context.irreversible_at is not None
    assert _uploads(control, case.platform) == uploads_prepared, "an upload was redone"

    outcome = adapter.reconcile(
        replace(request, handle=context.handle, irreversible_started_at=started)
    )
    if adapter.cannot_reconcile:  # Telegram: the Bot API cannot read a chat's history
        assert outcome.status == ReconcileStatus.UNKNOWN, outcome.reason
        return
    assert outcome.status == ReconcileStatus.FOUND, outcome.reason
    assert outcome.result is not None
    assert outcome.result.platform_post_id == result.platform_post_id
    assert len(_ledger(control, case.platform)) == 1


PREPARABLE_MEDIA = [
    c for c in CASES if c.media and c.platform != "tiktok" and c.kind != "unlisted video"
]


# What a prepared handle holds for each kind: the ids of everything done ahead.
def _expected_handle_keys(case: Case) -> set[str]:
    if case.platform in ("instagram", "threads"):
        return {"container_id"} | ({"children"} if case.kind == "carousel" else set())
    if case.platform == "x":
        return {"media_ids", "media_expires_at", "user_id", "username", "posted_at"}
    if case.platform == "linkedin":
        return {"media_urns", "media_ready", "posted_at"}
    if case.platform == "facebook":
        return {"multi-image": {"photo_ids"}, "video": {"video_id"}, "reel": {"video_id"}}.get(
            case.kind, set()
        )
    if case.platform == "youtube":
        return {"video_id", "session_uri", "upload_privacy"}
    if case.platform == "discord":
        return {"channel_id", "guild_id", "author_id", "nonce", "posted_at"}
    if case.platform == "telegram":
        return {"chat_id"}
    if case.platform == "bluesky":
        return {"blobs", "blobs_at", "did"} | ({"video_job"} if case.kind == "video" else set())
    if case.platform == "mastodon":
        return {"media_ids", "media_at", "idempotency_key"}
    if case.platform == "pinterest":
        staged = {"media_id", "media_uploaded", "media_ready"} if case.kind == "video" else set()
        return {"board_id", "posted_at"} | staged
    if case.platform == "wordpress":
        return {"categories", "tags", "slug", "posted_at", "media"}
    return set()


@pytest.mark.parametrize("case", PREPARABLE_MEDIA, ids=lambda c: f"{c.platform}-{c.kind}")
def test_uploads_and_processing_happen_while_preparing(
    case: Case,
    http: httpx.Client,
    state_sandbox_url: str,
    control: httpx.Client,
    sandbox_state: SandboxState,
    media: Any,
) -> None:
    """Whatever the platform makes us upload is uploaded (and processed) before the
    instant, and the handle names it; publishing creates no further container."""
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)

    assert _expected_handle_keys(case) <= set(handle), sorted(handle)
    assert handle[PREPARED_KEY] > 0
    opened = _uploads(control, case.platform)
    if case.platform in ("x", "linkedin", "wordpress"):
        assert len(opened) == len(case.media)
    if case.platform == "pinterest":
        assert len(opened) == (1 if case.kind == "video" else 0)
    if case.platform == "youtube" or (case.platform == "facebook" and case.kind == "video"):
        assert len(opened) == 1
    with sandbox_state.lock:
        containers = len(sandbox_state.store(case.platform).get("containers", {}))

    adapter.publish(replace(request, handle=handle), RecordingContext())

    with sandbox_state.lock:
        assert len(sandbox_state.store(case.platform).get("containers", {})) == containers
    assert _uploads(control, case.platform) == opened


def test_a_youtube_video_is_uploaded_private_and_made_public_at_the_instant(
    http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    case = Case("youtube", "video", {"title": "Staged"}, ("video",))
    adapter = adapter_for("youtube", http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)
    token = {"Authorization": f"Bearer {request.account.access_token}"}

    def status_of() -> str:
        answer = http.get(
            f"{state_sandbox_url}/youtube/youtube/v3/videos",
            params={"part": "status", "id": handle["video_id"]},
            headers=token,
        )
        return str(answer.json()["items"][0]["status"]["privacyStatus"])

    assert status_of() == "private"
    staged = adapter.reconcile(replace(request, handle=handle))
    assert staged.status == ReconcileStatus.NOT_FOUND, "a private upload is not the post"
    listed = adapter.reconcile(replace(request, handle=None))  # by the uploads playlist
    assert listed.status == ReconcileStatus.NOT_FOUND, listed.reason

    result = adapter.publish(replace(request, handle=handle), RecordingContext())

    assert result.platform_post_id == handle["video_id"]
    assert status_of() == "public"
    [entry] = _ledger(control, "youtube")
    assert entry["params"]["status"]["privacyStatus"] == "public"


def test_prepare_twice_reuses_the_handle(
    http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    """A prepare retried (a worker died after saving) resumes rather than uploads again."""
    for case in (c for c in PREPARABLE_MEDIA if c.kind in ("video", "carousel")):
        adapter = adapter_for(case.platform, http, state_sandbox_url)
        request = _request(case, media)
        handle = _prepare(adapter, request)
        uploads = _uploads(control, case.platform)
        again = _prepare(adapter, replace(request, handle=handle))
        assert _uploads(control, case.platform) == uploads, case
        assert _ledger(control, case.platform) == [], case
        for key in ("container_id", "video_id", "media_ids", "media_urns", "session_uri"):
            assert again.get(key) == handle.get(key), (case, key)


def _age_containers(state: SandboxState, platform: str, seconds: float) -> None:
    with state.lock:
        for container in state.store(platform).get("containers", {}).values():
            container["created_at"] -= seconds
            container["ready_at"] -= seconds


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.platform in ("instagram", "threads")],
    ids=lambda c: f"{c.platform}-{c.kind}",
)
def test_expired_containers_are_rebuilt(
    case: Case,
    http: httpx.Client,
    state_sandbox_url: str,
    control: httpx.Client,
    sandbox_state: SandboxState,
    media: Any,
) -> None:
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)
    _age_containers(sandbox_state, case.platform, DAY + 60)  # prepared over 24 h ago
    # Readying's look finds it expired and leaves it to publish(), which looks again.
    checked = adapter.check_prepared(replace(request, handle=handle))
    assert CHECKED_KEY not in (checked.handle or {})

    result = adapter.publish(checked, RecordingContext())

    [entry] = _ledger(control, case.platform)
    assert entry["id"] == result.platform_post_id


def test_expired_x_media_is_uploaded_again(
    http: httpx.Client,
    state_sandbox_url: str,
    control: httpx.Client,
    sandbox_state: SandboxState,
    media: Any,
) -> None:
    case = Case("x", "video", {}, ("video",))
    adapter = adapter_for("x", http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)
    assert handle["media_expires_at"] > time.time() + DAY - 120
    # A day later: X dropped the media, and the saved expiry says so.
    with sandbox_state.lock:
        for item in sandbox_state.store("x")["media"].values():
            item["expires_at"] -= DAY + 60
    handle = {**handle, "media_expires_at": int(time.time()) - 60}

    result = adapter.publish(replace(request, handle=handle), RecordingContext())

    [entry] = _ledger(control, "x")
    assert entry["id"] == result.platform_post_id
    assert len(_uploads(control, "x")) == 2
    assert entry["params"]["media"]["media_ids"] != handle["media_ids"]


def test_a_prepared_handle_is_not_taken_for_an_earlier_send(
    http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    """LinkedIn adopts a duplicate only after an attempt that may have posted: a prepare
    posted nothing, so an older post with the same text is refused, not adopted."""
    case = Case("linkedin", "text", {}, ())
    adapter = adapter_for("linkedin", http, state_sandbox_url)
    request = _request(case, media, text="Said once already")
    adapter.publish(request, RecordingContext())
    handle = _prepare(adapter, replace(request, target_id=2))

    with pytest.raises(DuplicateError):
        adapter.publish(replace(request, target_id=2, handle=handle), RecordingContext())
    assert len(_ledger(control, "linkedin")) == 1


@pytest.mark.parametrize(
    "case",
    [
        Case("facebook", "video", {"videoType": "video"}, ("video",)),
        Case("youtube", "video", {"title": "Lost answer"}, ("video",)),
        Case("x", "image", {}, ("image",)),
        Case("instagram", "reel", {"contentType": "Reels"}, ("video",)),
    ],
    ids=lambda c: f"{c.platform}-{c.kind}",
)
def test_a_lost_answer_at_the_instant_is_found_and_never_published_twice(
    case: Case, http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)
    control.post("/_faults", json={case.platform: {"lose_response_every": 1}}).raise_for_status()
    context = RecordingContext()
    started = datetime.now(UTC)

    with pytest.raises(TransientError):
        adapter.publish(replace(request, handle=handle), context)

    [entry] = _ledger(control, case.platform)
    control.post("/_faults", json={}).raise_for_status()
    retry = replace(request, handle=context.handle, irreversible_started_at=started)
    found = adapter.reconcile(retry)
    assert found.status == ReconcileStatus.FOUND, found.reason
    assert found.result is not None and found.result.platform_post_id == entry["id"]
    again = adapter.publish(retry, RecordingContext())
    assert again.platform_post_id == entry["id"]
    assert len(_ledger(control, case.platform)) == 1


# Requests a resumed publish makes before its irreversible one unless `check_prepared`
# made them just before the instant: Instagram and Threads read the container's status
# (it may have expired), a Facebook reel its upload status.
LOOKS_BEFORE_PUBLISHING = {("instagram", None), ("threads", None), ("facebook", "reel")}


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.platform != "tiktok"],
    ids=lambda c: f"{c.platform}-{c.kind}",
)
def test_at_the_instant_only_the_irreversible_request_is_left(
    case: Case, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    sent: list[str] = []

    def count(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.path}")

    with httpx.Client(timeout=10, event_hooks={"request": [count]}) as http:
        adapter = adapter_for(case.platform, http, state_sandbox_url)
        request = _request(case, media)
        handle = _prepare(adapter, request)
        sent.clear()
        # As the pipeline readies the delivery, a few seconds before the instant.
        checked = adapter.check_prepared(replace(request, handle=handle))
        looks = len(sent)
        sent.clear()
        context = RecordingContext()
        marks: list[int] = []
        context.mark_irreversible = lambda: marks.append(len(sent))  # type: ignore[method-assign]

        adapter.publish(checked, context)

    [before] = marks
    assert before == 0, sent[:before]
    looker = (case.platform, None) in LOOKS_BEFORE_PUBLISHING or (
        case.platform,
        case.kind,
    ) in LOOKS_BEFORE_PUBLISHING
    assert looks == int(looker)
    assert (CHECKED_KEY in (checked.handle or {})) == looker
    # The stamp is the request's alone: the handle saved with the outcome never has it.
    assert CHECKED_KEY not in (context.handle or {})
    assert len(_ledger(control, case.platform)) == 1


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if (c.platform, None) in LOOKS_BEFORE_PUBLISHING or c.kind == "reel"],
    ids=lambda c: f"{c.platform}-{c.kind}",
)
def test_without_a_recent_check_publish_looks_before_its_irreversible_request(
    case: Case, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    """A check older than CHECK_FRESH_SECONDS (a delivery held past its instant) is not
    trusted: publish() reads the status again before the irreversible request."""
    sent: list[str] = []
    with httpx.Client(
        timeout=10, event_hooks={"request": [lambda r: sent.append(r.url.path)]}
    ) as http:
        adapter = adapter_for(case.platform, http, state_sandbox_url)
        request = _request(case, media)
        checked = adapter.check_prepared(replace(request, handle=_prepare(adapter, request)))
        stale = dict(checked.handle or {})
        stale[CHECKED_KEY] = {**stale[CHECKED_KEY], "at": time.time() - CHECK_FRESH_SECONDS - 1}
        sent.clear()
        context = RecordingContext()
        marks: list[int] = []
        context.mark_irreversible = lambda: marks.append(len(sent))  # type: ignore[method-assign]
        adapter.publish(replace(checked, handle=stale), context)
    assert marks == [1]
    assert len(_ledger(control, case.platform)) == 1


# (handle stamp, seconds) of the uploads that expire unused: Bluesky blobs, Mastodon media.
UPLOAD_LIFETIMES = {"bluesky": ("blobs_at", 3600), "mastodon": ("media_at", 12 * 3600)}


@pytest.mark.parametrize("case", PREPARABLE_MEDIA, ids=lambda c: f"{c.platform}-{c.kind}")
def test_prepared_until_says_when_to_prepare_again(
    case: Case,
    http: httpx.Client,
    state_sandbox_url: str,
    control: httpx.Client,
    sandbox_state: SandboxState,
    media: Any,
) -> None:
    """Containers and X media expire: `prepared_until` tells the pipeline when, and a
    prepare run after it builds a fresh handle (nothing is published meanwhile)."""
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)
    before = time.time()
    handle = _prepare(adapter, request)
    until = adapter.prepared_until(handle)

    if case.platform in ("instagram", "threads"):
        assert until is not None and before + DAY - 5 <= until <= time.time() + DAY
        _age_containers(sandbox_state, case.platform, DAY + 60)
        aged = {**handle, "created_at": handle["created_at"] - DAY - 60}
    elif case.platform == "x":
        assert until is not None and before + DAY - 700 <= until <= time.time() + DAY
        with sandbox_state.lock:
            for item in sandbox_state.store("x")["media"].values():
                item["expires_at"] -= DAY + 60
        aged = {**handle, "media_expires_at": handle["media_expires_at"] - DAY - 60}
    elif case.platform in UPLOAD_LIFETIMES:
        # Uploads no post uses yet are dropped by the platform after a while.
        stamp, lifetime = UPLOAD_LIFETIMES[case.platform]
        assert until is not None and before + lifetime - 5 <= until <= time.time() + lifetime
        aged = {**handle, stamp: handle[stamp] - lifetime - 60}
    else:
        assert until is None, "nothing else this adapter prepares expires"
        return
    assert (adapter.prepared_until(aged) or 0) < time.time()

    fresh = _prepare(adapter, replace(request, handle=aged))

    lifetime = UPLOAD_LIFETIMES.get(case.platform, ("", DAY))[1]
    assert (adapter.prepared_until(fresh) or 0) > time.time() + min(lifetime - 60, DAY - 700)
    assert _ledger(control, case.platform) == []
    adapter.publish(replace(request, handle=fresh), RecordingContext())
    assert len(_ledger(control, case.platform)) == 1


DELETABLE = {
    ("youtube", "video"): 1,
    ("facebook", "image"): 1,
    ("facebook", "multi-image"): 2,
    ("facebook", "video"): 1,
    ("facebook", "reel"): 1,
    ("wordpress", "image"): 1,
    ("wordpress", "multi-image"): 2,
    ("wordpress", "video"): 1,
}


@pytest.mark.parametrize("case", PREPARABLE_MEDIA, ids=lambda c: f"{c.platform}-{c.kind}")
def test_discarding_a_prepared_target_deletes_what_the_platform_lets_us(
    case: Case, http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)

    deleted = adapter.discard_prepared(request.account, handle)

    assert deleted == DELETABLE.get((case.platform, case.kind), 0)
    assert adapter.discard_prepared(request.account, handle) == 0, "a second discard"
    assert _ledger(control, case.platform) == []
    token = {"Authorization": f"Bearer {request.account.access_token}"}
    if case.platform == "youtube":
        listed = http.get(
            f"{state_sandbox_url}/youtube/youtube/v3/videos",
            params={"part": "status", "id": handle["video_id"]},
            headers=token,
        )
        assert listed.json()["items"] == []
    elif case.platform == "facebook":
        for object_id in handle.get("photo_ids") or [handle.get("video_id")]:
            read = http.get(f"{state_sandbox_url}/facebook/v25.0/{object_id}", headers=token)
            assert read.status_code == 400, read.text


@pytest.mark.parametrize(
    "case",
    [c for c in PREPARABLE_MEDIA if (c.platform, c.kind) in DELETABLE and "image" not in c.kind],
    ids=lambda c: f"{c.platform}-{c.kind}",
)
def test_discard_leaves_a_published_video_alone(
    case: Case, http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)
    context = RecordingContext()
    adapter.publish(replace(request, handle=handle), context)

    assert adapter.discard_prepared(request.account, handle) == 0
    assert adapter.discard_prepared(request.account, context.handle or {}) == 0
    found = adapter.reconcile(
        replace(request, handle=context.handle, irreversible_started_at=datetime.now(UTC))
    )
    assert found.status == ReconcileStatus.FOUND, found.reason


def test_x_video_still_processing_is_waited_for_again_not_uploaded_again(
    http: httpx.Client,
    state_sandbox_url: str,
    control: httpx.Client,
    media: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    control.post("/_faults", json={"x": {"processing_seconds": 1.5}}).raise_for_status()
    case = Case("x", "video", {}, ("video",))
    adapter = adapter_for("x", http, state_sandbox_url)
    request = _request(case, media)
    monkeypatch.setattr(x_adapter, "MEDIA_PROCESSING_TIMEOUT_SECONDS", 0.5)
    context = PreparingContext()

    with pytest.raises(TransientError) as raised:
        adapter.publish(request, context)

    assert raised.value.code == "x_media_processing_timeout"
    assert context.handle is not None and context.handle["media_ready"] is False
    [upload] = _uploads(control, "x")
    monkeypatch.setattr(x_adapter, "MEDIA_PROCESSING_TIMEOUT_SECONDS", 30.0)
    handle = _prepare(adapter, replace(request, handle=context.handle))
    assert handle["media_ready"] is True and handle["media_ids"] == context.handle["media_ids"]
    adapter.publish(replace(request, handle=handle), RecordingContext())
    assert _uploads(control, "x") == [upload]
    [entry] = _ledger(control, "x")
    assert entry["params"]["media"]["media_ids"] == handle["media_ids"]


@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.platform != "tiktok" and c.kind != "unlisted video"],
    ids=lambda c: f"{c.platform}-{c.kind}",
)
def test_a_prepared_handle_after_a_lost_answer_never_posts_twice(
    case: Case, http: httpx.Client, state_sandbox_url: str, control: httpx.Client, media: Any
) -> None:
    """The instant's answer was lost and only the prepared handle was kept: with the
    irreversible marker set, the adapter looks before it sends, and adopts its post."""
    adapter = adapter_for(case.platform, http, state_sandbox_url)
    request = _request(case, media)
    handle = _prepare(adapter, request)
    control.post("/_faults", json={case.platform: {"lose_response_every": 1}}).raise_for_status()
    started = datetime.now(UTC)
    with pytest.raises(TransientError):
        adapter.publish(replace(request, handle=handle), RecordingContext())
    [entry] = _ledger(control, case.platform)
    control.post("/_faults", json={}).raise_for_status()
    if adapter.cannot_reconcile:  # Telegram cannot look: it refuses to send blind
        with pytest.raises(TransientError):
            adapter.publish(
                replace(request, handle=handle, irreversible_started_at=started), RecordingContext()
            )
        assert len(_ledger(control, case.platform)) == 1
        return

    again = adapter.publish(
        replace(request, handle=handle, irreversible_started_at=started), RecordingContext()
    )

    assert again.platform_post_id == entry["id"]
    assert len(_ledger(control, case.platform)) == 1
