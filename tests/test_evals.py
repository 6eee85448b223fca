"""The eval suite gates changes: it passes as committed, and fails, naming cases, when
retrieval is broken. Its cases must point at sections the docs still have.

The suite runs below share one database (the corpus is ingested by the first run; later
runs find every file unchanged), each with its own app and local model, exactly as
`python -m evals` runs them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.localmodel.runner import BackgroundServer
from evals.__main__ import main
from evals.cases import CORPUS, KINDS, Case, CaseError, check_sections, load_cases, missing_sections
from evals.compare import bootstrap_interval, compare, sign_test_p
from evals.judge import parse_verdict
from evals.runner import section_of
from ingest.chunker import chunk_sections
from ingest.readers import Section


@pytest.fixture(scope="module")
def eval_db(new_database: Callable[[], str]) -> str:
    return new_database()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    status = main(argv)
    return status, capsys.readouterr().out


# --- the cases and the corpus -------------------------------------------------------------


def test_cases_cover_every_kind_and_their_sections_exist() -> None:
    cases = load_cases()
    assert 50 <= len(cases) <= 100
    kinds = [c.kind for c in cases]
    assert {k: kinds.count(k) >= 4 for k in KINDS} == dict.fromkeys(KINDS, True)
    assert {"answer", "dont_know", "refuse"} == {c.expect for c in cases}
    assert any(c.status == 413 for c in cases), "an oversized input must be refused with 413"
    check_sections(cases)  # raises, naming the cases, when a section is gone


def test_a_case_whose_section_is_gone_fails_loudly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = Case(id="stale", kind="lookup", question="q", sources=["docs/ingest.md#gone"])
    assert missing_sections([stale], CORPUS) == {"stale": ["docs/ingest.md#gone"]}
    with pytest.raises(CaseError, match="stale: docs/ingest.md#gone"):
        check_sections([stale])

    cases = tmp_path / "cases.toml"
    cases.write_text(
        '[[case]]\nid = "renamed"\nkind = "lookup"\nquestion = "How do I ingest?"\n'
        'sources = ["docs/ingest.md#running-ingest", "docs/ingest.md#no-such-section"]\n'
    )
    status, out = run(["--cases", str(cases), "--out", str(tmp_path)], capsys)
    assert status == 2
    assert "renamed: docs/ingest.md#no-such-section" in out
    assert not (tmp_path / "results.json").exists(), "nothing runs against stale cases"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('kind = "lookup"\nquestion = "q"\nsources = ["docs/a.md"]', "not 'path#anchor'"),
        ('kind = "trivia"\nquestion = "q"', "unknown kind"),
        ('kind = "lookup"\nquestion = "q"', "needs expected sources"),
        ('kind = "out_of_scope"\nquestion = "q"\nexpect = "dont_know"\nstatus = 413', "refuse"),
        ('kind = "lookup"\nquestion = "q"\nsources = ["docs/a.md#b"]\ncolour = 1', "colour"),
    ],
)
def test_malformed_cases_are_rejected(tmp_path: Path, body: str, error: str) -> None:
    path = tmp_path / "cases.toml"
    path.write_text(f'[[case]]\nid = "x"\n{body}\n')
    with pytest.raises(CaseError, match=error):
        load_cases(path)


def test_any_chunk_of_a_section_is_cited_as_that_section() -> None:
    """A long section's later chunks are anchored ``slug-2``, ...; the eval scores them as the
    section the cases name, while a heading that itself ends in a number keeps its slug."""
    sections = [
        Section(headings=("Guide", "Backups"), text="\n\n".join(["word " * 80] * 6)),
        Section(headings=("Guide", "Backups 2"), text="second heading"),
    ]
    chunks = chunk_sections(sections, max_tokens=100, overlap=0)
    assert [c.anchor for c in chunks][:3] == ["backups", "backups-2", "backups-3"]
    cited = {
        section_of({"source": "docs/ops.md", "section": c.heading_path, "url": f"/s/1#{c.anchor}"})
        for c in chunks
    }
    assert cited == {"docs/ops.md#backups", "docs/ops.md#backups-2"}


# --- the suite through the real chat path ---------------------------------------------------


def test_the_suite_passes_its_gate(
    eval_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(["--database-url", eval_db, "--out", str(tmp_path)], capsys)
    assert status == 0, out
    assert "PASS: every metric meets its threshold and the baseline" in out
    assert "recall_at_k" in out and "multiturn" in out  # the table: metrics, then kinds
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["cases"]) == {c.id for c in load_cases()}
    assert results["run"]["model"] == "ragship-local-1"
    oversized = [c for c in results["cases"].values() if c["metrics"].get("neutralised") == 1.0]
    assert any(c["status"] == 413 for c in oversized)
    report = (tmp_path / "report.md").read_text()
    assert "## Cases" in report and "- retrieved: [1] docs/" in report


def test_broken_retrieval_fails_the_gate_and_names_the_cases(
    eval_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run(["--database-url", eval_db, "--out", str(tmp_path), "--top-k", "1"], capsys)
    assert status == 1
    assert (
        "FAIL: recall_at_k = " in out
        and "is below its threshold 0.800 and below the baseline" in out
    )
    assert "FAIL: cases that got worse: " in out
    # Cases whose answer needs a second section, and their metrics that moved.
    assert "readyz: score" in out and "recall_at_k 1.00 -> 0.50" in out


def test_dropping_every_passage_fails_the_named_cases(
    eval_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--database-url", eval_db, "--out", str(tmp_path), "--min-similarity", "0.99"]
    status, out = run([*argv, "--case", "deep-*", "--case", "oos-*"], capsys)
    assert status == 1
    assert "note: some cases only" in out
    worse = next(line for line in out.splitlines() if "cases that got worse" in line)
    assert "deep-pool-size" in worse and "deep-backups" in worse
    assert "oos-" not in worse  # out-of-scope cases still say they do not know


def test_update_baseline_needs_the_whole_suite(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(["--case", "healthz", "--update-baseline"], capsys)
    assert status == 2 and "needs the whole suite" in out


# --- the judge ------------------------------------------------------------------------------


@pytest.fixture
def judge() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in judge model: an OpenAI-compatible endpoint that always answers one verdict."""
    seen: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(body: dict[str, Any]) -> dict[str, Any]:
        seen.append(body)
        verdict = 'Verdict: ```json\n{"grounded": 1, "relevant": 0.5}\n```'
        return {
            "id": f"judge-{len(seen)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": verdict},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 200, "completion_tokens": 12, "total_tokens": 212},
        }

    server = BackgroundServer(app).start()
    yield f"{server.url}/v1", seen
    server.stop()


