"""Small writers of Markdown and HTML that every generated page shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape


class Code(str):
    """A table cell shown as code (a rule as the mapping writes it)."""


def _cell(text: str) -> str:
    return f"<code>{escape(text)}</code>" if isinstance(text, Code) and text else escape(text)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], name: str) -> str:
    """An HTML table of plain-text cells: XSD patterns and documentation hold ``|``, ``<`` and
    backticks that a Markdown table would misread, so every cell is escaped as text (a
    :class:`Code` cell as code). ``name`` goes in a data attribute: material styles only tables
    without a class."""
    # Cells apart: the search index reads the text of the page without its tags.
    head = " ".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join(
        "<tr>" + " ".join(f"<td>{_cell(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    return (
        f'<table data-table="{name}">\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table>\n"
    )
