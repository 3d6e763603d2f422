"""The sandbox's OpenAI-compatible server (/openai/v1), spoken to by the `openai` client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from sandbox.openai_api import MODEL, caption_for

PROMPT = [
    {"role": "system", "content": "You write captions."},
    {
        "role": "user",
        "content": "Length: about 120 characters.\nHashtags: end with 2 to 5.\nEmojis: a few.\n"
        "Topic: Rooftop garden opening on Friday",
    },
]


@pytest.fixture
def client(sandbox_url: str, sandbox: httpx.Client) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{sandbox_url}/openai/v1", api_key="sk-x", max_retries=0) as c:
        yield c


def test_models_are_listed(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]


def test_n_choices_derived_from_the_prompt(client: openai.OpenAI, sandbox: httpx.Client) -> None:
    first = client.chat.completions.create(model="any-model", messages=PROMPT, n=3)  # type: ignore[arg-type]
    again = client.chat.completions.create(model="any-model", messages=PROMPT, n=3)  # type: ignore[arg-type]
    texts = [c.message.content for c in first.choices]
    assert texts == [c.message.content for c in again.choices]  # deterministic
    assert len(set(texts)) == 3
    assert first.model == "any-model"
    for text in texts:
        assert text is not None
        assert "Rooftop garden opening on Friday" in text
        assert text.endswith("#rooftop #garden #opening")
        assert 60 <= len(text) <= 200
    assert first.usage is not None and first.usage.total_tokens > 0
    assert sandbox.get("/_arrived").json()["openai"] == 2


def test_no_hashtags_or_emoji_when_the_prompt_says_none() -> None:
    prompt = "Hashtags: none.\nEmojis: none.\nTopic: quiet news"
    text = caption_for(prompt, 0)
    assert "#" not in text
    assert text.isascii()
    assert len(caption_for(prompt, 0, answer_chars=900)) == 900


def test_faults_in_openai_shapes(client: openai.OpenAI, sandbox: httpx.Client) -> None:
    sandbox.post("/_faults", json={"openai": {"rate_limit_every": 1, "retry_after": 7}})
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model="m", messages=PROMPT)  # type: ignore[arg-type]
    assert limited.value.response.headers["Retry-After"] == "7"
    assert limited.value.code == "rate_limit_exceeded"

    sandbox.post("/_faults", json={"openai": {"error_rate": 1.0, "error_status": 502}})
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(model="m", messages=PROMPT)  # type: ignore[arg-type]
    assert failed.value.status_code == 502

    sandbox.post("/_faults", json={"openai": {"revoked_tokens": ["sk-x"]}})
    with pytest.raises(openai.AuthenticationError):
        client.models.list()

    sandbox.post("/_faults", json={})
    assert client.models.list().data


def test_answers_and_choices_set_by_faults(client: openai.OpenAI, sandbox: httpx.Client) -> None:
    sandbox.post("/_faults", json={"openai": {"answer": "Fixed.", "max_choices": 1}})
    reply = client.chat.completions.create(model="m", messages=PROMPT, n=4)  # type: ignore[arg-type]
    assert [c.message.content for c in reply.choices] == ["Fixed."]
    sandbox.post("/_faults", json={"openai": {"refuse_n": True}})
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=PROMPT, n=2)  # type: ignore[arg-type]
    # Reset forgets them.
    sandbox.post("/_reset")
    reply = client.chat.completions.create(model="m", messages=PROMPT, n=2)  # type: ignore[arg-type]
    assert len(reply.choices) == 2 and reply.choices[0].message.content != "Fixed."


def test_malformed_requests_are_refused(sandbox: httpx.Client) -> None:
    for body in ({}, {"model": "m"}, {"model": "m", "messages": PROMPT, "n": 0}):
        response = sandbox.post("/openai/v1/chat/completions", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_fault_targets_are_still_refused(sandbox: httpx.Client) -> None:
    assert sandbox.post("/_faults", json={"myspace": {}}).status_code == 400
