"""Where a violation could still start: the output guard holds back from there, no further.

Two kinds of watch, one per output rule, each fed the growing answer:

- `PatternWatch` for the regex rules (secret, markup, citation). It scans with the `regex`
  package's partial matching: a match that runs into the end of the text and could still
  complete once more text comes is *partial*, and the watch holds from its start. Text
  before the earliest partial match can never become part of a match (a match attempt that
  failed before reaching the end of the text fails whatever follows), so it is released.
- `RunWatch` for the word-run rules (prompt_leak, planted_instruction). It keeps every
  prefix of the forbidden word runs; it holds from the start of the earliest trailing run
  of words that is such a prefix, the unfinished last word counting when it begins a word
  that could come next.

Each scan covers only the text from the watch's own hold point on, so the work per piece is
the piece plus what is held (a few words): linear in the answer's length.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import regex

EXCERPT_CHARS = 200  # the longest excerpt a verdict keeps


def partial_pattern(pattern: re.Pattern[str]) -> regex.Pattern[str]:
    """The `re` pattern compiled by the `regex` package, which can match partially."""
    return regex.compile(pattern.pattern, regex.IGNORECASE if pattern.flags & re.I else 0)


class PatternWatch:
    """One regex rule over the growing text. `allowed(match)` (when given) says which
    complete matches are fine (a citation of a source that exists); any other complete
    match is a violation."""

    def __init__(
        self,
        rule: str,
        pattern: regex.Pattern[str],
        allowed: Callable[[regex.Match[str]], bool] | None = None,
    ) -> None:
        self.rule = rule
        self.pattern = pattern
        self.allowed = allowed
        self.hold = 0  # earliest index of the text where a match could still start
        self.scanned = 0  # characters scanned in all, summed over the scans

    def scan(self, text: str, *, final: bool) -> str | None:
        """The first violation's text (at most EXCERPT_CHARS) from `hold` on, or None.

        Moves `hold` to the start of the earliest match that runs into the end of `text`
        and could still complete (to `len(text)` when there is none). With `final`, the
        text is complete: a partial match is no match."""
        start = self.hold
        self.scanned += len(text) - start
        for match in self.pattern.finditer(text, start, partial=not final):
            if match.partial:
                self.hold = match.start()
                return None
            if self.allowed is None or not self.allowed(match):
                return match.group(0)[:EXCERPT_CHARS]
        self.hold = len(text)
        return None


class RunWatch:
    """One word-run rule: `size` words in a row that form one of `runs` is a violation."""

    def __init__(self, rule: str, runs: set[tuple[str, ...]], size: int) -> None:
        self.rule = rule
        self.runs = runs
        self.size = size
        self.checked = 0  # words already checked as the end of a run
        # Every proper prefix of a run (as words), with the words that may follow it.
        self.follow: dict[tuple[str, ...], set[str]] = {}
        for run in runs:
            for i in range(size):
                self.follow.setdefault(run[:i], set()).add(run[i])
        # Every beginning of a run's first word: what an unfinished word alone may be.
        self.first_starts = {
            word[:end] for word in self.follow.get((), ()) for end in range(1, len(word) + 1)
        }

    def scan(self, words: list[str]) -> str | None:
        """The first run among those ending in words not yet checked, or None."""
        found = None
        for end in range(max(self.checked, self.size - 1), len(words)) if self.runs else ():
            run = tuple(words[end - self.size + 1 : end + 1])
            if run in self.runs:
                found = " ".join(run)
                break
        self.checked = len(words)
        return found

    def hold(self, words: list[str], starts: list[int], unfinished: str, at: int) -> int | None:
        """Where the earliest trailing run that could still become a violation starts.

        `words` are the completed words (lower-cased) and `starts` their indices in the
        text; `unfinished` is the lower-cased word touching the end of the text ("" when
        the text ends between words) and `at` its index. None: nothing needs holding."""
        if not self.runs:
            return None
        n = len(words)
        for k in range(max(n - self.size + 1, 0), n):
            follow = self.follow.get(tuple(words[k:n]))
            if follow is not None and (
                not unfinished or any(word.startswith(unfinished) for word in follow)
            ):
                return starts[k]
        if unfinished and unfinished in self.first_starts:
            return at
        return None
