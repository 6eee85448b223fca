"""Docs are part of the product: every setting is documented and in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented_in_the_configuration_reference() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)`", reference, re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented == set(), "settings missing from docs/configuration.md"
    assert documented - settings == set(), (
        "docs/configuration.md documents settings that do not exist"
    )


def test_every_setting_is_in_env_example() -> None:
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z0-9_]+)=", example, re.MULTILINE))
    assert {name.upper() for name in Settings.model_fields} == listed


def test_readme_gives_the_two_commands_first_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```\n(.*?)```", readme, re.DOTALL)
    assert first_block is not None and "make dev" in first_block.group(1)
    assert "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
