"""Eval cases: read from evals/cases.toml, checked against the corpus they test."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ingest.chunker import slugify
from ingest.readers import read_document

ROOT = Path(__file__).resolve().parent.parent
CASES_FILE = Path(__file__).resolve().parent / "cases.toml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
Expect = Literal["answer", "dont_know", "refuse"]
KINDS = ("lookup", "paraphrase", "deep", "multiturn", "out_of_scope", "adversarial")


@dataclass(frozen=True)
class Case:
    id: str
    kind: str
    question: str
    expect: Expect = "answer"
    history: list[str] = field(default_factory=list)  # earlier questions in the conversation
    sources: list[str] = field(default_factory=list)  # "docs/file.md#anchor"
    facts: list[str] = field(default_factory=list)  # phrases a correct answer contains
    forbidden: list[str] = field(default_factory=list)  # phrases it must never contain
    repeat: int = 1  # the question is sent this many times over (oversized-input cases)

    @property
    def text(self) -> str:
        return self.question * self.repeat


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    cases = [Case(**raw) for raw in data["case"]]
    ids = [c.id for c in cases]
    if len(ids) != len(set(ids)):
        raise ValueError("duplicate case ids in " + str(path))
    for case in cases:
        if case.kind not in KINDS:
            raise ValueError(f"case {case.id}: unknown kind {case.kind!r}")
        if case.expect == "answer" and not case.sources:
            raise ValueError(f"case {case.id}: an answer case needs expected sources")
    return cases


def corpus_sections(paths: list[Path]) -> set[str]:
    """Every "path#anchor" the corpus has, named as ingest names them."""
    found: set[str] = set()
    for root in paths:
        for file in sorted(root.rglob("*.md")) if root.is_dir() else [root]:
            doc = read_document(file, file.read_bytes())
            source = file.resolve().relative_to(ROOT).as_posix()
            for section in doc.sections:
                anchor = slugify(section.headings[-1]) if section.headings else "top"
                found.add(f"{source}#{anchor}")
    return found


def missing_sections(cases: list[Case], paths: list[Path]) -> dict[str, list[str]]:
    """Cases whose expected sections no longer exist in the docs: {case id: [sections]}."""
    sections = corpus_sections(paths)
    missing = {c.id: [s for s in c.sources if s not in sections] for c in cases}
    return {k: v for k, v in missing.items() if v}
