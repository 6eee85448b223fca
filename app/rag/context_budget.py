"""The context budget: what one request may put in the model's context window, by part.

The window comes from the price book (genai-prices knows each model's window; the local
table knows the built-in model's; ``LLM_CONTEXT_WINDOW`` overrides). The answer's output
(``LLM_MAX_TOKENS``) is set aside first; the rest, the *input budget*, is shared between
system prompt, running summary, history, passages and question by the ``CONTEXT_SHARE_*``
settings. Passages are trimmed most relevant first (retrieval's order), history newest
first; the prompt as built is counted before it is sent and refused (HTTP 413) when it
still does not fit. docs/context.md has the table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache

from app.caps.refusal import CapRefused
from app.llm.pricing import PriceBook
from app.rag.retrieve import Passage
from app.settings import Settings
from app.tokens import count_message_tokens, count_tokens, encoding

CONTEXT_LAYER = "context_window"
# A model no source knows the window of is budgeted as if it had this many tokens: small
# enough for any chat model in use today. Set LLM_CONTEXT_WINDOW to use more.
DEFAULT_WINDOW = 8192
# Tokens the source markers, number and title line add around a passage's text
# (app/rag/prompt.py, format_sources), measured with cl100k on the bundled docs: 30-45.
PASSAGE_OVERHEAD_TOKENS = 48
MESSAGE_OVERHEAD_TOKENS = 3  # per chat message (app/tokens.py)


@dataclass(frozen=True)
class ContextBudget:
    """Token limits of one request, each part's ceiling from its share of `max_input`."""

    window: int
    max_output: int
    system: int
    summary: int
    history: int
    passages: int
    question: int

    @property
    def max_input(self) -> int:
        """Tokens the prompt may hold: the window less the output set aside."""
        return max(self.window - self.max_output, 0)


def window_of(prices: PriceBook, models: Iterable[str]) -> int:
    """The smallest context window (tokens) of `models`: any of them may get the prompt
    (a fallback answers the same one). `DEFAULT_WINDOW` for a model no source knows."""
    return min(prices[m].context_window or DEFAULT_WINDOW for m in models)


def budget_for(settings: Settings, *, window: int, max_output: int) -> ContextBudget:
    """The budget for a `window`-token model answering in at most `max_output` tokens."""
    budget = max(window - max_output, 0)
    return ContextBudget(
        window=window,
        max_output=max_output,
        system=int(budget * settings.context_share_system),
        summary=int(budget * settings.context_share_summary),
        history=int(budget * settings.context_share_history),
        passages=int(budget * settings.context_share_passages),
        question=int(budget * settings.context_share_question),
    )


def passage_tokens(passage: Passage) -> int:
    """A passage's tokens in the prompt: its text, title and heading path, and the markers."""
    return (
        text_tokens(passage.text)
        + count_tokens(passage.title + passage.heading_path)
        + (PASSAGE_OVERHEAD_TOKENS)
    )


@lru_cache(maxsize=2048)
def text_tokens(text: str) -> int:
    """`count_tokens`, memoised for passage text: the same chunks come back for many
    questions, and counting five of them cost about 0.5 ms of CPU a request (py-spy,
    issue 17). 2,048 chunk texts of about 1.2 KB (300 tokens) hold about 3 MB per process."""
    return count_tokens(text)


def fit_passages(passages: list[Passage], limit: int) -> list[Passage]:
    """The most relevant passages (retrieval's order) whose tokens fit in `limit`. When not
    even the first fits, its text is cut to fit, so a question with sources keeps one."""
    kept: list[Passage] = []
    used = 0
    for passage in passages:
        cost = passage_tokens(passage)
        if used + cost > limit:
            break
        kept.append(passage)
        used += cost
    if not kept and passages:
        first = passages[0]
        room = max(limit - (passage_tokens(first) - text_tokens(first.text)), 0)
        cut = encoding().decode(encoding().encode(first.text, disallowed_special=())[:room])
        kept = [replace(first, text=cut)] if cut.strip() else []
    return kept


def history_tokens(history: list[dict[str, str]]) -> int:
    return sum(MESSAGE_OVERHEAD_TOKENS + count_tokens(m["content"]) for m in history)


def fit_history(history: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """The newest prior messages (oldest first, as given) that fit in `limit` tokens,
    starting with a user turn so the model never sees an answer without its question."""
    kept: list[dict[str, str]] = []
    used = 0
    for message in reversed(history):
        cost = MESSAGE_OVERHEAD_TOKENS + count_tokens(message["content"])
        if used + cost > limit:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    while kept and kept[0]["role"] != "user":
        kept.pop(0)
    return kept


def fit_summary(summary: str | None, limit: int) -> str | None:
    """The running summary cut to `limit` tokens (it is written to fit; this is a guard
    for one written under a larger budget)."""
    if not summary:
        return None
    tokens = encoding().encode(summary, disallowed_special=())
    return summary if len(tokens) <= limit else encoding().decode(tokens[:limit])


def check_fits(
    messages: list[dict[str, str]], budget: ContextBudget, *, last: int | None = None
) -> int:
    """The prompt's tokens, counted before it is sent; raises `CapRefused` (413,
    layer ``context_window``) when they exceed the input budget. ``last``: the last
    message's content in tokens when it was counted already (app/rag/prompt_tokens.py)."""
    if last is None:
        tokens = count_message_tokens(messages)
    else:  # as count_message_tokens counts it: 3 a message
        tokens = count_message_tokens(messages[:-1]) + MESSAGE_OVERHEAD_TOKENS + last
    if tokens > budget.max_input:
        raise CapRefused(
            CONTEXT_LAYER,
            413,
            f"This question with its context needs {tokens} tokens, more than the "
            f"{budget.max_input} the model's window leaves for input. Try a shorter question "
            "or a new conversation.",
        )
    return tokens
