"""Nothing to answer from: when retrieval finds no passage above the relevance threshold
(``RETRIEVAL_MIN_SIMILARITY``), the answer is "I don't know" whatever the model, because
the system prompt allows no other. So it is answered here, without an upstream call.

`answer_locally` yields the same events an upstream stream does (`TextDelta`, then
`Finished`), so the answer streams, is guarded, settled and recorded like any other: at
$0 (no tokens, no attempt) under the status ``no_context``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from app.cache.replay import replay
from app.llm.client import Finished, TextDelta

NO_CONTEXT_STATUS = "no_context"
# The sentence the system prompt (app/prompts/answer-v*.txt) tells the model to answer.
DONT_KNOW_MESSAGE = "I don't know based on the documents I have."


def answers_locally(*, enabled: bool, passages: Sequence[object]) -> bool:
    """True when the question is answered without the model: the short-circuit is on
    (``ANSWER_WITHOUT_SOURCES_LOCALLY``) and retrieval returned no passage."""
    return enabled and not passages


def answer_locally(model: str) -> AsyncIterator[TextDelta | Finished]:
    """The "I don't know" answer as a stream, like a cached one: word-sized deltas, then a
    `Finished` with zero tokens and zero attempts (no upstream request was made), reason
    ``no_context``."""
    return replay(DONT_KNOW_MESSAGE, model, reason=NO_CONTEXT_STATUS)
