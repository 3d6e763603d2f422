"""What each platform accepts: one table of data, read by intake validation and adapters.

Numbers come from the platforms' own docs (docs/platforms.md); where sources conflict the
safer figure is used and noted. Keep platform facts here, not in code paths.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

import regex
from twitter_text import parse_tweet

MB = 1024 * 1024


@dataclass(frozen=True)
class MediaRule:
    """How many media of which kinds a post (or a content type) may carry."""

    required: bool = False
    max_images: int = 0
    max_videos: int = 0
    # May images and videos be mixed in one post (carousels)?
    mixed: bool = False
    image_mime_types: frozenset[str] = frozenset()
    video_mime_types: frozenset[str] = frozenset()
    image_max_bytes: int = 0
    video_max_bytes: int = 0
    video_min_seconds: float | None = None
    video_max_seconds: float | None = None
    # Human phrase used in messages, e.g. "one video".
    needs: str = ""


@dataclass(frozen=True)
class PlatformRules:
    name: str
    label: str
    text_limit: int
    count_text: Callable[[str], int] = len
    text_unit: str = "characters"
    max_hashtags: int | None = None
    max_mentions: int | None = None
    media: MediaRule = field(default_factory=MediaRule)
    # Per content type overrides (Instagram's Story/Reels/Trial Reel).
    content_types: dict[str, MediaRule] = field(default_factory=dict)
    # Requests per rolling window and posts per day that we enforce before calling.
    daily_post_cap: int | None = None
    window_requests: tuple[int, int] | None = None  # (requests, seconds)
    # Whether uploads and processing can be done ahead of the instant without making
    # anything public (TikTok's Direct Post publishes as soon as processing ends).
    prepares_ahead: bool = True
    # The limit on the text when it goes out as the caption of media, where that is
    # lower than `text_limit` (Telegram: 4,096 for a message, 1,024 for a caption).
    caption_limit: int | None = None
    # What the platform's API can post under a post, right after it: a first comment (a
    # comment, or a reply where comments are replies) and a thread (a chain of replies,
    # each answering the one before). Intake refuses what a platform cannot do.
    first_comment: bool = False
    threads: bool = False
    # The longest first comment, where comments have their own limit (None: text_limit).
    comment_limit: int | None = None


JPEG = frozenset({"image/jpeg"})
JPEG_PNG = frozenset({"image/jpeg", "image/png"})
WEB_IMAGES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
MP4_MOV = frozenset({"video/mp4", "video/quicktime"})
MP4_MOV_WEBM = frozenset({"video/mp4", "video/quicktime", "video/webm"})

_URL_RE = re.compile(r"https?://[^\s]+", re.IGNORECASE)
_HASHTAG_RE = re.compile(r"(?<![\w#])#\w+", re.UNICODE)
_MENTION_RE = re.compile(r"(?<![\w@])@[\w.]+", re.UNICODE)


# twitter-text's URL pattern backtracks badly on long dotted runs ("a.a.a.…"): 500
# characters of them cost a second. Texts past these bounds, which are far over X's 280
# anyway unless made of long URLs, are counted by the linear approximation below.
TWITTER_TEXT_MAX_INPUT = 1000
TWITTER_TEXT_MAX_DOTS_PER_WORD = 32


def count_x_weighted(text: str) -> int:
    """X's weighted length by twitter-text v3 (the twitter-text-parser package): URLs,
    bare domains included, count 23; emoji, ZWJ sequences included, count 2; CJK 2."""
    if text.isascii() and "." not in text:
        # No URL without a dot, no emoji in ASCII: every character weighs one, after
        # twitter-text turns each line ending into one "\n".
        return len(text) - text.count("\r\n")
    text = unicodedata.normalize("NFC", text)
    if len(text) <= TWITTER_TEXT_MAX_INPUT and all(
        word.count(".") <= TWITTER_TEXT_MAX_DOTS_PER_WORD for word in text.split()
    ):
        return int(parse_tweet(text).weightedLength)
    return _approximate_x_weight(text)


def _approximate_x_weight(text: str) -> int:
    """Linear: explicit http(s) URLs count 23, other characters by twitter-text's ranges."""
    total = 0
    position = 0
    for match in _URL_RE.finditer(text):
        total += _weigh(text[position : match.start()]) + 23
        position = match.end()
    return total + _weigh(text[position:])


def _weigh(chunk: str) -> int:
    weight = 0
    for char in chunk:
        code = ord(char)
        light = code <= 4351 or 8192 <= code <= 8205 or 8208 <= code <= 8223 or 8242 <= code <= 8247
        weight += 1 if light else 2
    return weight


