"""The repository stands alone: every page a module, mapping, contract, test or doc cites is in
docs/, every section it cites is a heading of that page, and every project decision (PD-…) it
names is defined on a page."""

from __future__ import annotations

import re
from pathlib import Path

from support import REPO

DOCS = REPO / "docs"
CITING = (
    *("runtime", "codegen", "conformance", "ccbmdm", "mappings", "contracts"),
    *("tests", "benchmarks", "docs"),
)
SUFFIXES = {".py", ".yaml", ".xsd", ".md"}
PAGE = re.compile(r"\bdocs/(?P<page>[a-z-]+)\.md")
SECTION = re.compile(r"§\s?(?P<number>\d+(?:\.\d+)*)")
DECISION = re.compile(r"\bPD-[A-Z]\d{2}\b")
DEFINED = re.compile(r"\*\*(PD-[A-Z]\d{2})\b")
HEADING = re.compile(r"^#+\s+(?:§\s?)?(?P<number>\d+(?:\.\d+)*)\.?\s", re.MULTILINE)


def citing_files() -> list[Path]:
    found = [REPO / "README.md"]
    for folder in CITING:
        found += [
            path
            for path in sorted((REPO / folder).rglob("*"))
            if path.suffix in SUFFIXES and path.is_file()
        ]
    return found


def sections(page: str) -> set[str]:
    return set(HEADING.findall((DOCS / f"{page}.md").read_text(encoding="utf-8")))


def test_every_cited_page_and_section_is_in_docs() -> None:
    missing: list[str] = []
    for path in citing_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            mentions = list(PAGE.finditer(line))
            for index, mention in enumerate(mentions):
                page = mention["page"]
                where = f"{path.relative_to(REPO)}:{number}"
                if not (DOCS / f"{page}.md").is_file():
                    missing.append(f"{where}: no page docs/{page}.md")
                    continue
                end = mentions[index + 1].start() if index + 1 < len(mentions) else len(line)
                known = sections(page)
                for cited in SECTION.finditer(line, mention.end(), end):
                    if cited["number"] not in known:
                        missing.append(f"{where}: docs/{page}.md has no section {cited[0]}")
    assert missing == []


def test_every_decision_named_is_defined_on_a_page() -> None:
    defined = {
        decision
        for page in DOCS.glob("*.md")
        for decision in DEFINED.findall(page.read_text(encoding="utf-8"))
    }
    named = {
        f"{decision} ({path.relative_to(REPO)})"
        for path in citing_files()
        for decision in DECISION.findall(path.read_text(encoding="utf-8"))
        if decision not in defined
    }
    assert named == set()
    assert len(defined) >= 75
