"""A small builder of indented Python source lines, used by the binder to emit transformers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class Writer:
    """Lines of one generated function body, with indentation and fresh variable names."""

    def __init__(self, counter: list[int] | None = None) -> None:
        self.lines: list[str] = []
        self._indent = 0
        self._counter = counter if counter is not None else [0]

    def fresh(self, prefix: str = "v") -> str:
        self._counter[0] += 1
        return f"{prefix}{self._counter[0]}"

    def line(self, text: str) -> None:
        for part in text.split("\n"):
            self.lines.append("    " * self._indent + part)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self._indent += 1
        try:
            yield
        finally:
            self._indent -= 1

    def extend(self, other: Writer) -> None:
        for text in other.lines:
            self.lines.append("    " * self._indent + text)

    def child(self) -> Writer:
        """A writer for a nested block that shares this one's variable names."""
        return Writer(self._counter)
