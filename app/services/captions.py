"""AI captions: the prompt, what is done to the model's answers, and the credits they cost.

A request names a topic and, optionally, the platform the caption is for. The model is
asked for `count` captions of about the requested length, never over the platform's
limit; each answer is then cleaned (quotes and labels taken off; hashtags or emoji
removed when the caller asked for none; hashtags past the platform's maximum dropped)
and, when it is still over the platform's limit as intake counts it (app/platforms.py:
X's weighted length, Threads' emoji bytes, YouTube's bytes...), trimmed at the last word
boundary that fits, with an ellipsis. The result is checked with intake's own rules
check, so a caption returned here is accepted as a post's text for that platform.

Credits: one per caption returned. They are taken before the model is asked (so that
concurrent requests cannot overspend), and those of captions not delivered, or of a
failed request, are given back. When the model fails after some captions came (a server
that answers one per request, then times out), those are returned.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.ai_client import ChatModel, complete, generation_deadline
from app.errors import DomainError
from app.platform_rules import ErrorBag, check_platform_rules
from app.platforms import PLATFORMS, find_hashtags
from app.services.ai_credits import give_back, take_credits

log = logging.getLogger(__name__)

TONES = ("professional", "casual", "witty", "enthusiastic", "urgent", "inspirational")
# Characters a caption of each length aims at (a platform's limit may cut it shorter).
LENGTHS = {"short": 80, "medium": 180, "long": 400}
MAX_COUNT = 5
MAX_TOPIC_CHARS = 1000
ELLIPSIS = "…"
# Requests beyond one per caption, for answers that cannot be used. A server that ignores
# `n` answers one choice per request (Ollama); one that refuses `n` above 1 (llama.cpp's
# server: 400) is asked one caption per request.
SPARE_ROUNDS = 2

SYSTEM_PROMPT = (
    "You write captions for social media posts. Answer with the caption text only: no "
    "title, no quotation marks, no notes, no alternatives."
)

_EMOJI_RE = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\u200d\ufe0f\u20e3]"
)
_LABEL_RE = re.compile(r"^\s*(?:caption(?:\s*\d+)?|option\s*\d+|\d+[.)])\s*[:.)-]\s*", re.I)
_QUOTES = "\"'\u201c\u201d\u2018\u2019\u00ab\u00bb"


@dataclass(frozen=True)
class CaptionRequest:
    topic: str
    platform: str | None = None
    tone: str = "professional"
    length: str = "medium"
    include_hashtags: bool = True
    include_emojis: bool = True
    count: int = 1


@dataclass(frozen=True)
class Caption:
    text: str
    character_count: int
    character_limit: int | None
    hashtags: list[str]
    trimmed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "character_count": self.character_count,
            "character_limit": self.character_limit,
            "hashtags": self.hashtags,
            "trimmed": self.trimmed,
        }


def count_for(platform: str | None, text: str) -> int:
    """The text's length as the platform counts it (characters without a platform)."""
    return PLATFORMS[platform].count_text(text) if platform else len(text)


def target_length(request: CaptionRequest) -> int:
    target = LENGTHS[request.length]
    if request.platform:
        target = min(target, int(PLATFORMS[request.platform].text_limit * 0.9))
    return target


def build_messages(request: CaptionRequest) -> list[dict[str, str]]:
    target = target_length(request)
    if request.platform:
        rules = PLATFORMS[request.platform]
        where = f"a post on {rules.label}"
        limit = f" and never more than {rules.text_limit} {rules.text_unit}"
    else:
        where, limit = "a social media post", ""
    if request.include_hashtags:
        most = PLATFORMS[request.platform].max_hashtags if request.platform else None
        hashtags = f"end with 2 to {min(most or 5, 5)} relevant hashtags"
    else:
        hashtags = "none"
    lines = [
        f"Write one {request.tone} caption for {where}.",
        f"Length: about {target} characters{limit}.",
        f"Hashtags: {hashtags}.",
        "Emojis: " + ("a few, where they fit." if request.include_emojis else "none."),
        f"Topic: {request.topic}",
    ]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "\n".join(lines)},
    ]


def _drop_hashtags(text: str, keep: int) -> str:
    seen = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return match.group(0) if seen <= keep else ""

    return re.sub(r"(?<![\w#])#\w+", replace, text)


