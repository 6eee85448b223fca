"""A configuration error as people read it: every problem on its own line, never a value."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings import SettingsError


def configuration_error(err: ValidationError | SettingsError) -> str:
    """Every problem, one per line, naming settings but never their values (secrets)."""
    if isinstance(err, SettingsError):
        problems = [str(err)]
    else:
        problems = []
        for error in err.errors(include_input=False, include_url=False):
            message = error["msg"].removeprefix("Value error, ")
            field = ".".join(str(part) for part in error["loc"]).upper()
            problems += [f"{field}: {message}"] if field else message.splitlines()
    listed = "\n".join(f"  - {problem}" for problem in problems)
    return f"ragship cannot start: fix these settings (environment or .env):\n{listed}"
