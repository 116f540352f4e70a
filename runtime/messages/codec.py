"""Support for the generated codecs: problem collection, tree walking, trusted construction.

The generated decoders call these on every element, so they are small; everything that only
runs when a message is wrong (paths, positions, wording) is deferred until a problem is raised,
and then done in one walk of the tree and one scan of the text, however many problems there are.
"""

from __future__ import annotations

import codecs
import copy
import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree
from pydantic import BaseModel

from ccbmdm.runtime.messages import lexical
from ccbmdm.runtime.messages.model import ContractModel

M = TypeVar("M", bound=ContractModel)

XSI = "http://www.w3.org/2001/XMLSchema-instance"
# Hints to a schema processor; never fetched or acted on, so they are tolerated on the root.
_ROOT_HINTS = {f"{{{XSI}}}schemaLocation", f"{{{XSI}}}noNamespaceSchemaLocation"}
# Without the EXSLT regular expressions, which lxml would register for every evaluation; the
# attributes of elements only, which is where attributes are, without a look at each text node.
_WITH_ATTRIBUTES = etree.XPath("//*[@*]", regexp=False)
# Whether any element of a message has an attribute (one XPath, evaluated in C).
ANY_ATTRIBUTE = etree.XPath("boolean(//*/@*)", regexp=False)

# A report lists at most this many problems and counts the rest: enough to mend a message by,
# and a bound on what a message with millions of wrong elements costs to answer.
MAX_REPORTED = 100


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


# A problem as found: the order it was found in, the element it is about, what is wrong.
_Found = tuple[int, etree._Element, str]


class ContractViolation(ValueError):
    """A well-formed message that does not satisfy its contract.

    ``problems`` lists the first ``MAX_REPORTED`` problems in document order, ``total`` counts
    every problem found and ``more`` those beyond the list.
    """

    def __init__(
        self,
        contract: str,
        problems: list[Problem],
        total: int | None = None,
        found: list[_Found] | None = None,
        paths: dict[etree._Element, str] | None = None,
    ) -> None:
        self.contract = contract
        self.problems = problems
        self.total = len(problems) if total is None else total
        self._found = found or []
        self._paths = paths or {}
        lines = "".join(f"\n  {problem}" for problem in problems)
        if self.more:
            lines += f"\n  and {self.more} more problem(s)"
        super().__init__(f"{contract}: {self.total} problem(s){lines}")

    @property
    def more(self) -> int:
        """How many problems were found beyond those listed."""
        return self.total - len(self.problems)

    def with_source(self, data: bytes) -> ContractViolation:
        """The same violation with lines and columns found in the message's text."""
        if not self._found:
            return self
        try:
            text = data.decode(_text_encoding(data, self._found[0][1].getroottree()))
        except (LookupError, UnicodeDecodeError):
            return self
        return _violation(self.contract, self._found, self.total, self._paths, text)


def _violation(
    contract: str,
    found: list[_Found],
    total: int,
    paths: dict[etree._Element, str] | None = None,
    text: str | None = None,
) -> ContractViolation:
    """The report of the problems kept: located, given their paths, in document order."""
    elements = [element for _, element, _ in found]
    paths = paths or _paths(elements)
    places = _places(elements, text)
    ordered = sorted(found, key=lambda f: (*(n or 0 for n in places[f[1]]), f[0]))
    problems = [
        Problem(*places[element], paths[element], message) for _, element, message in ordered
    ]
    return ContractViolation(contract, problems, total, found, paths)


class Irregular(Exception):
    """A fast decoder met something out of the ordinary: the checking decoder reads the message
    again and says what, if anything, is wrong."""


class Problems:
    """Collects problems while a decoder walks one message."""

    __slots__ = ("_count", "_first")

    def __init__(self) -> None:
        self._count = 0
        # The first MAX_REPORTED problems by line, as a heap whose top is the last of them.
        self._first: list[tuple[int, int, etree._Element, str]] = []

    def __bool__(self) -> bool:
        return self._count > 0

    def add(self, element: etree._Element, message: str) -> None:
        """Count a problem; keep it if it is among the first MAX_REPORTED by line.

        The parser gives each element its line, not its column: problems on one line are kept
        in the order they were found, and ordered by column once the report is written.
        """
        self._count += 1
        entry = (-(element.sourceline or 0), -self._count, element, message)
        if len(self._first) < MAX_REPORTED:
            heapq.heappush(self._first, entry)
        elif entry > self._first[0]:
            heapq.heapreplace(self._first, entry)

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
        """Raise ContractViolation: the first problems in document order, and how many in all."""
        found = [(-seq, element, message) for _, seq, element, message in self._first]
        raise _violation(contract, found, self._count)


def check_attributes(root: etree._Element, problems: Problems) -> None:
    """The contracts declare no attributes: report every one (XSI hints on the root excepted).

    One XPath, evaluated in C, answers for the whole document; the elements that have any are
    listed only when it finds some, and each problem is worded once for all elements.
    """
    if not ANY_ATTRIBUTE(root):
        return
    owners = _WITH_ATTRIBUTES(root)
    assert isinstance(owners, list)
    wording: dict[str, str] = {}
    for owner in owners:
        for name in owner.attrib:
            if owner is root and name in _ROOT_HINTS:
                continue
            message = wording.get(name)
            if message is None:
                message = wording[name] = (
                    f"attribute {etree.QName(name).localname!r} is not allowed"
                )
            problems.add(owner, message)


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
    unknown: dict[str, str] = {}  # the problem with each unknown tag, worded once
    for kid, tag in zip(kids, tags, strict=True):
        if tag in known:
            kept.append(kid)
            continue
        message = unknown.get(tag)
        if message is None:
            message = unknown[tag] = f"unknown element <{_display_tag(kid, element)}>"
        problems.add(kid, message)
    return kept, [tag for tag in tags if tag in known]


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


