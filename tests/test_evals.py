"""The eval suite gates changes: it passes as committed, and fails, naming cases, when
retrieval is broken. Its cases must point at sections the docs still have."""

from __future__ import annotations

from pathlib import Path

import pytest

from evals.__main__ import main
from evals.cases import Case, load_cases, missing_sections
from evals.compare import sign_test_p
from evals.runner import CORPUS
from tests.conftest import LocalModel


def test_cases_cover_every_kind_and_their_sections_exist() -> None:
    cases = load_cases()
    assert 50 <= len(cases) <= 100
    assert {c.kind for c in cases} == {
        "lookup",
        "paraphrase",
        "deep",
        "multiturn",
        "out_of_scope",
        "adversarial",
    }
    assert missing_sections(cases, CORPUS) == {}


def test_a_case_whose_section_is_gone_is_reported() -> None:
    stale = Case(
        id="stale", kind="lookup", question="q", sources=["docs/ingest.md#no-such-section"]
    )
    assert missing_sections([stale], CORPUS) == {"stale": ["docs/ingest.md#no-such-section"]}


def test_the_suite_passes_its_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "recall_at_k" in out
    assert (tmp_path / "report.md").exists() and (tmp_path / "results.json").exists()


def test_broken_retrieval_fails_the_gate_and_names_the_cases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path), "--min-similarity", "0.6"]) == 1
    out = capsys.readouterr().out
    assert "FAIL: recall_at_k" in out
    assert "cases that got worse:" in out and "run-tests" in out


def test_sign_test() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(10, 0) < 0.01
    assert sign_test_p(3, 2) > 0.5


def test_judge_calls_are_versioned_counted_and_capped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_model: LocalModel
) -> None:
    """The local model is no judge (it does not answer in JSON): its verdicts are left out,
    but every call is made through the real client, counted and capped."""
    args = [
        "--out",
        str(tmp_path),
        "--judge-base-url",
        local_model.base_url,
        "--judge-model",
        "ragship-local-1",
        "--judge-max-calls",
        "3",
    ]
    main(args)
    assert "judge judge-v1: 3 calls" in capsys.readouterr().out