def test_judge_calls_are_versioned_capped_and_recorded(
    eval_db: str,
    judge: tuple[str, list[dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base_url, seen = judge
    argv = ["--database-url", eval_db, "--out", str(tmp_path), "--judge-base-url", base_url]
    argv += ["--judge-model", "judge-1", "--judge-api-key", "sk-judge", "--judge-max-calls", "2"]
    status, out = run(
        [*argv, "--case", "run-tests", "--case", "csrf", "--case", "chunk-size"], capsys
    )
    assert status == 0, out
    assert "judge judge-v1: 2 calls, tokens {'input': 400, 'output': 24}" in out
    assert len(seen) == 2  # capped: the third answer is not graded
    prompt = Path("app/prompts/judge-v1.txt").read_text().strip()
    assert seen[0]["messages"][0]["content"] == prompt
    assert "Sources:\n[1] " in seen[0]["messages"][1]["content"]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["judge"]["calls"] == 2 and len(results["judge"]["records"]) == 2
    assert results["run"]["settings"]["judge_api_key"] == "***"
    graded = [c for c in results["cases"].values() if "groundedness" in c["metrics"]]
    assert len(graded) == 2 and graded[0]["metrics"]["relevance"] == 0.5
    assert results["overall"]["groundedness"] == 1.0


def test_judge_verdicts_are_parsed_strictly() -> None:
    assert parse_verdict('{"grounded": 0.75, "relevant": 1}') == {
        "groundedness": 0.75,
        "relevance": 1.0,
    }
    assert parse_verdict("I think it is grounded.") is None
    assert parse_verdict('{"grounded": 3, "relevant": 1}') is None


# --- comparisons ------------------------------------------------------------------------------


def test_sign_test_and_bootstrap() -> None:
    assert sign_test_p(0, 0) == 1.0
    assert sign_test_p(10, 0) < 0.01
    assert sign_test_p(3, 2) > 0.5
    low, high = bootstrap_interval([0.5] * 10 + [0.0] * 10)
    assert 0 < low < 0.25 < high < 0.5
    assert bootstrap_interval([0.1, -0.1]) == bootstrap_interval([0.1, -0.1])  # seeded


def test_compare_pairs_cases_and_tells_noise_from_a_difference(tmp_path: Path) -> None:
    def results(scores: dict[str, float], path: Path) -> Path:
        cases = {c: {"score": s, "metrics": {"mrr": s}} for c, s in scores.items()}
        path.write_text(json.dumps({"run": {}, "overall": {"mrr": 0.5}, "cases": cases}))
        return path

    ids = [f"c{i}" for i in range(12)]
    a = results(dict.fromkeys(ids, 0.5), tmp_path / "a.json")
    b = results({c: 1.0 if i < 11 else 0.25 for i, c in enumerate(ids)}, tmp_path / "b.json")
    text = compare(a, b)
    assert "better in B: 11" in text and "worse in B: 1\n  c11: 0.50 -> 0.25" in text
    assert "verdict: more than noise" in text
    same = compare(a, results({**dict.fromkeys(ids, 0.5), "c0": 0.6}, tmp_path / "c.json"))
    assert "verdict: within noise" in same


# --- two tiers -------------------------------------------------------------------------------


def test_two_models_print_a_quality_and_cost_table_with_the_paired_comparison(
    eval_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both built-in models answer alike but are priced apart (app/llm/pricing.py)."""
    models = "ragship-local-1,ragship-local-1-mini"
    argv = ["--database-url", eval_db, "--out", str(tmp_path), "--models", models]
    status, out = run([*argv, "--case", "run-tests", "--case", "csrf"], capsys)
    assert status == 0, out
    table = out.split("quality and cost per model (2 cases)\n", 1)[1]
    header, _, main, mini = table.splitlines()[:4]
    assert header.split()[:3] == ["model", "recall@k", "facts"] and "$/answer" in header
    assert main.split()[0] == "ragship-local-1" and mini.split()[0] == "ragship-local-1-mini"
    assert main.split()[1:4] == mini.split()[1:4]  # the same answers: the same quality
    assert float(mini.split()[5]) < float(main.split()[5])  # the mini model is cheaper
    assert "2 paired cases" in out and "verdict: within noise" in out
    for model in models.split(","):
        results = json.loads((tmp_path / model / "results.json").read_text())
        assert results["run"]["model"] == model


def test_models_needs_two_distinct_ids(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(["--models", "ragship-local-1"], capsys)
    assert status == 2 and "at least two distinct model ids" in out
