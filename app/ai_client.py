"""The operator's language model: any OpenAI-compatible chat-completions endpoint (OpenAI,
Ollama, vLLM, a llama.cpp server), reached through the `openai` package.

Every request of one generation runs under one total deadline (`CRIER_AI_DEADLINE`):
the client's HTTP transport is the project's deadline transport (app/http_deadline.py),
and each request is stamped with the generation's end, so neither a server that trickles
its answer nor the client's own retry (one, whose wait is cut to the time left) keeps a
request thread past it. Failures become domain errors with precise codes: the deadline
504 `ai_timeout`, the model's server 502 `ai_*`. The API key is never logged and never
part of an answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import httpx
import openai
from openai import OpenAI

from app.config import Settings
from app.errors import DomainError
from app.http_deadline import deadline_client

log = logging.getLogger(__name__)

# One retry of a rate-limited, failed or timed-out request, inside the same deadline.
MAX_RETRIES = 1
CONNECT_TIMEOUT = 10.0
VARIABLES = "CRIER_AI_BASE_URL, CRIER_AI_MODEL and CRIER_AI_API_KEY"

_ends_at: ContextVar[float | None] = ContextVar("crier_ai_deadline", default=None)


@dataclass(frozen=True)
class ChatModel:
    """Where the model is, which one, its key, and the total seconds a generation may take."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    deadline: float = 30.0


def configured_model(settings: Settings) -> ChatModel:
    """The model the operator configured; 501 `ai_not_configured` without one."""
    if not settings.ai_base_url or not settings.ai_model:
        missing = [
            name
            for name, value in (
                ("CRIER_AI_BASE_URL", settings.ai_base_url),
                ("CRIER_AI_MODEL", settings.ai_model),
            )
            if not value
        ]
        raise DomainError(
            "AI captions are not configured on this server: the operator sets "
            f"{VARIABLES} (an OpenAI-compatible endpoint, its model and its key; the key "
            f"may stay empty for a local server). Missing: {', '.join(missing)}.",
            code="ai_not_configured",
            status=501,
        )
    return ChatModel(
        settings.ai_base_url, settings.ai_model, settings.ai_api_key, settings.ai_deadline
    )


def _stamp_deadline(request: httpx.Request) -> None:
    ends_at = _ends_at.get()
    if ends_at is not None:
        request.extensions["deadline_at"] = ends_at


class _DeadlineOpenAI(OpenAI):
    """The client, whose retry never outlasts the generation's deadline: an answer asking
    to wait longer than the time left (`Retry-After: 60`) is not retried but reported at
    once, and a backoff is cut to the time left."""

    def _time_left(self) -> float | None:
        ends_at = _ends_at.get()
        return None if ends_at is None else ends_at - time.monotonic()

    def _should_retry(self, response: httpx.Response) -> bool:
        if not super()._should_retry(response):
            return False
        left = self._time_left()
        if left is None:
            return True
        wait = self._parse_retry_after_header(response.headers)
        return left > 0 and (wait is None or wait < left)

    def _calculate_retry_timeout(self, *args: Any, **kwargs: Any) -> float:
        wait = float(super()._calculate_retry_timeout(*args, **kwargs))
        left = self._time_left()
        return wait if left is None else max(0.0, min(wait, left))


@lru_cache(maxsize=8)
def _client(base_url: str, api_key: str, deadline: float) -> OpenAI:
    http_client = deadline_client(
        deadline,
        timeout=httpx.Timeout(deadline, connect=min(CONNECT_TIMEOUT, deadline)),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=10),
    )
    http_client.event_hooks = {"request": [_stamp_deadline], "response": []}
    return _DeadlineOpenAI(
        base_url=base_url,
        api_key=api_key,
        timeout=httpx.Timeout(deadline, connect=min(CONNECT_TIMEOUT, deadline)),
        max_retries=MAX_RETRIES,
        http_client=http_client,
    )


@contextmanager
def generation_deadline(model: ChatModel) -> Iterator[None]:
    """Every request to the model inside this block ends by the same instant."""
    token = _ends_at.set(time.monotonic() + model.deadline)
    try:
        yield
    finally:
        _ends_at.reset(token)


def _redacted(text: str, model: ChatModel) -> str:
    if model.api_key:
        text = text.replace(model.api_key, "[redacted]")
    return text[:500]


def _upstream(model: ChatModel, code: str, message: str, status: int | None = None) -> DomainError:
    details = {"model": [model.model]}
    if status is not None:
        details["upstream_status"] = [str(status)]
    return DomainError(message, code=code, status=502, details=details)


def complete(model: ChatModel, messages: list[dict[str, str]], n: int) -> list[str]:
    """The model's answers (up to `n`; a server may give fewer) to one chat. Only the
    parameters every server takes are sent (reasoning models refuse `max_tokens` and a
    `temperature`): the prompt asks for the length, and the answer is fitted after."""
    client = _client(model.base_url, model.api_key or "unused", model.deadline)
    try:
        completion = client.chat.completions.create(
            model=model.model,
            messages=messages,  # type: ignore[arg-type]
            n=n,
        )
    except openai.APITimeoutError as exc:
        log.warning("AI model %s at %s: no answer within the deadline", model.model, model.base_url)
        raise DomainError(
            f"The caption model did not answer within {model.deadline:g} seconds; try again "
            "later (no credits were used).",
            code="ai_timeout",
            status=504,
        ) from exc
    except openai.APIConnectionError as exc:
        log.warning("AI model at %s unreachable: %s", model.base_url, _redacted(str(exc), model))
        raise _upstream(
            model, "ai_unreachable", "The caption model's server could not be reached."
        ) from exc
    except openai.APIStatusError as exc:
        status = exc.status_code
        log.warning(
            "AI model %s at %s answered HTTP %s: %s",
            model.model,
            model.base_url,
            status,
            _redacted(str(exc.message), model),
        )
        if status == 429:
            code, what = "ai_rate_limited", "is rate limited or out of quota"
        elif status in (401, 403):
            code, what = "ai_auth_failed", "refused the server's credentials"
        elif status == 404:
            code, what = "ai_model_not_found", "does not know the configured model"
        elif status >= 500:
            code, what = "ai_upstream_error", "failed"
        else:
            code, what = "ai_request_rejected", "refused the request"
        message = f"The caption model's server {what} (HTTP {status}); no credits were used."
        raise _upstream(model, code, message, status) from exc
    except openai.APIError as exc:  # a 2xx answer that is not a chat completion
        log.warning("AI model at %s: unreadable answer: %s", model.base_url, exc)
        raise _upstream(
            model, "ai_bad_answer", "The caption model's server gave an unreadable answer."
        ) from exc
    return [
        choice.message.content
        for choice in completion.choices or []
        if choice.message is not None and choice.message.content
    ]
