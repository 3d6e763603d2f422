"""The data model. PostgreSQL is the source of truth; every timestamp is UTC.

One module per domain: accounts (organisations, keys, profiles, accounts, connect links),
posts (media, posts, targets, attempts, campaigns), webhooks, and ops (heartbeats, service
state, the audit log). Every model and constant is importable from `app.models`, and
importing it maps every table.
"""

from __future__ import annotations

from app.db import Base, UTCDateTime, utcnow
from app.models.accounts import (
    Account,
    AccountStatus,
    ApiKey,
    ConnectLink,
    InstanceApp,
    Organisation,
    Platform,
    Profile,
)
from app.models.ai import AiCreditEvent, AiCreditUsage
from app.models.columns import ENCRYPTED, BigIntId, JSONType
from app.models.new_posts import NEW_POST_COLUMNS, NEW_TARGET_COLUMNS, NewPost, NewTarget
from app.models.ops import AUDIT_ACTIONS, AuditEvent, ServiceState, WorkerHeartbeat
from app.models.posts import (
    FINAL_TARGET_STATUSES,
    METRICS_PENDING,
    OPEN_TARGET_STATUSES,
    PREPARE_IN_FLIGHT,
    PREPARE_PENDING,
    Campaign,
    DiscardedHandle,
    IdempotencyRecord,
    Media,
    Post,
    PostStatus,
    PostTarget,
    PostTargetStep,
    PrepareState,
    PublishAttempt,
    StepStatus,
    TargetStatus,
)
from app.models.webhooks import (
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookEventType,
)

__all__ = [
    "AUDIT_ACTIONS",
    "ENCRYPTED",
    "FINAL_TARGET_STATUSES",
    "METRICS_PENDING",
    "NEW_POST_COLUMNS",
    "NEW_TARGET_COLUMNS",
    "OPEN_TARGET_STATUSES",
    "PREPARE_IN_FLIGHT",
    "PREPARE_PENDING",
    "Account",
    "AccountStatus",
    "AiCreditEvent",
    "AiCreditUsage",
    "ApiKey",
    "AuditEvent",
    "Base",
    "BigIntId",
    "Campaign",
    "ConnectLink",
    "DeliveryStatus",
    "DiscardedHandle",
    "IdempotencyRecord",
    "InstanceApp",
    "JSONType",
    "Media",
    "NewPost",
    "NewTarget",
    "Organisation",
    "Platform",
    "Post",
    "PostStatus",
    "PostTarget",
    "PostTargetStep",
    "PrepareState",
    "Profile",
    "PublishAttempt",
    "ServiceState",
    "StepStatus",
    "TargetStatus",
    "UTCDateTime",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookEvent",
    "WebhookEventType",
    "WorkerHeartbeat",
    "utcnow",
]
