"""The kill rate per module of the last `make mutation` run, and every mutant left alive.

Reads the results mutmut keeps next to each mutated file (``mutants/**/*.py.meta``), and
those of each database-backed group run by ``tools.mutation_db`` (``mutants-db/<group>/``).
A mutant no selected test reaches ("no tests") counts against the rate, like a survivor:
it is a change that nothing would notice. Mutants not run this time (another MODULES
selection) are left out of the rate and counted apart.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

MUTANTS = Path("mutants")
GROUPS = Path("mutants-db")
ALIVE = ("survived", "no tests", "timeout", "suspicious", "segfault")


def module_results(meta: Path) -> dict[str, str]:
    """{mutant name: status} for one mutated file."""
    data = json.loads(meta.read_text(encoding="utf-8"))
    return {name: status_by_exit_code[code] for name, code in data["exit_code_by_key"].items()}


def report(root: Path = MUTANTS) -> list[str]:
    lines = [f"{'module':<32} {'killed':>6} {'alive':>6} {'rate':>7} {'not run':>8}"]
    alive: list[str] = []
    for meta in sorted(root.rglob("*.py.meta")):
        results = module_results(meta)
        counts = Counter(results.values())
        run = sum(n for status, n in counts.items() if status != "not checked")
        if not run:
            continue
        killed = counts["killed"] + counts["caught by type check"]
        module = str(meta.relative_to(root)).removesuffix(".meta")
        lines.append(
            f"{module:<32} {killed:>6} {run - killed:>6} {killed / run:>7.1%} "
            f"{counts['not checked']:>8}"
        )
        alive += [f"  {status:<10} {name}" for name, status in results.items() if status in ALIVE]
    # mutmut show reads mutants/; a group's copy holds the mutant as x_NAME in its module.
    hint = "`mutmut show NAME` prints the change" if root == MUTANTS else f"in {root}/"
    return lines + (["", f"alive ({hint}):", *alive] if alive else [])


if __name__ == "__main__":
    roots = [MUTANTS] if MUTANTS.is_dir() else []
    roots += sorted(GROUPS.iterdir()) if GROUPS.is_dir() else []
    if not roots:
        sys.exit("no results: run `make mutation` or `python -m tools.mutation_db GROUP` first")
    for root in roots:
        print(f"== {root}")
        print("\n".join(report(root)))