def count_threads(text: str) -> int:
    """Threads counts emoji by their UTF-8 bytes, other characters as one."""
    return sum(len(c.encode()) if ord(c) > 0xFFFF else 1 for c in text)


def count_utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def count_utf8_bytes(text: str) -> int:
    return len(text.encode())


def count_graphemes(text: str) -> int:
    """Bluesky counts user-perceived characters (extended grapheme clusters): an emoji
    with skin tone or a family ZWJ sequence is one."""
    return len(regex.findall(r"\X", unicodedata.normalize("NFC", text)))


# Mastodon counts every URL as 23 characters and a mention by its local part only
# (@user@example.social counts as @user).
MASTODON_URL_CHARS = 23
_MASTODON_MENTION_RE = re.compile(r"(?<![\w@])@(\w+)@[\w.-]+\w", re.UNICODE)


def count_mastodon(text: str) -> int:
    """Mastodon's length: URLs count 23, remote mentions by their local part."""
    text = _URL_RE.sub("x" * MASTODON_URL_CHARS, text)
    text = _MASTODON_MENTION_RE.sub(lambda match: "@" + match.group(1), text)
    return len(text)


def find_hashtags(text: str) -> list[str]:
    """The hashtags of a text as intake counts them, in order."""
    return _HASHTAG_RE.findall(text)


def count_hashtags(text: str) -> int:
    return len(find_hashtags(text))


def count_mentions(text: str) -> int:
    return len(_MENTION_RE.findall(text))


