"""First comments on platforms whose API has comments (Instagram, Facebook, LinkedIn,
YouTube): what every such adapter does the same way. A comment is one request, with no
handle to resume from; before it, the moment it starts is saved (and the item marked
`sending`), so a lost answer is settled by reading the post's comments: the one with the
item's text made since then is adopted instead of commenting twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import timedelta

from workers.adapters.base import (
    FollowUp,
    PublishContext,
    PublishResult,
    ReconcileResult,
    ReconcileStatus,
)
from workers.adapters.kit import reconcile_since

# The platform's clock and ours may drift: a comment listed this much before the saved
# start still counts as the attempt's.
COMMENT_CLOCK_SKEW = timedelta(minutes=2)
# How many of a post's comments one look reads.
COMMENT_PAGE_SIZE = 100

# (comment id, its text, when it was made as a unix time or None when not listed)
Listed = tuple[str, str, float | None]


def begin_comment(context: PublishContext) -> None:
    """Just before the request that posts the comment: its start saved, the item marked."""
    context.save_handle({"started_at": time.time()})
    context.mark_irreversible()


def found_comment(
    item: FollowUp, listed: Iterable[Listed], result_for: Callable[[str], PublishResult]
) -> ReconcileResult:
    """The earliest listed comment with the item's text made since its attempt began."""
    started = item.started_at or (item.handle or {}).get("started_at")
    since = reconcile_since(started, COMMENT_CLOCK_SKEW).timestamp()
    matches = sorted(
        (created or 0.0, comment_id)
        for comment_id, text, created in listed
        if text.strip() == item.text.strip() and (created is None or created >= since)
    )
    if not matches:
        return ReconcileResult(ReconcileStatus.NOT_FOUND, reason="no matching comment")
    result = result_for(matches[0][1])
    return ReconcileResult(ReconcileStatus.FOUND, result, "found among the post's comments")