# A model made without validation: the instance, then its fields and the slots pydantic keeps
# beside them, set through their descriptors directly (``build``, and the fast decoders in line).
new_model = object.__new__
set_fields = BaseModel.__dict__["__dict__"].__set__
set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def build(model: type[M], values: dict[str, Any]) -> M:
    """Construct a model from values the codec has already checked against every facet.

    Validation through pydantic would repeat those checks field by field; this sets the fields
    directly, as ``model_construct`` does, without its per-field default handling.
    """
    instance = new_model(model)
    set_fields(instance, values)
    set_fields_set(instance, set(values))
    set_extra(instance, None)
    set_private(instance, None)
    return instance


_ESCAPES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord("\r"): "&#13;"}


def escape(text: str) -> str:
    """Escape character data; carriage returns survive a parse only as a reference."""
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def _display_tag(kid: etree._Element, parent: etree._Element) -> str:
    qname = etree.QName(kid)
    if qname.namespace == etree.QName(parent).namespace:
        return qname.localname
    return f"{{{qname.namespace}}}{qname.localname}" if qname.namespace else qname.localname


def _paths(elements: Iterable[etree._Element]) -> dict[etree._Element, str]:
    """A readable XPath of each element and its ancestors: local names, with a position where a
    name repeats among siblings.

    For each parent on the way and each tag asked about, its children of that tag are walked
    once, and only as far as the last one asked about (and a second one, to know it repeats).
    """
    wanted: dict[etree._Element, dict[str, set[etree._Element]]] = {}
    tops: set[etree._Element] = set()
    for element in elements:
        node = element
        while (parent := node.getparent()) is not None:
            kids = wanted.setdefault(parent, {}).setdefault(str(node.tag), set())
            if node in kids:
                break
            kids.add(node)
            node = parent
        else:
            tops.add(node)
    steps = {top: etree.QName(top).localname for top in tops}
    for parent, by_tag in wanted.items():
        for tag, kids in by_tag.items():
            name = etree.QName(tag).localname
            positions: dict[etree._Element, int] = {}
            at = 0
            for kid in parent.iterchildren(tag):
                at += 1
                if kid in kids:
                    positions[kid] = at
                if at > 1 and len(positions) == len(kids):
                    break
            for kid, position in positions.items():
                steps[kid] = f"{name}[{position}]" if at > 1 else name
    paths: dict[etree._Element, str] = {}
    for element in elements:
        chain = []
        above: etree._Element | None = element
        while above is not None and above not in paths:
            chain.append(above)
            above = above.getparent()
        path = "" if above is None else paths[above]
        for step in reversed(chain):
            path = paths[step] = f"{path}/{steps[step]}"
    return paths


# Markup in document order: comments, CDATA sections and processing instructions (which may
# hold a "<"), end tags, and start tags with their name. Text and attribute values hold no "<".
_MARKUP = re.compile(r"<(?:!--.*?-->|!\[CDATA\[.*?\]\]>|\?.*?\?>|/|([^\s/>!?][^\s/>]*))", re.S)


def _places(
    elements: list[etree._Element], text: str | None
) -> dict[etree._Element, tuple[int | None, int | None]]:
    """Line and column of each element's start tag.

    Without the text, the line is the parser's (where the start tag ends) and the column is
    unknown. With it, the elements of the tree and the start tags of the text are walked side
    by side, once, up to the last element asked about.
    """
    places: dict[etree._Element, tuple[int | None, int | None]] = {
        element: (element.sourceline, None) for element in elements
    }
    if text is None or not elements:
        return places
    if "\r" in text:  # line ends as the parser counts them
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    left = set(elements)
    tags = (match for match in _MARKUP.finditer(text) if match.group(1) is not None)
    line, counted, line_start = 1, 0, 0
    for element, tag in zip(elements[0].getroottree().iter(etree.Element), tags, strict=False):
        if tag.group(1).rpartition(":")[2] != str(element.tag).rpartition("}")[2]:
            break  # the text is not the one parsed: keep the parser's lines
        if element not in left:
            continue
        offset = tag.start()
        breaks = text.count("\n", counted, offset)
        if breaks:
            line += breaks
            line_start = text.rfind("\n", counted, offset) + 1
        counted = offset
        places[element] = (line, offset - line_start + 1)
        left.discard(element)
        if not left:
            break
    return places


def _text_encoding(data: bytes, tree: etree._ElementTree) -> str:
    """The Python codec for the encoding the parser read the message in.

    A byte order mark decides, as it did for the parser (which names a message without a
    declaration UTF-8 whatever the mark said); otherwise the declaration does.
    """
    for mark, codec in _MARKS:
        if data.startswith(mark):
            return codec
    encoding = (tree.docinfo.encoding or "utf-8").lower()
    return "utf-8-sig" if encoding in ("utf-8", "utf8") else encoding


# Longest first: the UTF-32 little-endian mark begins with the UTF-16 one.
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF8, "utf-8-sig"),
)
