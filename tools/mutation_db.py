"""Mutation-test one group of the database-backed modules against the tests that cover it.

``[tool.mutmut]`` in pyproject.toml selects the fast tests for ``make mutation``. The
modules below need PostgreSQL or Redis, and mutmut starts a pytest session per mutant,
so each group runs on its own: only its modules are mutated, only its test files are
selected (a function called by a slow HTTP test elsewhere is not checked against it),
two mutants at a time (JOBS), and every session reuses one PostgreSQL server kept in
``PG_DIR`` (``--pg-dir``, tests/conftest.py) instead of creating and deleting its own.

    python -m tools.mutation_db budget      # one group (names in GROUPS)
    python -m tools.mutation_db budget --recheck   # its survivors, against today's tests
    python -m tools.mutation_db budget --recheck NAME...   # only these
    python -m tools.mutation_report         # the kill rate of every group run so far

Each group's results are moved to ``mutants-db/<group>/`` (git ignores it), where the
report finds them. This drives mutmut 3.8.1's ``_run`` with its configuration object
changed in place; pyproject pins that version.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mutmut.__main__ import _run
from mutmut.configuration import config

PG_DIR = Path("/tmp/ragship-mutation/pg")
RESULTS = Path("mutants-db")
ALIVE_CODES = (0, -24, 24)  # mutmut's exit codes for survived and timed out (SIGXCPU)
JOBS = 2  # mutants checked at once: the machine is shared

BUDGET_TESTS = "tests/test_caps_budget.py::test_"
# group: (mutmut globs of the mutants, the tests that cover them)
GROUPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # The reservation, its settlement, the day and month periods, the expiry sweep. Left
    # out: the test that starts the whole app to see the sweeper run (it ingests the corpus,
    # about a minute a session here), so `run_sweeper` is not mutated; and the 100 users x 5
    # concurrency test (half a minute a session under mutmut; the 20-way test exercises
    # the same conditional UPDATE under concurrency).
    "budget": (
        ("app.caps.budget*", "app.caps.spend*", "app.caps.sweeper.x_sweep_expired*"),
        (
            f"{BUDGET_TESTS}user_cap_with_20_concurrent_reservations_admits_exactly_2",
            f"{BUDGET_TESTS}monthly_budget_is_a_cap_too",
            f"{BUDGET_TESTS}expired_reservations_are_swept_and_charged_in_full",
            f"{BUDGET_TESTS}midnight_utc_is_the_day_boundary",
            f"{BUDGET_TESTS}the_sweep_passes_over_settled_reservations_to_reach_a_leaked_one",
            f"{BUDGET_TESTS}spend_today_is_the_users_own_spent_and_reserved_amounts",
            f"{BUDGET_TESTS}each_cap_refuses_with_its_own_status_message_and_time_to_reset",
            f"{BUDGET_TESTS}a_sweep_settles_every_leak_as_an_expired_call_and_logs_how_many",
        ),
    ),
    # The retry loop: what is retried, how often, after how long, the fallback model.
    "retry": (
        (
            "app.llm.client.x_backoff_s*",
            "app.llm.client.x*stream_chat*",
            "app.llm.client.x__with_attempts*",
        ),
        ("tests/test_llm_retry.py", "tests/test_breaker.py"),
    ),
    # The retry loop's helpers alone: the backoff and the attempt count on the answer.
    "backoff": (
        ("app.llm.client.x_backoff_s*", "app.llm.client.x__with_attempts*"),
        ("tests/test_llm_retry.py",),
    ),
    # Settling a call: the message, the reservation, the ledger row, the `done` record.
    "settle": (("app.settle*",), ("tests/test_settle.py",)),
    # The cap chain's admission (app/caps/chain.py) and the kill switch it checks.
    "chain": (("app.caps.chain*",), ("tests/test_caps_chain.py",)),
    "killswitch": (
        ("app.caps.killswitch*",),
        ("tests/test_killswitch.py", "tests/test_caps_chain.py"),
    ),
    # Sign-in: sessions, the allowlist and invites, access tokens, the OIDC client
    # (app/auth/csrf.py is in `make mutation`).
    "auth": (
        (
            "app.auth.sessions*",
            "app.auth.access*",
            "app.auth.tokens*",
            "app.auth.oidc*",
        ),
        ("tests/test_auth_direct.py",),
    ),
    # The alert rules and the alerter (cooldown per rule, delivery, the replicas' lock).
    "alerts": (("app.observability.alerts*",), ("tests/test_alerts_rules.py",)),
    # The rate limiter and the Redis and Upstash stores behind it.
    "stores": (
        ("app.caps.redis_store*", "app.caps.ratelimit*"),
        ("tests/test_caps_store.py", "tests/test_caps_ratelimit.py"),
    ),
}


def _files(globs: tuple[str, ...]) -> list[str]:
    """The source files of mutant globs: ``app.caps.sweeper.x_sweep*`` -> app/caps/sweeper.py."""
    files = set()
    for glob in globs:
        parts = []
        for part in glob.split("."):
            if part.startswith("x"):
                break
            parts.append(part.rstrip("*"))
            if part.endswith("*"):
                break
        files.add("/".join(parts) + ".py")
    return sorted(files)


def run_group(name: str) -> None:
    """Mutate the group's modules, check each mutant against its tests, keep the results.

    Raises KeyError for a group not in GROUPS. mutmut exits the process on a failing
    clean run (the tests must pass unmutated first)."""
    globs, tests = GROUPS[name]
    cfg = config()
    cfg.only_mutate = _files(globs)  # mutating the other modules would only take time
    cfg.pytest_add_cli_args_test_selection = list(tests)
    cfg.pytest_add_cli_args = [*cfg.pytest_add_cli_args, f"--pg-dir={PG_DIR}"]
    PG_DIR.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree("mutants", ignore_errors=True)
    _run(list(globs), max_children=JOBS)
    target = RESULTS / name
    shutil.rmtree(target, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    shutil.move("mutants", target)


def recheck(name: str, only: list[str] | None = None) -> list[str]:
    """Check each mutant the group's last run left alive against the tests as they are now
    (tests written since that run), the way mutmut checks one: the mutated copy in
    ``mutants-db/<group>/``, ``MUTANT_UNDER_TEST`` naming the mutant, the group's tests,
    stopping at the first failure. A mutant a test fails on is recorded as killed.

    ``only``: these mutants (names as mutmut prints them), not every one left alive.
    Returns the names of the mutants newly killed."""
    root = RESULTS / name
    _, tests = GROUPS[name]
    shutil.rmtree(root / "tests")
    shutil.copytree("tests", root / "tests")
    killed = []
    for meta in sorted(root.rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        codes = data["exit_code_by_key"]
        alive = [m for m, code in codes.items() if code in ALIVE_CODES]
        for mutant in [m for m in alive if only is None or m in only]:
            env = {**os.environ, "MUTANT_UNDER_TEST": mutant}
            # Newest tests first (GROUPS lists them last): they were written for survivors.
            args = ["-x", "-q", "-p", "no:cacheprovider", f"--pg-dir={PG_DIR}", *tests[::-1]]
            result = subprocess.run(
                [sys.executable, "-m", "pytest", *args], cwd=root, env=env, capture_output=True
            )
            if result.returncode == 1:  # a test failed: killed (mutmut's own exit code)
                codes[mutant] = 1
                killed.append(mutant)
            print(f"{'killed' if result.returncode == 1 else 'alive':<7} {mutant}", flush=True)
            meta.write_text(json.dumps(data), encoding="utf-8")  # kept if stopped midway
    return killed


if __name__ == "__main__":
    group, *rest = sys.argv[1:] or [""]
    if group not in GROUPS or rest[:1] not in ([], ["--recheck"]):
        sys.exit(f"usage: python -m tools.mutation_db {{{'|'.join(GROUPS)}}} [--recheck [NAME...]]")
    if rest:
        recheck(group, rest[1:] or None)
    else:
        run_group(group)