def _tidy(text: str) -> str:
    lines = [re.sub(r"[ \t]{2,}", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def clean(text: str, request: CaptionRequest) -> str:
    """The model's answer as a caption: labels and wrapping quotes off, hashtags and emoji
    as asked, nothing a platform refuses outright."""
    text = unicodedata.normalize("NFC", text).strip()
    text = _LABEL_RE.sub("", text, count=1).strip()
    if len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    if not request.include_emojis:
        text = _EMOJI_RE.sub("", text)
    most = PLATFORMS[request.platform].max_hashtags if request.platform else None
    if not request.include_hashtags:
        text = _drop_hashtags(text, 0)
    elif most is not None:
        text = _drop_hashtags(text, most)
    if request.platform == "youtube":
        text = text.replace("<", "").replace(">", "")
    return _tidy(text)


def fit(text: str, platform: str | None) -> tuple[str, bool]:
    """The text within the platform's limit, as intake counts it: unchanged when it fits,
    else cut at the last word boundary that leaves room for an ellipsis."""
    if platform is None:
        return text, False
    rules = PLATFORMS[platform]
    if rules.count_text(text) <= rules.text_limit:
        return text, False

    def fits(end: int) -> bool:
        return rules.count_text(text[:end].rstrip() + ELLIPSIS) <= rules.text_limit

    cuts = [m.start() for m in re.finditer(r"\s+", text)]
    low, high, best = 0, len(cuts) - 1, None
    while low <= high:  # the longest prefix ending at a word boundary that fits
        middle = (low + high) // 2
        if fits(cuts[middle]):
            best, low = cuts[middle], middle + 1
        else:
            high = middle - 1
    if best is None or not text[:best].strip():  # one long word: cut inside it
        best = len(text)
        while best > 0 and not fits(best):
            best = max(0, min(best - 1, int(best * 0.9)))
    trimmed = text[:best].rstrip(" \t\n,;:-\u2013\u2014") + ELLIPSIS
    return trimmed, True


def text_problems(platform: str | None, text: str) -> list[str]:
    """What intake's rules check says about this text as a post's content (media aside)."""
    if platform is None:
        return []
    errors = ErrorBag()
    check_platform_rules(text, [platform], [], {}, errors)
    return list(errors.errors.get("content", []))


def finish(answer: str, request: CaptionRequest) -> Caption | None:
    """A usable caption from one answer, or None (empty, or refused by the rules check)."""
    text, trimmed = fit(clean(answer, request), request.platform)
    if not text.strip(ELLIPSIS).strip() or text_problems(request.platform, text):
        return None
    limit = PLATFORMS[request.platform].text_limit if request.platform else None
    return Caption(text, count_for(request.platform, text), limit, find_hashtags(text), trimmed)


def ask(model: ChatModel, request: CaptionRequest) -> list[Caption]:
    """Up to `request.count` captions from the model, all within its one deadline."""
    messages = build_messages(request)
    captions: list[Caption] = []
    one_at_a_time = False
    with generation_deadline(model):
        for _round in range(request.count + SPARE_ROUNDS):
            wanted = request.count - len(captions)
            if wanted <= 0:
                break
            try:
                answers = complete(model, messages, 1 if one_at_a_time else wanted)
            except DomainError as exc:
                if exc.code == "ai_request_rejected" and not one_at_a_time and wanted > 1:
                    one_at_a_time = True
                    continue
                if captions:  # keep what came; the others' credits are given back
                    log.warning(
                        "AI captions: %d of %d, then %s", len(captions), request.count, exc.code
                    )
                    break
                raise
            for answer in answers[:wanted]:
                caption = finish(answer, request)
                if caption is not None:
                    captions.append(caption)
    return captions


def generate_captions(
    session: Session,
    model: ChatModel,
    organisation_id: int,
    request: CaptionRequest,
    monthly_credits: int,
    now: datetime,
) -> tuple[list[Caption], int]:
    """The captions and the organisation's credits left after paying for them."""
    remaining = take_credits(session, organisation_id, request.count, monthly_credits, now)
    try:
        captions = ask(model, request)
    except BaseException:
        give_back(session, organisation_id, request.count, now)
        raise
    if not captions:
        give_back(session, organisation_id, request.count, now)
        raise DomainError(
            "The caption model answered, but with nothing usable as a caption; try again "
            "(no credits were used).",
            code="ai_bad_answer",
            status=502,
            details={"model": [model.model]},
        )
    unused = request.count - len(captions)
    give_back(session, organisation_id, unused, now)
    return captions, remaining + unused
