"""Small writers of Markdown and HTML that every generated page shares."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape


class Code(str):
    """A table cell shown as code (a rule as the mapping writes it)."""


@dataclass(frozen=True)
class Link:
    """A table cell whose text links elsewhere (a section of the same page, say)."""

    text: str
    href: str


def _cell(cell: str | Link) -> str:
    if isinstance(cell, Link):
        return f'<a href="{escape(cell.href)}">{escape(cell.text)}</a>'
    return f"<code>{escape(cell)}</code>" if isinstance(cell, Code) and cell else escape(cell)


def table(headers: Sequence[str], rows: Iterable[Sequence[str | Link]], name: str) -> str:
    """An HTML table of plain-text cells: XSD patterns and documentation hold ``|``, ``<`` and
    backticks that a Markdown table would misread, so every cell is escaped as text (a
    :class:`Code` cell as code, a :class:`Link` cell as a link). ``name`` goes in a data
    attribute: material styles only tables without a class."""
    # Cells apart: the search index reads the text of the page without its tags.
    head = " ".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + " ".join(f"<td>{_cell(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table data-table="{name}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table>\n"
    )


# What Markdown would read as syntax inside a line of text; `<` and `&` become entities.
_INLINE_SYNTAX = re.compile(r"([\\`*_\[\]{}|!#])")
# ... and at the start of a paragraph: a list item or a quote.
_BLOCK_START = re.compile(r"^(\d*)([-+>.)])")


def inline(text: str) -> str:
    """Plain text as Markdown that shows it as written: help texts and findings hold ``[``,
    ``<``, ``|``, backticks and underscores that Markdown would read as links, tags, tables,
    code or emphasis."""
    escaped = _INLINE_SYNTAX.sub(r"\\\1", escape(text, quote=False))
    return _BLOCK_START.sub(r"\1\\\2", escaped, count=1)
