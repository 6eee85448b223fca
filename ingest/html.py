"""HTML to titled sections, fit for manuals (Sphinx, DocBook, Javadoc, man pages as HTML).

What is kept, in document order, as paragraphs (blocks separated by a blank line):
- text of paragraphs, list items and headings' sections;
- definition lists: each term with its description (``term: description``), because on a
  reference page the term (``<dt>``) is where the option, parameter or function name lives.
  A term that carries an ``id`` (an API entry such as Sphinx's ``os.getcwd``) opens its own
  sub-section whose heading is the term, so the name is in the heading path;
- tables, one row a line with cells separated by `` | ``; code (``<pre>``) with its lines.

What is dropped: scripts and styles; page chrome: ``<nav>``, ``<header>``, ``<footer>``,
``<aside>``, ARIA navigation/banner/contentinfo/search regions, and the classes that
DocBook and Sphinx use for navigation bars, sidebars and footers ("Prev Up Home Next").
When the page marks its main content (``<main>`` or ``role="main"``) only that is read.

Admonitions (Note, Tip, Warning…) never become headings: their title starts their text
("Note: …") inside the section they belong to. A DocBook reference page's name (the
``refnamediv``) heads its sections, so "Synopsis" reads "CREATE TABLE › Synopsis".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bs4 import Tag

_DROP_TAGS = frozenset(
    {"script", "style", "noscript", "template", "nav", "header", "footer", "aside"}
)
_DROP_ROLES = frozenset({"navigation", "banner", "contentinfo", "search", "complementary"})
_DROP_CLASSES = frozenset(
    {
        "navheader",
        "navfooter",
        "sphinxsidebar",
        "related",
        "footer",
        "header",
        "breadcrumb",
        "breadcrumbs",
        "mobile-nav",
        "menu-wrapper",
        "headerlink",
        "skip-link",
        "sidebar",
        "toc",
        "NavBarTop",
        "NavBarBottom",
        "topNav",
        "bottomNav",
        "subNav",
    }
)
_ADMONITIONS = frozenset(
    {"admonition", "note", "tip", "warning", "caution", "important", "hint", "danger",
     "attention", "error", "seealso", "versionadded", "versionchanged", "deprecated"}
)  # fmt: skip
_ADMONITION_TITLE_CLASSES = frozenset({"admonition-title", "title"})
_INLINE = frozenset(
    {"a", "abbr", "acronym", "b", "bdi", "bdo", "big", "br", "cite", "code", "data", "del",
     "dfn", "em", "font", "i", "img", "ins", "kbd", "mark", "q", "s", "samp", "small", "span",
     "strong", "sub", "sup", "time", "tt", "u", "var", "wbr"}
)  # fmt: skip
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HTML_SPACE = re.compile(r"[ \t\r\n]+")
_MAX_TERM_HEADING = 120  # characters of an API term kept in a heading path


@dataclass
class HtmlSection:
    headings: tuple[str, ...]
    blocks: list[str] = field(default_factory=list)


def html_sections(source: str) -> tuple[str, list[HtmlSection]]:
    """The page's title (from ``<title>``, else its first heading; may be empty) and its
    sections in order; a section's blocks are its paragraphs, each one line of text except
    code and table rows, which keep their line breaks."""
    from bs4 import BeautifulSoup, Tag

    soup = BeautifulSoup(source, "html.parser")
    title = _squash(soup.title.get_text(" ")) if soup.title else ""
    for tag in soup(["head", "title"]):
        tag.decompose()
    for tag in [t for t in soup.descendants if isinstance(t, Tag) and _is_chrome(t)]:
        if not tag.decomposed:
            tag.decompose()
    root = soup.find("main") or soup.find(_is_main) or soup.body or soup
    walker = _Walker()
    walker.walk(root)
    sections = walker.sections
    first = next((s.headings[0] for s in sections if s.headings), "")
    return title or first, sections


def _is_main(tag: Tag) -> bool:
    return tag.get("role") == "main"


def _is_chrome(tag: Tag) -> bool:
    if tag.name in _DROP_TAGS or (tag.get("role") or "") in _DROP_ROLES:
        return True
    return bool(_classes(tag) & _DROP_CLASSES)


def _has_blocks(tag: Tag) -> bool:
    """Whether anything inside `tag` is more than inline text."""
    from bs4 import Tag

    return any(isinstance(t, Tag) and t.name not in _INLINE for t in tag.descendants)


def _classes(tag: Tag) -> set[str]:
    value: Any = tag.get("class") or []
    return {value} if isinstance(value, str) else set(value)


def _squash(text: str) -> str:
    """HTML's whitespace (space, tab, CR, LF) collapsed to single spaces; other control
    characters stay for the readers' cleaning, which turns a vertical tab into a break."""
    return _HTML_SPACE.sub(" ", text).strip()


