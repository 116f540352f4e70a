"""Support for the generated codecs: problem collection, tree walking, trusted construction.

The generated decoders call these on every element, so they are small; everything that only
runs when a message is wrong (paths, positions, wording) is deferred until a problem is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree

from ccbmdm.runtime.model import ContractModel

M = TypeVar("M", bound=ContractModel)
V = TypeVar("V")

XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Hints to a schema processor; never fetched or acted on, so they are tolerated on the root.
_ROOT_HINTS = {f"{{{XSI}}}schemaLocation", f"{{{XSI}}}noNamespaceSchemaLocation"}
_ATTRIBUTES = etree.XPath("//@*")


@dataclass(frozen=True)
class Problem:
    """One way a message breaks its contract, with where it is."""

    line: int | None
    column: int | None
    xpath: str
    message: str

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}: " if self.line is not None else ""
        return f"{where}{self.xpath}: {self.message}"


class ContractViolation(ValueError):
    """A well-formed message that does not satisfy its contract; lists every problem found."""

    def __init__(self, contract: str, problems: list[Problem]) -> None:
        self.contract = contract
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{contract}: {len(problems)} problem(s)\n{lines}")


class Problems:
    """Collects problems while a decoder walks one message."""

    __slots__ = ("_found",)

    def __init__(self) -> None:
        self._found: list[tuple[etree._Element, str]] = []

    def __bool__(self) -> bool:
        return bool(self._found)

    def add(self, element: etree._Element, message: str) -> None:
        self._found.append((element, message))

    def missing(self, parent: etree._Element, kids: list[etree._Element], at: int, name: str) -> Any:
        found = f"found <{etree.QName(kids[at]).localname}>" if at < len(kids) else "found nothing"
        self.add(parent, f"missing required element <{name}> ({found} at its place)")
        return None

    def occurrences(self, parent: etree._Element, name: str, count: int, low: int, high: int | None) -> None:
        if count < low:
            self.add(parent, f"<{name}> occurs {count} time(s); at least {low} required")
        elif high is not None and count > high:
            self.add(parent, f"<{name}> occurs {count} times; at most {high} allowed")

    def misplaced(self, kids: list[etree._Element], at: int) -> None:
        for kid in kids[at:]:
            self.add(kid, f"element <{etree.QName(kid).localname}> is out of order or repeated")

    def raise_for(self, contract: str, root: etree._Element) -> None:
        """Raise ContractViolation listing every problem, in document order."""
        source = _source_lines(root)
        problems = [
            Problem(*_locate(element, source), xpath_of(element), message)
            for element, message in self._found
        ]
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))
        raise ContractViolation(contract, problems)


def check_attributes(root: etree._Element, problems: Problems) -> None:
    """The contracts declare no attributes: report every one (XSI hints on the root excepted)."""
    found = _ATTRIBUTES(root)
    if not found:
        return
    assert isinstance(found, list)
    for attribute in found:
        owner = attribute.getparent()  # type: ignore[union-attr]
        name = attribute.attrname  # type: ignore[union-attr]
        if owner is root and name in _ROOT_HINTS:
            continue
        problems.add(owner, f"attribute {etree.QName(name).localname!r} is not allowed")


def children(
    element: etree._Element, known: frozenset[str] | None, problems: Problems
) -> tuple[list[etree._Element], list[str]]:
    """The child elements and their tags; reports text between them and unknown elements.

    Comments and processing instructions are skipped, as a schema validator skips them.
    """
    text = element.text
    if text and not text.isspace():
        problems.add(element, f"text {text.strip()[:40]!r} is not allowed here")
    kids: list[etree._Element] = []
    tags: list[str] = []
    for kid in element:
        tail = kid.tail
        if tail and not tail.isspace():
            problems.add(element, f"text {tail.strip()[:40]!r} is not allowed here")
        tag = kid.tag
        if tag.__class__ is not str:
            continue
        if known is not None and tag not in known:
            problems.add(kid, f"unknown element <{_display_tag(kid, element)}>")
            continue
        kids.append(kid)
        tags.append(tag)  # type: ignore[arg-type]
    return kids, tags


def leaf(element: etree._Element, parse: Callable[[str], V], problems: Problems) -> V | None:
    """The value of a simple-content element, or None after reporting why there is none."""
    if len(element):
        problems.add(element, "must hold a value, not elements")
        return None
    try:
        return parse(element.text or "")
    except ValueError as exc:
        problems.add(element, str(exc))
        return None


def foreign(element: etree._Element) -> str:
    """An element of another namespace inside an xs:any wildcard, kept as XML text."""
    return etree.tostring(element, encoding="unicode", with_tail=False)


def build(model: type[M], values: dict[str, Any]) -> M:
    """Construct a model from values the codec has already checked against every facet.

    Validation through pydantic would repeat those checks field by field; this sets the fields
    directly, as ``model_construct`` does, without its per-field default handling.
    """
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", set(values))
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance


_ESCAPES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord("\r"): "&#13;"}


def escape(text: str) -> str:
    """Escape character data; carriage returns survive a parse only as a reference."""
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def xpath_of(element: etree._Element) -> str:
    """A readable XPath: local names, with a position where a name repeats among siblings."""
    steps = []
    node: etree._Element | None = element
    while node is not None:
        parent = node.getparent()
        name = etree.QName(node).localname
        if parent is not None:
            same = [kid for kid in parent if kid.tag == node.tag]
            if len(same) > 1:
                name += f"[{same.index(node) + 1}]"
        steps.append(name)
        node = parent
    return "/" + "/".join(reversed(steps))


def _display_tag(kid: etree._Element, parent: etree._Element) -> str:
    qname = etree.QName(kid)
    if qname.namespace == etree.QName(parent).namespace:
        return qname.localname
    return f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname


def _source_lines(root: etree._Element) -> list[str] | None:
    source = getattr(root.getroottree(), "_ccbmdm_source", None)
    return source if isinstance(source, list) else None


def _locate(element: etree._Element, source: list[str] | None) -> tuple[int | None, int | None]:
    """Line and column of an element's start tag; the column is found in the source line."""
    line = element.sourceline
    if line is None:
        return None, None
    if source is None or line > len(source):
        return line, None
    text = source[line - 1]
    qname = etree.QName(element)
    prefix = element.prefix
    start = f"<{prefix}:{qname.localname}" if prefix else f"<{qname.localname}"
    # Earlier elements with the same tag on the same line come first.
    before = 0
    for other in element.getroottree().iter(element.tag):
        if other is element:
            break
        if other.sourceline == line:
            before += 1
    position = -1
    for _ in range(before + 1):
        position = _find_tag(text, start, position + 1)
        if position < 0:
            return line, None
    return line, position + 1


def _find_tag(text: str, start: str, offset: int) -> int:
    while True:
        position = text.find(start, offset)
        if position < 0:
            return -1
        end = position + len(start)
        if end >= len(text) or text[end] in " \t\r\n/>":
            return position
        offset = end


def remember_source(root: etree._Element, data: bytes) -> None:
    """Keep the message's lines beside its tree, for columns in problem reports."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return
    tree = root.getroottree()
    try:
        tree._ccbmdm_source = lines  # type: ignore[attr-defined]
    except AttributeError:
        pass