PLATFORMS: dict[str, PlatformRules] = {
    "instagram": PlatformRules(
        name="instagram",
        label="Instagram",
        text_limit=2200,
        # The API reference still says 30, but the product cap is 5 since Dec 2025.
        max_hashtags=5,
        max_mentions=20,
        media=MediaRule(
            required=True,
            max_images=10,
            max_videos=10,
            mixed=True,
            image_mime_types=JPEG,
            video_mime_types=MP4_MOV,
            image_max_bytes=8 * MB,
            video_max_bytes=300 * MB,
            video_min_seconds=3,
            video_max_seconds=15 * 60,
            needs="at least one image or video",
        ),
        content_types={
            "Post": MediaRule(
                required=True,
                max_images=10,
                max_videos=10,
                mixed=True,
                image_mime_types=JPEG,
                video_mime_types=MP4_MOV,
                image_max_bytes=8 * MB,
                video_max_bytes=300 * MB,
                video_min_seconds=3,
                video_max_seconds=15 * 60,
                needs="at least one image or video",
            ),
            "Story": MediaRule(
                required=True,
                max_images=1,
                max_videos=1,
                image_mime_types=JPEG,
                video_mime_types=MP4_MOV,
                image_max_bytes=8 * MB,
                video_max_bytes=100 * MB,
                video_min_seconds=3,
                video_max_seconds=60,
                needs="exactly one image or video",
            ),
            "Reels": MediaRule(
                required=True,
                max_videos=1,
                video_mime_types=MP4_MOV,
                video_max_bytes=300 * MB,
                video_min_seconds=3,
                video_max_seconds=15 * 60,
                needs="exactly one video",
            ),
            "Trial Reel": MediaRule(
                required=True,
                max_videos=1,
                video_mime_types=MP4_MOV,
                video_max_bytes=300 * MB,
                video_min_seconds=3,
                video_max_seconds=15 * 60,
                needs="exactly one video",
            ),
        },
        # 100 (guide) vs 50 (reference) vs 25 (old): the reference's 50 until the
        # account's content_publishing_limit says otherwise.
        daily_post_cap=50,
        first_comment=True,
    ),
    "facebook": PlatformRules(
        name="facebook",
        label="Facebook",
        text_limit=63206,
        media=MediaRule(
            max_images=10,
            max_videos=1,
            image_mime_types=JPEG_PNG,
            video_mime_types=MP4_MOV,
            image_max_bytes=4 * MB,
            video_max_bytes=1024 * MB,
            needs="up to 10 images or one video",
        ),
        content_types={
            "reel": MediaRule(
                required=True,
                max_videos=1,
                video_mime_types=MP4_MOV,
                video_max_bytes=1024 * MB,
                video_min_seconds=3,
                video_max_seconds=90,
                needs="exactly one video",
            ),
            "video": MediaRule(
                required=True,
                max_videos=1,
                video_mime_types=MP4_MOV,
                video_max_bytes=1024 * MB,
                needs="exactly one video",
            ),
        },
        daily_post_cap=None,
        first_comment=True,
        comment_limit=8000,
    ),
    "threads": PlatformRules(
        name="threads",
        label="Threads",
        text_limit=500,
        count_text=count_threads,
        media=MediaRule(
            max_images=20,
            max_videos=20,
            mixed=True,
            image_mime_types=JPEG_PNG,
            video_mime_types=MP4_MOV,
            image_max_bytes=8 * MB,
            video_max_bytes=1024 * MB,
            video_max_seconds=300,
            needs="up to 20 images or videos",
        ),
        daily_post_cap=250,
        first_comment=True,
        threads=True,
    ),
    "x": PlatformRules(
        name="x",
        label="X",
        text_limit=280,
        count_text=count_x_weighted,
        text_unit="weighted characters",
        media=MediaRule(
            max_images=4,
            max_videos=1,
            image_mime_types=WEB_IMAGES,
            video_mime_types=frozenset({"video/mp4", "video/quicktime"}),
            image_max_bytes=5 * MB,
            video_max_bytes=512 * MB,
            video_min_seconds=0.5,
            video_max_seconds=140,
            needs="up to 4 images or one video",
        ),
        window_requests=(100, 15 * 60),
        first_comment=True,
        threads=True,
    ),
    "linkedin": PlatformRules(
        name="linkedin",
        label="LinkedIn",
        text_limit=3000,
        media=MediaRule(
            max_images=20,
            max_videos=1,
            image_mime_types=frozenset({"image/jpeg", "image/png", "image/gif"}),
            video_mime_types=frozenset({"video/mp4"}),
            image_max_bytes=36 * MB,
            video_max_bytes=500 * MB,
            video_min_seconds=3,
            video_max_seconds=30 * 60,
            needs="up to 20 images or one video",
        ),
        daily_post_cap=150,
        first_comment=True,
        comment_limit=1250,
    ),
    "tiktok": PlatformRules(
        name="tiktok",
        label="TikTok",
        text_limit=2200,
        count_text=count_utf16,
        text_unit="UTF-16 code units",
        media=MediaRule(
            required=True,
            max_videos=1,
            video_mime_types=MP4_MOV_WEBM,
            video_max_bytes=4096 * MB,
            video_min_seconds=3,
            video_max_seconds=600,
            needs="exactly one video",
        ),
        daily_post_cap=15,
        prepares_ahead=False,
    ),
    "youtube": PlatformRules(
        name="youtube",
        label="YouTube",
        # The description is the post text: at most 5000 bytes.
        text_limit=5000,
        count_text=count_utf8_bytes,
        text_unit="bytes",
        media=MediaRule(
            required=True,
            max_videos=1,
            video_mime_types=frozenset({"video/mp4", "video/quicktime", "video/webm"}),
            video_max_bytes=256 * 1024 * MB,
            needs="exactly one video",
        ),
        daily_post_cap=100,
        first_comment=True,
        comment_limit=10000,
    ),
    "telegram": PlatformRules(
        name="telegram",
        label="Telegram",
        # A message's text; with media the text is the caption (caption_limit). Telegram
        # counts in UTF-16 code units (its entity offsets are UTF-16).
        text_limit=4096,
        caption_limit=1024,
        count_text=count_utf16,
        text_unit="UTF-16 code units",
        media=MediaRule(
            # One photo or video, or an album (sendMediaGroup) of 2 to 10, mixed.
            max_images=10,
            max_videos=10,
            mixed=True,
            image_mime_types=frozenset({"image/jpeg", "image/png", "image/webp"}),
            video_mime_types=frozenset({"video/mp4"}),
            image_max_bytes=10 * MB,
            video_max_bytes=50 * MB,
            needs="up to 10 photos or videos",
        ),
        # The Bot API's advice: about 20 messages a minute into one group or channel.
        window_requests=(20, 60),
    ),
    "discord": PlatformRules(
        name="discord",
        label="Discord",
        text_limit=2000,
        media=MediaRule(
            # Files attached to the message (multipart), 10 MiB each without boosts.
            max_images=10,
            max_videos=10,
            mixed=True,
            image_mime_types=WEB_IMAGES,
            video_mime_types=MP4_MOV_WEBM,
            image_max_bytes=10 * MB,
            video_max_bytes=10 * MB,
            needs="up to 10 files",
        ),
        # Webhooks take about 5 requests per 2 seconds and 30 messages a minute per channel.
        window_requests=(30, 60),
    ),
    "bluesky": PlatformRules(
        name="bluesky",
        label="Bluesky",
        # 300 graphemes (and at most 3000 UTF-8 bytes, which 300 graphemes rarely reach).
        text_limit=300,
        count_text=count_graphemes,
        text_unit="graphemes",
        media=MediaRule(
            max_images=4,
            max_videos=1,
            image_mime_types=WEB_IMAGES,
            video_mime_types=frozenset({"video/mp4"}),
            # The lexicon now allows 2 MB images and 300 MB videos ("formerly" 1 MB and
            # 100 MB); the older, safer figures hold until every PDS takes the new ones.
            image_max_bytes=1_000_000,
            video_max_bytes=100 * MB,
            needs="up to 4 images or one video",
        ),
        # Writes cost 3 points of 5,000 an hour per account: about 1,666 posts an hour.
        window_requests=(1666, 3600),
        # Replies (record.reply): a first comment is a reply, as is each thread item.
        first_comment=True,
        threads=True,
    ),
    "mastodon": PlatformRules(
        name="mastodon",
        label="Mastodon",
        # The default instance's limits; the adapter applies each instance's own (GET
        # /api/v2/instance) at publish.
        text_limit=500,
        count_text=count_mastodon,
        media=MediaRule(
            max_images=4,
            max_videos=1,
            image_mime_types=WEB_IMAGES,
            video_mime_types=MP4_MOV_WEBM,
            image_max_bytes=16 * MB,
            video_max_bytes=99 * MB,
            needs="up to 4 images or one video",
        ),
        # 300 requests per 5 minutes per account.
        window_requests=(300, 300),
        # Replies (in_reply_to_id): a first comment is a reply, as is each thread item.
        first_comment=True,
        threads=True,
    ),
    "pinterest": PlatformRules(
        name="pinterest",
        label="Pinterest",
        # The post text is the Pin's description: 500 characters as Pinterest shows it (the
        # API schema says 800; the safer figure is used).
        text_limit=500,
        media=MediaRule(
            required=True,
            max_images=5,
            max_videos=1,
            image_mime_types=frozenset(
                {"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"}
            ),
            video_mime_types=frozenset({"video/mp4", "video/quicktime", "video/x-m4v"}),
            image_max_bytes=20 * MB,
            video_max_bytes=2048 * MB,
            video_min_seconds=4,
            video_max_seconds=15 * 60,
            needs="one to five images or one video",
        ),
    ),
    "wordpress": PlatformRules(
        name="wordpress",
        label="WordPress",
        # A post's content has no limit of WordPress's own; Crier's content cap applies.
        text_limit=100_000,
        media=MediaRule(
            max_images=10,
            max_videos=10,
            mixed=True,
            image_mime_types=WEB_IMAGES,
            video_mime_types=MP4_MOV_WEBM,
            # The site's upload limit is its own (PHP upload_max_filesize): these are
            # Crier's bounds, and a site that takes less refuses the upload.
            image_max_bytes=10 * MB,
            video_max_bytes=100 * MB,
            needs="up to 10 images or videos (the first image is the featured image)",
        ),
        # POST /wp/v2/comments under the post; a comment has no limit of its own either.
        first_comment=True,
    ),
}