def _text(tag: Tag) -> str:
    return _squash(tag.get_text())


def _term_heading(term: str) -> str:
    """An API term as a heading: its name without the parameter list ("os.getcwd")."""
    name = term.split("(")[0].strip() or term
    return name[:_MAX_TERM_HEADING]


class _Walker:
    """Walks the content tree, keeping a stack of (level, heading) and the open section."""

    def __init__(self) -> None:
        self.stack: list[tuple[float, str]] = []
        self.sections: list[HtmlSection] = [HtmlSection(())]

    def _open(self, level: float, heading: str) -> None:
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, heading))
        self.sections.append(HtmlSection(tuple(h for _, h in self.stack)))

    def _add(self, block: str) -> None:
        if block.strip():
            self.sections[-1].blocks.append(block.strip())

    def walk(self, tag: Tag) -> None:
        """Read `tag`'s children: runs of inline content become one block each."""
        from bs4 import NavigableString, Tag
        from bs4.element import PreformattedString

        run: list[str] = []
        for child in tag.children:
            if isinstance(child, Tag) and (child.name not in _INLINE or _has_blocks(child)):
                self._add(_squash("".join(run)))
                run = []
                self._element(child)
            elif isinstance(child, Tag):
                run.append(child.get_text())
            elif isinstance(child, NavigableString) and not isinstance(child, PreformattedString):
                run.append(str(child))
        self._add(_squash("".join(run)))

    def _element(self, tag: Tag) -> None:
        name = tag.name
        classes = _classes(tag)
        if name in _HEADINGS:
            self._open(int(name[1]), _text(tag))
        elif "refnamediv" in classes:
            self._reference_name(tag)
        elif classes & _ADMONITIONS and name in {"div", "aside", "section", "blockquote"}:
            self._admonition(tag)
        elif name == "dl":
            self._definitions(tag)
        elif name == "table":
            self._add(_table(tag))
        elif name == "pre":
            self._add(tag.get_text().strip("\n"))
        else:
            self.walk(tag)

    def _reference_name(self, tag: Tag) -> None:
        """DocBook refentry: "CREATE TABLE — define a new table" names the page."""
        line = next((_text(p) for p in tag.find_all("p")), "") or _text(tag)
        name = line.split("—")[0].split(" -- ")[0].strip() or line
        # above the page's <h2> sections, below its <h1> when it has one
        self._open(1.5 if any(lvl == 1 for lvl, _ in self.stack) else 1, name)
        self._add(line)

    def _admonition(self, tag: Tag) -> None:
        title_tag = tag.find(
            lambda t: t.name in _HEADINGS or bool(_classes(t) & _ADMONITION_TITLE_CLASSES)
        )
        label = _text(title_tag) if title_tag else ""
        if title_tag:
            title_tag.decompose()
        before = len(self.sections[-1].blocks)
        section = self.sections[-1]
        self.walk(tag)
        if label and section is self.sections[-1] and len(section.blocks) > before:
            section.blocks[before] = f"{label.rstrip(':')}: {section.blocks[before]}"
        elif label and len(section.blocks) == before:
            self._add(label)

    def _definitions(self, tag: Tag) -> None:
        """Each ``<dt>`` with its ``<dd>``; an API term with an id heads its own section."""
        saved = list(self.stack)
        level = (saved[-1][0] if saved else 0) + 1
        term = ""
        for child in tag.find_all(["dt", "dd"], recursive=False):
            if child.name == "dt":
                term = _text(child)
                if child.get("id") and term:
                    self._open(level, _term_heading(term))
                    self._add(term)
                    term = ""
                continue
            before = len(self.sections[-1].blocks)
            self.walk(child)
            blocks = self.sections[-1].blocks
            if term and len(blocks) > before:
                blocks[before] = f"{term}: {blocks[before]}"
            elif term:
                self._add(term)
            term = ""
        if term:
            self._add(term)
        if self.stack != saved:  # back to the section the list was in
            self.stack = saved
            self.sections.append(HtmlSection(tuple(h for _, h in saved)))


def _table(tag: Tag) -> str:
    rows = []
    for row in tag.find_all("tr"):
        cells = [_text(c) for c in row.find_all(["th", "td"])]
        if any(cells):
            rows.append(" | ".join(cells))
    return "\n".join(rows)
