"""An OpenAI-compatible chat-completions server under /openai/v1, for AI captions.

`POST /openai/v1/chat/completions` answers every model name with deterministic captions
derived from the prompt (the same prompt and choice index give the same text): the
topic after `Topic:`, about the length the prompt asks for (`about N characters`), with
hashtags made of the topic's words and an emoji unless the prompt says `Hashtags: none`
or `Emojis: none`; `n` choices. `GET /openai/v1/models` lists the sandbox's model.

Faults (`POST /_faults {"openai": {...}}`) as for the platforms: `latency_ms`,
`error_rate` with `error_status`, `rate_limit_every` with `retry_after` (429 in OpenAI's
shape), `revoked_tokens` (401 for those API keys); and of its own: `answer` (every
choice is this text), `answer_chars` (every choice is this many characters long),
`max_choices` (at most this many choices, as servers that ignore `n` give one) and
`refuse_n` (400 for `n` above 1, as llama.cpp's server answers).
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from typing import Any

from flask import Response, request

from sandbox.core import FaultStyle, Route, bearer_token, inject_faults, json_response, state

SERVICE = "openai"
BLUEPRINT_NAME = "openai"
MODEL = "crier-sandbox-1"
CREATED = 1767225600  # 2026-01-01, the sandbox model's "release"

OPENERS = (
    "Big news:",
    "Here is something worth your time:",
    "We have been waiting to share this:",
    "Take a minute for this:",
    "Good things are happening:",
    "You asked, we listened:",
)
FILLERS = (
    "It is built for the people who use it every day.",
    "Tell us what you think in the comments.",
    "Every detail was chosen with care.",
    "There is more to come, so stay tuned.",
    "Share it with someone who needs to see it.",
    "Small steps add up to big results.",
    "We could not be prouder of the team behind it.",
    "Find out more at the link in our profile.",
)
EMOJIS = ("🚀", "✨", "🎉", "🔥", "💡", "🙌")
_TOPIC_RE = re.compile(r"Topic:\s*(.+)\Z", re.S)
_TARGET_RE = re.compile(r"about (\d+) characters")


def _error(status: int, message: str, kind: str, code: str | None = None) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return json_response(body, status)


def _rate_limited(retry_after: int) -> Response:
    response = _error(
        429,
        "Rate limit reached for requests per minute. Please try again later.",
        "requests",
        "rate_limit_exceeded",
    )
    response.headers["Retry-After"] = str(retry_after)
    response.headers["x-ratelimit-remaining-requests"] = "0"
    return response


def _unauthorised() -> Response:
    return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")


FAULT_STYLE = FaultStyle(
    rate_limited=_rate_limited,
    error=lambda status: _error(
        status, "The server had an error while processing your request.", "server_error"
    ),
    auth_expired=_unauthorised,
    auth_revoked=_unauthorised,
)


def _extras() -> dict[str, Any]:
    """The service's own fault settings, while faults are set for it."""
    with state.lock:
        if SERVICE not in state.faults:
            return {}
        return dict(state.store(SERVICE).get("extras", {}))


def remember_extras(config: dict[str, Any]) -> None:
    """Keep the service's own settings of a POST /_faults (see the module docstring)."""
    keys = ("answer", "answer_chars", "max_choices", "refuse_n")
    state.store(SERVICE)["extras"] = {k: config[k] for k in keys if k in config}


def _hashtags(topic: str) -> list[str]:
    tags: list[str] = []
    for word in re.findall(r"[A-Za-z0-9]{4,}", topic):
        tag = "#" + word.lower()
        if tag not in tags:
            tags.append(tag)
        if len(tags) == 3:
            break
    return tags or ["#news"]


def caption_for(prompt: str, index: int, answer_chars: int = 0) -> str:
    """The sandbox model's deterministic caption for one choice of a prompt."""
    digest = hashlib.sha256(f"{index}:{prompt}".encode()).digest()
    found = _TOPIC_RE.search(prompt)
    topic = " ".join((found.group(1) if found else prompt[-200:]).split()) or "our news"
    sized = _TARGET_RE.search(prompt)
    target = answer_chars or (int(sized.group(1)) if sized else 180)
    text = f"{OPENERS[digest[0] % len(OPENERS)]} {topic.rstrip('.')}."
    if "Emojis: none" not in prompt:
        text = f"{EMOJIS[digest[1] % len(EMOJIS)]} {text}"
    tags = "" if "Hashtags: none" in prompt else " ".join(_hashtags(topic))
    step = digest[2]
    while len(text) + len(tags) + 2 < target - 30 or (answer_chars and len(text) < target):
        text += " " + FILLERS[step % len(FILLERS)]
        step += 1
    if tags:
        text = f"{text}\n\n{tags}"
    return text[:answer_chars] if answer_chars else text


def _prompt(messages: list[Any]) -> str:
    return "\n".join(
        str(m.get("content") or "") for m in messages if isinstance(m, dict) and m.get("role")
    )


def chat_completions() -> Response:
    fault = inject_faults(state, SERVICE, FAULT_STYLE, bearer_token(), publishing=True)
    if fault is not None:
        return fault
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return _error(400, "We could not parse the JSON body of your request.", "invalid_request")
    model, messages, n = body.get("model"), body.get("messages"), body.get("n", 1)
    if not isinstance(model, str) or not model:
        return _error(400, "you must provide a model parameter", "invalid_request_error")
    if not isinstance(messages, list) or not messages:
        return _error(400, "'messages' must contain at least one message", "invalid_request_error")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        return _error(400, "n must be an integer from 1 to 128", "invalid_request_error")
    extras = _extras()
    if extras.get("refuse_n") and n > 1:  # as llama.cpp's server does
        return _error(400, "Only one completion choice is allowed", "invalid_request_error")
    if extras.get("max_choices"):
        n = min(n, int(extras["max_choices"]))
    prompt = _prompt(messages)
    texts = [
        str(extras["answer"])
        if "answer" in extras
        else caption_for(prompt, index, int(extras.get("answer_chars") or 0))
        for index in range(n)
    ]
    prompt_tokens = max(1, len(prompt) // 4)
    completion_tokens = sum(max(1, len(t) // 4) for t in texts)
    return json_response(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
                for index, text in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def list_models() -> Response:
    fault = inject_faults(state, SERVICE, FAULT_STYLE, bearer_token(), publishing=False)
    if fault is not None:
        return fault
    return json_response(
        {
            "object": "list",
            "data": [{"id": MODEL, "object": "model", "created": CREATED, "owned_by": "sandbox"}],
        }
    )


ROUTES = (
    Route("POST", "/v1/chat/completions", chat_completions),
    Route("GET", "/v1/models", list_models),
)
