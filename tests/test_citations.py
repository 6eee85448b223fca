"""Citations in the API: sources are numbered 1..k in the order the prompt gave them, and
every [n] in an answer points at source n, the passage the model was shown as [n]."""

from __future__ import annotations

import re

import httpx
import pytest

from app.localmodel.answer import parse_prompt
from tests.conftest import LocalModel
from tests.sse import chat

CITATION = re.compile(r"\[(\d+)\]")


@pytest.mark.parametrize(
    "question",
    [
        "How do I ingest PDF files?",
        "How do I run the tests?",
        "What happens when ingest is interrupted?",
        "Which emails does ALLOWED_EMAILS let sign in?",
    ],
)
def test_every_citation_names_the_source_with_that_number(
    client: httpx.Client, local_model: LocalModel, question: str
) -> None:
    events = chat(client, question)
    assert events[-1][0] == "done"
    sources = events[1][1]["sources"]
    answer = "".join(d["text"] for n, d in events if n == "token")
    assert [s["n"] for s in sources] == list(range(1, len(sources) + 1))

    # The prompt the upstream was given for this answer: its numbered passages.
    sent = local_model.stats()["last_messages"]
    assert isinstance(sent, list)
    shown, asked = parse_prompt(sent[-1]["content"])
    assert asked == question
    assert sorted(shown) == [s["n"] for s in sources]
    for source in sources:  # source n is the passage shown as [n]
        heading = shown[source["n"]][0]
        assert heading.startswith(f"[{source['n']}] {source['title']}")
        assert heading.endswith(source["section"])

    cited = [int(n) for n in CITATION.findall(answer)]
    assert cited, answer
    assert set(cited) <= {s["n"] for s in sources}, answer
    # Each cited sentence comes from the passage it cites (the local model quotes them).
    pieces = CITATION.split(answer)  # sentence, number, sentence, number, ..., tail
    assert pieces[-1].strip() == "", answer
    for sentence, number in zip(pieces[0:-1:2], pieces[1::2], strict=True):
        words = re.findall(r"[a-z0-9]{4,}", sentence.lower())
        text = shown[int(number)][1].lower()
        assert all(w in text for w in words), (number, sentence)