PLATFORM_KEYS = tuple(PLATFORMS)

# The most items a thread (platform_content.<platform>.thread) may carry after its post.
MAX_THREAD_ITEMS = 25

# Meta's Graph API version, spoken by the Facebook and Instagram adapters and connect flows.
GRAPH_VERSION = "v25.0"
# An Instagram account's settings["login"]: how it connected, hence where it publishes.
# Accounts without one (added by token, or before Facebook Login existed) are Instagram
# Login's.
INSTAGRAM_LOGIN = "instagram"
FACEBOOK_LOGIN = "facebook"

# A Discord account reached through Crier's bot installed in the client's server (the
# OAuth `bot` scope), rather than through a channel webhook.
DISCORD_BOT_LOGIN = "bot"
# A WordPress account that is a blog on WordPress.com (or a Jetpack site), signed in
# through WordPress.com's OAuth, rather than a self-hosted site's application password.
WORDPRESS_COM_LOGIN = "wordpress.com"

# The sign-ins an account of a platform can connect through (`login` on POST
# /accounts/connect), the platform's own first (the default). Instagram professional
# accounts also connect through Facebook Login, by the Facebook Pages they are linked to;
# they then publish on graph.facebook.com with the Page's token. Discord channels also
# connect through Crier's bot, WordPress blogs through WordPress.com.
CONNECT_LOGINS: dict[str, tuple[str, ...]] = {
    "instagram": (INSTAGRAM_LOGIN, FACEBOOK_LOGIN),
    "discord": ("discord", DISCORD_BOT_LOGIN),
    "wordpress": ("wordpress", WORDPRESS_COM_LOGIN),
}


def connect_logins(platform: str) -> tuple[str, ...]:
    return CONNECT_LOGINS.get(platform, (platform,))


def media_rule_for(platform: str, content_type: str | None) -> MediaRule:
    rules = PLATFORMS[platform]
    if content_type and content_type in rules.content_types:
        return rules.content_types[content_type]
    return rules.media
