"""The pre-launch checklist's items and how they are shown: a checklist on screen, JSON for
machines. Each item passes, fails with the fix, or asks to be confirmed by hand with the
exact step."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["pass", "fail", "manual"]
MARKS = {"pass": "[x]", "fail": "[!]", "manual": "[?]"}


@dataclass(frozen=True)
class Item:
    id: str
    title: str
    status: Status
    detail: str = ""
    fix: str = ""  # what to do: for a failure, the fix; for "manual", the step by hand


def passed(id: str, title: str, detail: str = "") -> Item:
    return Item(id, title, "pass", detail)


def failed(id: str, title: str, detail: str, fix: str) -> Item:
    return Item(id, title, "fail", detail, fix)


def by_hand(id: str, title: str, step: str, detail: str = "") -> Item:
    return Item(id, title, "manual", detail, step)


def render_checklist(items: list[Item]) -> str:
    """One line per item (mark, title, detail), the fix or step indented below it."""
    lines = []
    for item in items:
        detail = f": {item.detail}" if item.detail else ""
        lines.append(f"{MARKS[item.status]} {item.title}{detail}")
        if item.fix:
            label = "fix" if item.status == "fail" else "by hand"
            first, *rest = item.fix.splitlines()
            lines += [f"      {label}: {first}", *(f"        {line}" for line in rest)]
    counts = {s: sum(i.status == s for i in items) for s in MARKS}
    lines.append(
        f"\n{counts['pass']} passed, {counts['fail']} failed, {counts['manual']} to confirm by hand"
    )
    return "\n".join(lines)


def render_json(items: list[Item]) -> str:
    ok = not any(i.status == "fail" for i in items)
    return json.dumps({"ok": ok, "items": [asdict(i) for i in items]}, indent=2)
