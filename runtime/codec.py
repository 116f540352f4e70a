"""Support for the generated codecs: problem collection, tree walking, trusted construction.

The generated decoders call these on every element, so they are small; everything that only
runs when a message is wrong (paths, positions, wording) is deferred until a problem is raised.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree
from pydantic import BaseModel

from ccbmdm.runtime import lexical
from ccbmdm.runtime.model import ContractModel

M = TypeVar("M", bound=ContractModel)

XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Hints to a schema processor; never fetched or acted on, so they are tolerated on the root.
_ROOT_HINTS = {f"{{{XSI}}}schemaLocation", f"{{{XSI}}}noNamespaceSchemaLocation"}
_ATTRIBUTES = etree.XPath("//@*")
_ANY_ATTRIBUTE = etree.XPath("boolean(//@*)")


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

    def __init__(
        self,
        contract: str,
        problems: list[Problem],
        found: list[tuple[etree._Element, str]] | None = None,
    ) -> None:
        self.contract = contract
        self.problems = problems
        self._found = found or []
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{contract}: {len(problems)} problem(s)\n{lines}")

    def with_source(self, data: bytes) -> ContractViolation:
        """The same violation with columns, found in the message's text."""
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            return self
        return _violation(self.contract, self._found, lines)


def _violation(
    contract: str, found: list[tuple[etree._Element, str]], source: list[str] | None
) -> ContractViolation:
    problems = [
        Problem(*_locate(element, source), xpath_of(element), message) for element, message in found
    ]
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    return ContractViolation(contract, problems, found)


class Problems:
    """Collects problems while a decoder walks one message."""

    __slots__ = ("_found",)

    def __init__(self) -> None:
        self._found: list[tuple[etree._Element, str]] = []

    def __bool__(self) -> bool:
        return bool(self._found)

    def add(self, element: etree._Element, message: str) -> None:
        self._found.append((element, message))

    def compound(self, element: etree._Element) -> Any:
        self.add(element, "must hold a value, not elements")
        return None

    def missing(
        self, parent: etree._Element, kids: list[etree._Element], at: int, name: str
    ) -> Any:
        found = f"found <{etree.QName(kids[at]).localname}>" if at < len(kids) else "found nothing"
        self.add(parent, f"missing required element <{name}> ({found} at its place)")
        return None

    def repeated(self, element: etree._Element) -> None:
        self.add(element, f"element <{etree.QName(element).localname}> may occur only once here")

    def occurrences(
        self, parent: etree._Element, name: str, count: int, low: int, high: int | None
    ) -> None:
        if count < low:
            self.add(parent, f"<{name}> occurs {count} time(s); at least {low} required")
        elif high is not None and count > high:
            self.add(parent, f"<{name}> occurs {count} times; at most {high} allowed")

    def misplaced(self, kids: list[etree._Element], at: int) -> None:
        for kid in kids[at:]:
            self.add(kid, f"element <{etree.QName(kid).localname}> is out of order or repeated")

    def raise_for(self, contract: str, root: etree._Element) -> None:
        """Raise ContractViolation listing every problem, in document order."""
        raise _violation(contract, self._found, None)


def check_attributes(root: etree._Element, problems: Problems) -> None:
    """The contracts declare no attributes: report every one (XSI hints on the root excepted).

    One XPath, evaluated in C, answers for the whole document; the list is built only when it
    finds any.
    """
    if not _ANY_ATTRIBUTE(root):
        return
    found = _ATTRIBUTES(root)
    assert isinstance(found, list)
    for attribute in found:
        owner = attribute.getparent()
        name = attribute.attrname
        if owner is root and name in _ROOT_HINTS:
            continue
        problems.add(owner, f"attribute {etree.QName(name).localname!r} is not allowed")


def children(
    element: etree._Element,
    known: frozenset[str] | None,
    problems: Problems,
    personal: bool = False,
) -> tuple[list[etree._Element], list[str]]:
    """The child elements and their tags, less the unknown ones; reports text beside them
    (without quoting it inside personal data).

    The hardened parser drops comments, processing instructions and the blank text between
    elements, so every child is an element and any text left here is content out of place.
    """
    text = element.text
    if text is not None and not text.isspace():
        problems.add(element, _stray(text, personal))
    kids = list(element)
    tags: list[str] = []
    for kid in kids:
        tail = kid.tail
        if tail is not None and not tail.isspace():
            problems.add(element, _stray(tail, personal))
        tags.append(kid.tag)  # type: ignore[arg-type]
    if known is None or known.issuperset(tags):
        return kids, tags
    kept = []
    for kid, tag in zip(kids, tags, strict=True):
        if tag in known:
            kept.append(kid)
        else:
            problems.add(kid, f"unknown element <{_display_tag(kid, element)}>")
    return kept, [kid.tag for kid in kept]  # type: ignore[misc]


def _stray(text: str, personal: bool) -> str:
    shown = lexical.WITHHELD if personal else repr(text.strip()[:40])
    return f"text {shown} is not allowed here"


def foreign(element: etree._Element) -> str:
    """An element of another namespace inside an xs:any wildcard, kept as XML text.

    Namespace declarations it inherits but does not use are dropped, so the text is the same
    wherever the element stood.
    """
    detached = copy.deepcopy(element)
    etree.cleanup_namespaces(detached)
    return etree.tostring(detached, encoding="unicode", with_tail=False)


_new = object.__new__
_set = object.__setattr__
# The slots pydantic keeps beside a model's fields, set through their descriptors directly.
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def build(model: type[M], values: dict[str, Any]) -> M:
    """Construct a model from values the codec has already checked against every facet.

    Validation through pydantic would repeat those checks field by field; this sets the fields
    directly, as ``model_construct`` does, without its per-field default handling.
    """
    instance = _new(model)
    _set(instance, "__dict__", values)
    _set_fields_set(instance, set(values))
    _set_extra(instance, None)
    _set_private(instance, None)
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
    for other in element.getroottree().iter(qname.text):
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
