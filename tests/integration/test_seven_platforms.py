"""One scheduled post to all seven platforms through the whole pipeline: API → PostgreSQL →
Redis → a real Celery worker → the seven adapters → the sandbox, on time, with every setting
of the API contract's platform_content table arriving under the platform's own field name.

One video post reaches all seven (Instagram as a reel, Facebook as a reel, TikTok and
YouTube need exactly one video). Instagram's altText applies to images only, so a second
post at the same instant carries an image to Instagram.

The sandbox pulls media from the URLs it is given, as the platforms do, so Instagram's
and Threads' files come from Crier's own signed public links, byte for byte.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import Tenant
from tests.integration.conftest import Stack, wait_until
from tests.media_samples import jpeg_bytes, mp4_bytes

LEAD = timedelta(seconds=6)
# A publish may begin at its instant and takes a few round trips to the sandbox.
ON_TIME = timedelta(seconds=4)
FINAL = ("published", "failed", "unconfirmed")

# External ids as the adapters need them: Meta ids go in URL paths, LinkedIn wants a URN.
EXTERNAL_IDS = {
    "instagram": "1784140000000101",
    "facebook": "1784140000000201",
    "threads": "1784140000000301",
    "x": "2244994945",
    "linkedin": "urn:li:person:7000001",
    "tiktok": "tiktok-open-id-1",
    "youtube": "UCsandbox0000000000000001",
}

VIDEO_TEXT = "Seven platforms, one instant."
THREADS_TEXT = "Seven platforms, one instant. (Threads edition)"
IMAGE_TEXT = "The still frame, with a description."

# Every platform_content setting of the API contract, each with a value other than its
# default, so the ledger shows it was sent rather than assumed.
VIDEO_CONTENT: dict[str, Any] = {
    "instagram": {"contentType": "Reels", "settings": {"coverPhotoTimestamp": 2.5}},
    "facebook": {"settings": {"videoType": "reel"}},
    "threads": {"content": THREADS_TEXT},
    "x": {"settings": {"replySettings": "following"}},
    "linkedin": {"settings": {"visibility": "LOGGED_IN_MEMBERS"}},
    "tiktok": {
        "settings": {
            "privacyLevel": "MUTUAL_FOLLOW_FRIENDS",
            "allowComments": True,
            "allowDuet": False,
            "allowStitch": False,
        }
    },
    "youtube": {
        "settings": {
            "title": "Seven platforms",
            "privacyStatus": "unlisted",
            "tags": ["crier", "launch day"],
        }
    },
}
IMAGE_CONTENT: dict[str, Any] = {
    "instagram": {"contentType": "Post", "settings": {"altText": "A red square on white"}},
}
# Where the platform pulls the file from a URL rather than receiving its bytes.
PULLED_VIDEO = ("instagram", "threads")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def upload(tenant: Tenant, name: str, data: bytes) -> dict[str, Any]:
    response = tenant.api.post("/media/upload", files={"file": (name, data)})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def create_post(tenant: Tenant, body: dict[str, Any]) -> str:
    response = tenant.api.post("/posts", json=body)
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert data["status"] == "scheduled"
    assert data["scheduled_for"] == body["scheduled_at"]
    return data["post_id"]


def post_of(tenant: Tenant, post_id: str) -> dict[str, Any]:
    return tenant.api.get(f"/posts/{post_id}").json()["data"]


def test_scheduled_post_reaches_all_seven_platforms_on_time_with_every_setting(
    stack: Stack, tenant: Tenant, make_account: Any, sandbox: httpx.Client
) -> None:
    # A real platform always pulls the media it is pointed at.
    faults = {platform: {"fetch_media": True} for platform in EXTERNAL_IDS}
    sandbox.post("/_faults", json=faults).raise_for_status()
    stack.worker(concurrency=8)
    accounts = {
        platform: make_account(
            tenant,
            platform,
            name=f"{platform} brand",
            access_token=f"{platform}-access-{index}",
            refresh_token=f"{platform}-refresh-{index}",
            external_id=external_id,
        )
        for index, (platform, external_id) in enumerate(EXTERNAL_IDS.items())
    }
    video = upload(tenant, "launch.mp4", mp4_bytes(seconds=12.0))
    image = upload(tenant, "still.jpg", jpeg_bytes())
    assert (video["kind"], image["kind"]) == ("video", "image")

    due = datetime.now(UTC).replace(microsecond=0) + LEAD
    video_post = create_post(
        tenant,
        {
            "content": VIDEO_TEXT,
            "account_ids": list(accounts.values()),
            "scheduled_at": iso(due),
            "media_ids": [video["id"]],
            "platform_content": VIDEO_CONTENT,
        },
    )
    image_post = create_post(
        tenant,
        {
            "content": IMAGE_TEXT,
            "account_ids": [accounts["instagram"]],
            "scheduled_at": iso(due),
            "media_ids": [image["id"]],
            "platform_content": IMAGE_CONTENT,
        },
    )
    assert datetime.now(UTC) < due, "setting up took longer than the lead time"

    def finished() -> dict[str, dict[str, Any]] | None:
        posts = {pid: post_of(tenant, pid) for pid in (video_post, image_post)}
        targets = [t for p in posts.values() for t in p["targets"]]
        return posts if all(t["status"] in FINAL for t in targets) else None

    posts = wait_until(finished, timeout=25, interval=0.25)
    video_targets = {t["platform"]: t for t in posts[video_post]["targets"]}
    [image_target] = posts[image_post]["targets"]
    assert sorted(video_targets) == sorted(EXTERNAL_IDS)
    for target in [*video_targets.values(), image_target]:
        assert target["status"] == "published", target
        assert target["attempts"] == 1, target
        assert target["error"] is None
        assert parse_ts(target["published_at"]) >= due
    assert posts[video_post]["status"] == posts[image_post]["status"] == "published"

    entries = sandbox.get("/_ledger").json()
    assert len(entries) == 8
    by_id = {e["id"]: e for e in entries}

    # On time: never before the instant, and within a few seconds after it.
    lateness = {
        f"{e['platform']}:{e['media'][0]['kind']}": parse_ts(e["received_at"]) - due
        for e in entries
    }
    early = {k: v for k, v in lateness.items() if v < timedelta(0)}
    late = {k: v for k, v in lateness.items() if v > ON_TIME}
    assert not early, f"published before the scheduled instant: {early}"
    assert not late, f"published late: {late}"

    # Each target's id is the one the platform gave; TikTok names a post only once it is
    # public (and moderated), so a MUTUAL_FOLLOW_FRIENDS post is known by its publish_id.
    ledger_of: dict[str, dict[str, Any]] = {}
    for platform, target in video_targets.items():
        if platform == "tiktok":
            [entry] = [e for e in entries if e["platform"] == "tiktok"]
            assert target["platform_post_id"] == entry["params"]["publish_id"]
        else:
            entry = by_id[target["platform_post_id"]]
            assert entry["platform"] == platform
        assert entry["media"][0]["kind"] == "video", entry
        ledger_of[platform] = entry
    image_entry = by_id[image_target["platform_post_id"]]

    # Pulled media came from Crier's signed links: the very bytes that were uploaded.
    video_sha256 = tenant.api.get(f"/media/{video['id']}").json()["data"]["sha256"]
    image_sha256 = tenant.api.get(f"/media/{image['id']}").json()["data"]["sha256"]
    for platform in PULLED_VIDEO:
        [medium] = ledger_of[platform]["media"]
        assert medium["url"].startswith(f"{stack.env['CRIER_PUBLIC_URL']}/media/public/")
        assert medium["content_type"] == "video/mp4", platform
        assert medium["bytes"] == video["size_bytes"], platform
        assert medium["sha256"] == video_sha256, platform
    [medium] = image_entry["media"]
    assert (medium["content_type"], medium["sha256"]) == ("image/jpeg", image_sha256)

    # Each account posts as itself: Meta ids and the LinkedIn URN from the account.
    for platform in ("instagram", "facebook", "threads", "linkedin"):
        assert ledger_of[platform]["account"] == EXTERNAL_IDS[platform]
    assert image_entry["account"] == EXTERNAL_IDS["instagram"]
    assert len({e["account"] for e in ledger_of.values()}) == 7

    # Text, with the Threads override.
    for platform, entry in ledger_of.items():
        expected = THREADS_TEXT if platform == "threads" else VIDEO_TEXT
        assert entry["text"] == expected, platform
    assert image_entry["text"] == IMAGE_TEXT

    # Every setting, under the platform's own name.
    instagram = ledger_of["instagram"]["params"]
    assert instagram["media_type"] == "REELS"  # contentType Reels
    assert instagram["thumb_offset"] == 2500  # coverPhotoTimestamp 2.5 s, in ms
    assert instagram["share_to_feed"] is True
    assert image_entry["params"] == {"media_type": "IMAGE", "alt_text": "A red square on white"}

    facebook = ledger_of["facebook"]["params"]
    assert facebook["edge"] == "video_reels"  # videoType reel
    assert facebook["video_state"] == "PUBLISHED"

    assert ledger_of["threads"]["params"]["media_type"] == "VIDEO"
    assert ledger_of["x"]["params"]["reply_settings"] == "following"
    assert ledger_of["x"]["media"][0]["media_category"] == "tweet_video"
    # LinkedIn's Posts API calls the API contract's LOGGED_IN_MEMBERS "LOGGED_IN".
    assert ledger_of["linkedin"]["params"]["visibility"] == "LOGGED_IN"

    tiktok = ledger_of["tiktok"]["params"]
    assert tiktok["privacy_level"] == "MUTUAL_FOLLOW_FRIENDS"
    assert tiktok["disable_comment"] is False
    assert tiktok["disable_duet"] is True
    assert tiktok["disable_stitch"] is True
    assert tiktok["source"] == "FILE_UPLOAD"

    youtube = ledger_of["youtube"]["params"]
    assert youtube["snippet"]["title"] == "Seven platforms"
    assert youtube["snippet"]["tags"] == ["crier", "launch day"]
    assert youtube["status"]["privacyStatus"] == "unlisted"

    print(
        "\nseven platforms, lateness: "
        + ", ".join(f"{k} {v.total_seconds():.3f}s" for k, v in sorted(lateness.items()))
    )
