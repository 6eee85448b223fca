"""The one module that talks to the LLM upstream, through the official `openai` client.

Any OpenAI-compatible server works: OpenAI itself, Ollama, vLLM, LM Studio, or ragship's
built-in local model. Streams are read as events: text deltas, then the usage.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

import httpx
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int


class UpstreamError(Exception):
    """The upstream failed; ``kind`` says how, the message is safe to show a user."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class LLMClient:
    def __init__(self, *, base_url: str, api_key: str, model: str, timeout_s: float) -> None:
        self.model = model
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0
        )

    async def stream_chat(
        self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float
    ) -> AsyncIterator[TextDelta | Finished]:
        reason: str | None = None
        started = False
        try:
            stream = await self._client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], messages),
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    if chunk.usage is not None:
                        details = chunk.usage.prompt_tokens_details
                        yield Finished(
                            reason,
                            chunk.usage.prompt_tokens,
                            chunk.usage.completion_tokens,
                            (details.cached_tokens or 0) if details else 0,
                        )
                        return
                    for choice in chunk.choices:
                        if choice.delta.content:
                            started = True
                            yield TextDelta(choice.delta.content)
                        if choice.finish_reason:
                            reason = choice.finish_reason
        except openai.APIStatusError as err:
            raise UpstreamError(_kind(err), "The language model returned an error.") from err
        except openai.APITimeoutError as err:
            raise UpstreamError("timeout", "The language model took too long to answer.") from err
        except openai.APIConnectionError as err:
            if started:
                raise UpstreamError(
                    "broken_stream", "The language model's answer was cut off."
                ) from err
            raise UpstreamError("connection", "The language model could not be reached.") from err
        except (openai.APIError, httpx.HTTPError, json.JSONDecodeError) as err:
            raise UpstreamError(
                "broken_stream", "The language model's answer was cut off."
            ) from err
        yield Finished(reason, None, None, 0)

    async def close(self) -> None:
        await self._client.close()


def _kind(err: openai.APIStatusError) -> str:
    if err.status_code == 429:
        return "insufficient_quota" if err.code == "insufficient_quota" else "rate_limit"
    if err.status_code in (401, 403):
        return "auth"
    if err.status_code >= 500:
        return "server_error"
    return "bad_request"
