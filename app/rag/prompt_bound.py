"""A bound of the prompt's tokens known before retrieval: what the early reservation covers.

`prepare_chat` builds the prompt from the system prompt, the question, the passages fitted
to their share of the context budget (`fit_passages`) and, in a follow-up, the history and
summary fitted to theirs (`fit_history`, `fit_summary`). Before the search only the
passages are unknown, so `prompt_bound` counts the prompt as it would be without them and
adds the most the passages can take: the passages' share, or ``RETRIEVAL_TOP_K`` chunks of
``CHUNK_TOKENS`` with their title and markers when that is less (in an 8,192-token window,
5 × 428 = 2,140 tokens against a share of 3,584). A follow-up adds its unfolded turns and
stored summary as counted, each at most its share (`fit_history`, `fit_summary` keep no
more); a follow-up whose turns must first be folded into the summary gets no early
reservation (the fold reserves for its own call before the answer).

The bound holds for chunks made by ragship's ingest (a chunk's text at most
``CHUNK_TOKENS``) with titles and heading paths up to `TITLE_TOKENS`; a longer passage can
make the real prompt larger, and the exact reservation then decides as before
(app/caps/early.py): a wrong bound costs a round trip, never money.
"""

from __future__ import annotations

from app.rag.context_budget import (
    MESSAGE_OVERHEAD_TOKENS,
    PASSAGE_OVERHEAD_TOKENS,
    ContextBudget,
    fit_summary,
    history_tokens,
)
from app.rag.prompt import SUMMARY_HEADING, build_messages
from app.settings import Settings
from app.tokens import count_message_tokens, count_tokens

# A passage's title and heading path ("Guide › Install › Linux"), tokens: the bundled docs'
# longest is 21 (cl100k).
TITLE_TOKENS = 64
# Tokens the passages' joins and a flagged source's note may add past `passage_tokens`,
# per passage: 5 × (300 + 48 + 64 + 16) = 2,140 tokens at the default settings.
SLACK_PER_PASSAGE = 16


def passages_bound(settings: Settings, budget: ContextBudget) -> int:
    """The most tokens the fitted passages take in the prompt (module docstring)."""
    each = settings.chunk_tokens + PASSAGE_OVERHEAD_TOKENS + TITLE_TOKENS + SLACK_PER_PASSAGE
    share = budget.passages + SLACK_PER_PASSAGE * settings.retrieval_top_k
    return min(share, each * settings.retrieval_top_k)


def prompt_bound(
    settings: Settings,
    budget: ContextBudget,
    *,
    question: str,
    history: list[dict[str, str]],
    summary: str | None,
    prompt_version: str,
) -> int:
    """Tokens: at least `count_message_tokens` of the prompt `prepare_chat` builds for
    ``question`` (as sent upstream) after the unfolded turns ``history`` and the stored
    ``summary``, whatever the search returns, under the module docstring's assumptions,
    and at most the input budget (a prompt past it is refused before any call). For a
    request whose turns are folded first the bound does not hold (`prepare_chat` sends no
    early reservation then). About 0.1 ms: one count of the system prompt and question,
    and one of the turns and summary."""
    bare = build_messages(
        question=question,
        passages=[],
        history=[],
        boundary="0" * 12,
        bot_name=settings.bot_name,
        prompt_version=prompt_version,
    )
    tokens = count_message_tokens(bare) + passages_bound(settings, budget)
    tokens += min(history_tokens(history), budget.history)  # `fit_history` keeps at most
    kept = fit_summary(summary, budget.summary)
    if kept:
        tokens += count_tokens(SUMMARY_HEADING + kept) + 2 * MESSAGE_OVERHEAD_TOKENS
    return min(tokens, budget.max_input)  # a larger prompt is refused (`check_fits`)
