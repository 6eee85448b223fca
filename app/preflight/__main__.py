"""`python -m app.preflight [--url URL] [--json PATH] [--repo PATH]`: check the
configuration (the environment and `.env`, as the app reads them) and the repository, and,
given a URL, a running deployment. Prints the checklist; writes the JSON to --json (or to
stdout with --json -). Exit status 1 when any item fails, 0 otherwise ("confirm by hand"
items do not fail the run), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError
from pydantic_settings import SettingsError

from app.preflight.checklist import Item, render_checklist, render_json
from app.preflight.config_checks import config_items, secrets_item, settings_problems
from app.preflight.live_checks import live_items
from app.routes.pages import STATIC_DIR
from app.settings import Settings
from app.settings.errors import configuration_error


def run(*, url: str | None, repo: Path) -> list[Item]:
    """Every checklist item for this configuration (and deployment, given ``url``)."""
    try:
        settings = Settings()
    except (ValidationError, SettingsError) as err:
        problems = configuration_error(err).splitlines()[1:]
        return [
            settings_problems([p.strip().removeprefix("- ") for p in problems]),
            secrets_item(repo, {}),  # the known shapes of keys, at least
        ]
    items = config_items(settings, repo=repo, static_dir=STATIC_DIR)
    if url:
        items += live_items(url, settings)
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.preflight", description=__doc__)
    parser.add_argument("--url", help="a running deployment to observe, e.g. https://docs.example")
    parser.add_argument("--json", help="write the JSON report here ('-': stdout)")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the git repository")
    args = parser.parse_args(argv)
    items = run(url=args.url, repo=args.repo)
    report = render_json(items)
    if args.json == "-":
        print(report)
        print(render_checklist(items), file=sys.stderr)
    else:
        print(render_checklist(items))
        if args.json:
            Path(args.json).write_text(report + "\n")
    return 1 if any(i.status == "fail" for i in items) else 0


if __name__ == "__main__":
    sys.exit(main())
