"""What a reader sees holds no notes about how the book was made.

The chapters (markdown and code of the notebooks), the prose pages in ``book/`` and
the dataset card (``data/card_template.md`` and the ``data/README.md`` generated from
it) are searched for phrases of the book's development process: its build machine,
test markers, pages that are generated, the order in which compounds were computed.
The history of the dataset belongs in the changelog (``book/changelog.md``), which is
exempt. ``tests/test_browser.py`` searches the built HTML for the same phrases.
"""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Regular expressions (case-insensitive unless they say otherwise) of development notes.
DEVELOPMENT_PHRASES = [
    r"build machine",
    r"updates itself",
    r"(?:page|card|file) is generated",
    r"card_template",
    r"the prose is in",
    r"(?-i:NBVAL)",
    r"nbval-(?:check-output|ignore-output|skip)",
    r"\b(?:since|after|at|from) compound \d+",
    r"\b(?:for )?the first \d+ compounds?\b",
    r"\bfor the first \d+\b",
    r"\bpredate",
    r"which is why binaries dominate",
    r"until a GPU has run",
    r"\bevery build\b",
    r"\b(?-i:TODO|FIXME|XXX)\b",
]
_PATTERNS = [re.compile(p, re.I) for p in DEVELOPMENT_PHRASES]

#: Pages that tell the dataset's history on purpose (documents, without suffix).
HISTORY_PAGES = {"book/changelog"}


def _strip_html(text: str) -> str:
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return html_lib.unescape(text)


def visible_text_hits(text: str, html: bool = False) -> list[tuple[str, str]]:
    """(phrase, line) for every development phrase in the text a reader sees.

    HTML comments are invisible; with ``html=True`` so are tags, scripts and styles.
    """
    text = _strip_html(text) if html else re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"[ \t]+", " ", text)
    hits = []
    for pattern in _PATTERNS:
        for m in pattern.finditer(text):
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            hits.append((pattern.pattern, text[start:end if end >= 0 else None].strip()[:200]))
    return hits


def reader_sources() -> list[Path]:
    files = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.md"))
    files += [ROOT / "data" / "card_template.md", ROOT / "data" / "README.md"]
    return [f for f in files if str(f.relative_to(ROOT).with_suffix("")) not in HISTORY_PAGES]


@pytest.mark.parametrize("path", reader_sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_development_language_in_sources(path):
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        parts = [(f"cell {i}", c.source) for i, c in enumerate(nb.cells)]
    else:
        parts = [("", path.read_text())]
    hits = [f"{where}: {phrase!r} in {line!r}" for where, text in parts for phrase, line in visible_text_hits(text)]
    assert not hits, f"{path.relative_to(ROOT)} tells readers about the book's development:\n" + "\n".join(hits)


def test_phrases_are_caught():
    assert visible_text_hits("The book's own build machine has no GPU.")
    assert visible_text_hits("<p>Since compound 495 the cost</p>", html=True)
    assert visible_text_hits("# NBVAL_CHECK_OUTPUT")
    assert not visible_text_hits("<!-- This page is generated: the prose is in data/card_template.md -->")
    assert not visible_text_hits("<p>a</p><!-- the card is generated --><script>'build machine'</script>", html=True)
    assert not visible_text_hits("make test   # unit tests plus every notebook under nbval")


def test_changelog_has_every_protocol_version():
    """The card's versions table points to book/changelog.md for what each version changed."""
    from leanecd.dft import PROTOCOL_VERSIONS

    text = (ROOT / "book" / "changelog.md").read_text()
    missing = [v for v in PROTOCOL_VERSIONS if f"### {v}\n" not in text]
    assert not missing, f"book/changelog.md has no section for protocol versions {missing}"
    assert "book/changelog" in (ROOT / "_toc.yml").read_text()


def test_the_library_map_names_every_module():
    """book/library.md is the library's map: a module added without a place in it fails here."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "book" / "library.md").read_text()
    lib = root / "lib" / "leanecd"
    modules = {p.stem for p in lib.glob("*.py") if p.stem != "__init__"}
    modules |= {p.stem for p in (lib / "dft").glob("*.py") if not p.stem.startswith("__")}
    missing = sorted(m for m in modules if not re.search(rf"\b{m}\b", text))
    assert not missing, f"book/library.md does not place: {missing}"
