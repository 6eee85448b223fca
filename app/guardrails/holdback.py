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
from collections.abc import Callable, Iterable

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
        if self.allowed is None:  # any complete match is a violation: one search
            match = self.pattern.search(text, start, partial=not final)
            matches = () if match is None else (match,)
        else:
            matches = self.pattern.finditer(text, start, partial=not final)
        for match in matches:
            if match.partial:
                self.hold = match.start()
                return None
            if self.allowed is None or not self.allowed(match):
                return match.group(0)[:EXCERPT_CHARS]
        self.hold = len(text)
        return None


class RunPrefixes:
    """Every proper prefix of a set of word runs (tuples of `size` lower-cased words), with
    the words that may follow it; built once per system prompt (`output.py` caches it)."""

    def __init__(self, runs: Iterable[tuple[str, ...]], size: int) -> None:
        self.follow: dict[tuple[str, ...], set[str]] = {}
        for run in runs:
            for i in range(size):
                self.follow.setdefault(run[:i], set()).add(run[i])
        # Every beginning of a run's first word: what an unfinished word alone may be.
        self.first_starts = {
            word[:end] for word in self.follow.get((), ()) for end in range(1, len(word) + 1)
        }


class RunWatch:
    """One word-run rule: `size` words in a row that form one of `runs` is a violation.

    `prefixes` may come from a superset of `runs` (the whole system prompt's runs, before
    those the sources also contain are left out): the watch then holds a little more
    than it needs, never less."""

    def __init__(
        self,
        rule: str,
        runs: set[tuple[str, ...]],
        size: int,
        prefixes: RunPrefixes | None = None,
    ) -> None:
        self.rule = rule
        self.runs = runs
        self.size = size
        self.prefixes = prefixes if prefixes is not None else RunPrefixes(runs, size)
        self.checked = 0  # words already checked as the end of a run
        # The trailing runs of words that begin a forbidden run, earliest first:
        # (where the run starts in the text, its words).
        self.open: list[tuple[int, tuple[str, ...]]] = []

    def scan(self, words: list[str], starts: list[int]) -> str | None:
        """The first run among those ending in words not yet checked, or None.

        `words` are the completed words (lower-cased), `starts` their indices in the text."""
        follow = self.prefixes.follow
        for end in range(self.checked, len(words)):
            word = (words[end],)
            run = tuple(words[end - self.size + 1 : end + 1])
            if end >= self.size - 1 and run in self.runs:
                self.checked = len(words)
                return " ".join(run)
            grown = [(at, run + word) for at, run in self.open]
            grown.append((starts[end], word))
            self.open = [(at, run) for at, run in grown if run in follow]
        self.checked = len(words)
        return None

    def hold(self, unfinished: str, at: int) -> int | None:
        """Where the earliest trailing run that could still become a violation starts, or
        None when nothing needs holding. `unfinished` is the lower-cased word touching the
        end of the text ("" when the text ends between words) and `at` its index."""
        for start, run in self.open:
            if not unfinished or any(w.startswith(unfinished) for w in self.prefixes.follow[run]):
                return start
        if unfinished and unfinished in self.prefixes.first_starts:
            return at
        return None
