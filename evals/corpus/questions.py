"""The hand-written questions over the held-out corpus (evals/corpus/questions.toml).

Each question has a kind (easy: the manual's own words; paraphrased: other words for
them; deep: a detail inside a long page; out-of-scope: not in the manual), a split
("dev": looked at while tuning; "held-out": never looked at while tuning, reported on
its own), the pages that answer it (relative to the manual's HTML folder), and a key
string that those pages contain and an answer needs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

QUESTIONS_FILE = Path(__file__).resolve().parent / "questions.toml"
KINDS = ("easy", "paraphrased", "deep", "out-of-scope")
SPLITS = ("dev", "held-out")


class QuestionError(Exception):
    """The questions file is malformed; the message names the question."""


@dataclass(frozen=True)
class Question:
    id: str
    kind: str
    split: str
    question: str
    pages: tuple[str, ...]
    key: str

    @property
    def in_scope(self) -> bool:
        return self.kind != "out-of-scope"


def load_questions(path: Path = QUESTIONS_FILE) -> list[Question]:
    """Every question in the file; raises `QuestionError` for an unknown kind or split, a
    duplicate id, or an in-scope question without pages or key."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    questions, seen = [], set()
    for item in raw.get("question", []):
        q = Question(
            id=item["id"],
            kind=item["kind"],
            split=item["split"],
            question=item["question"],
            pages=tuple(item.get("pages", ())),
            key=item.get("key", ""),
        )
        if q.kind not in KINDS or q.split not in SPLITS:
            raise QuestionError(f"{q.id}: kind must be one of {KINDS}, split one of {SPLITS}")
        if q.id in seen:
            raise QuestionError(f"{q.id}: duplicate id")
        if q.in_scope and not (q.pages and q.key):
            raise QuestionError(f"{q.id}: an in-scope question needs pages and a key string")
        seen.add(q.id)
        questions.append(q)
    return questions
