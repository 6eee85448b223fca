"""Eval cases: read from evals/cases.toml, checked against the corpus they test."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal, get_args

from ingest.chunker import section_anchor
from ingest.pipeline import IngestReport, discover
from ingest.readers import read_document

ROOT = Path(__file__).resolve().parent.parent
CASES_FILE = Path(__file__).resolve().parent / "cases.toml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# What the runner ingests: the bundled docs, plus fixture documents the adversarial cases need.
CORPUS = [ROOT / "docs", FIXTURES]
Expect = Literal["answer", "dont_know", "refuse"]
KINDS = ("lookup", "paraphrase", "deep", "multiturn", "out_of_scope", "adversarial")


class CaseError(ValueError):
    """The cases file is malformed, or a case points at a section the corpus lacks."""


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
    status: int | None = None  # the HTTP status a refusal must have (413 for oversized input)

    @property
    def text(self) -> str:
        return self.question * self.repeat


def load_cases(path: Path = CASES_FILE) -> list[Case]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        cases = [Case(**raw) for raw in data["case"]]
    except (KeyError, TypeError) as err:
        raise CaseError(f"{path}: {err}") from err
    ids = [c.id for c in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CaseError(f"{path}: duplicate case ids {duplicates}")
    for case in cases:
        _validate(case)
    return cases


def _validate(case: Case) -> None:
    if case.kind not in KINDS:
        raise CaseError(f"case {case.id}: unknown kind {case.kind!r} (one of {KINDS})")
    if case.expect not in get_args(Expect):
        raise CaseError(f"case {case.id}: unknown expect {case.expect!r}")
    if case.expect == "answer" and not case.sources:
        raise CaseError(f"case {case.id}: an answer case needs expected sources")
    if case.expect != "answer" and case.facts:
        raise CaseError(f"case {case.id}: only answer cases have key facts")
    if case.status is not None and case.expect != "refuse":
        raise CaseError(f"case {case.id}: an expected status is for refuse cases only")
    for source in case.sources:
        if "#" not in source:
            raise CaseError(f"case {case.id}: source {source!r} is not 'path#anchor'")


def select(cases: list[Case], patterns: list[str]) -> list[Case]:
    """The cases whose id matches any of the glob patterns (all cases when none are given)."""
    if not patterns:
        return cases
    chosen = [c for c in cases if any(fnmatchcase(c.id, p) for p in patterns)]
    if not chosen:
        raise CaseError(f"no case matches {patterns}")
    return chosen


def corpus_sections(paths: list[Path]) -> set[str]:
    """Every "path#anchor" the corpus has, named as ingest names them."""
    found: set[str] = set()
    for file in discover(paths, IngestReport()):
        doc = read_document(file, file.read_bytes())
        source = file.resolve().relative_to(ROOT).as_posix()
        for section in doc.sections:
            found.add(f"{source}#{section_anchor(section.headings)}")
    return found


def missing_sections(cases: list[Case], paths: list[Path]) -> dict[str, list[str]]:
    """Cases whose expected sections no longer exist in the docs: {case id: [sections]}."""
    sections = corpus_sections(paths)
    missing = {c.id: [s for s in c.sources if s not in sections] for c in cases}
    return {k: v for k, v in missing.items() if v}


def check_sections(cases: list[Case], paths: list[Path] = CORPUS) -> None:
    """Fail loudly when a case expects a section the corpus no longer has."""
    missing = missing_sections(cases, paths)
    if missing:
        lines = [f"  {case_id}: {', '.join(sections)}" for case_id, sections in missing.items()]
        raise CaseError(
            "cases expect sections that no longer exist in the corpus (a heading was renamed "
            "or removed: update the case or the docs):\n" + "\n".join(lines)
        )
