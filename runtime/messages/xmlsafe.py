"""Hardened parsing of partner XML (docs/reliability.md §4.1).

Every message from outside goes through ``parse_partner_xml``: the size cap before parsing, a
strict parser with every option explicit, and a rejection of any DTD found in the parsed
document, so that XXE, entity expansion, network access and silently dropped entity references
cannot happen whatever the encoding.
"""

from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass
from typing import cast

from lxml import etree


@dataclass(frozen=True)
class XmlLimits:
    """Caps on partner XML. libxml2 itself caps depth (256) and text nodes (10 MB).

    The contracts declare no attributes and a handful of namespaces, so the caps on attributes
    per element and namespace declarations per message are far above any message they allow,
    and far below what it takes to make a report or a namespace lookup expensive. A message
    at the size cap, laid out as partners write them, has well under a million elements; a
    flood of empty elements would have four times as many, and its tree and report would take
    gigabytes, so a message with more is refused before its tree is built.
    """

    max_bytes: int = 16 * 1024 * 1024
    max_attributes: int = 64
    max_namespace_declarations: int = 128
    max_elements: int = 1_000_000


DEFAULT_LIMITS = XmlLimits()


class XmlRejected(Exception):
    """The bytes are not an acceptable XML document; nothing was bound to a model."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f"line {line}: " if column is None else f"line {line}, column {column}: "
        super().__init__(f"XML rejected: {where}{reason}")


_local = threading.local()


def _parser() -> etree.XMLParser:
    """This thread's parser: lxml parsers are not shared between threads."""
    parser: etree.XMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _new_parser()
    return parser


def _new_parser() -> etree.XMLParser:
    # Comments and processing instructions carry nothing a contract declares (a schema
    # validator skips them too); dropping them keeps every tree walk to elements only.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        recover=False,
        # Whitespace between elements is layout, not data; libxml2 drops it while parsing, so
        # any text left beside child elements is content the contract does not allow.
        remove_blank_text=True,
        collect_ids=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_partner_xml(data: bytes, limits: XmlLimits = DEFAULT_LIMITS) -> etree._Element:
    """Parse untrusted bytes into an element tree, or raise XmlRejected with line and column."""
    if len(data) > limits.max_bytes:
        raise XmlRejected(f"message of {len(data)} bytes is over the {limits.max_bytes}-byte cap")
    if not data or data.isspace():
        raise XmlRejected("the message is empty")
    # Every attribute and namespace declaration has a "=", and every element a "<", and those
    # characters have these bytes in every encoding counted right (see _counted_right): one count
    # each bounds them for nearly every message (and a message has no more "<" than bytes).
    # Declarations and elements are counted before the tree is built, which a flood of them
    # would make costly.
    equals = data.count(b"=")
    if (
        equals > limits.max_namespace_declarations
        and _declarations_at_most(data) > limits.max_namespace_declarations
    ) or (len(data) > limits.max_elements and data.count(b"<") > limits.max_elements):
        _check_counts(data, limits)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise XmlRejected(syntax_reason(exc), line, column) from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise XmlRejected("DTD not allowed (a DOCTYPE declaration was found)", 1, 1)
    counted = _counted_right(data, docinfo.encoding)
    if not counted:
        _check_counts(data, limits)
    if not counted or equals > limits.max_attributes:
        _check_attributes(root, limits)
    return root


def _check_counts(data: bytes, limits: XmlLimits) -> None:
    """Reject a message with more namespace declarations or elements than the caps.

    The tree does not list an element's own declarations (and a walk of it with namespace
    events is quadratic in them), and a flood of elements must never become a tree, so the
    bytes are read once more into a counter instead, which stops one past a cap. A message it
    cannot read is left to the parser.
    """
    counter = _Counter(limits)
    parser = etree.XMLParser(
        target=cast("etree.ParserTarget[None]", counter),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return


class _Counter:
    """A parser target that counts namespace declarations and elements, and rejects the
    message one past either cap."""

    def __init__(self, limits: XmlLimits) -> None:
        self.declarations = limits.max_namespace_declarations
        self.elements = limits.max_elements
        self.declared = 0
        self.started = 0

    def start_ns(self, prefix: str, uri: str) -> None:
        self.declared += 1
        if self.declared > self.declarations:
            most = self.declarations
            raise XmlRejected(f"over {most} namespace declarations; at most {most} are allowed")

    def start(self, tag: str, attrib: object) -> None:
        self.started += 1
        if self.started > self.elements:
            most = self.elements
            raise XmlRejected(f"over {most:,} elements; at most {most:,} are allowed")

    def close(self) -> None:
        return None


_CROWDED = etree.XPath("(//*[count(@*) > $most])[1]", regexp=False)


def _check_attributes(root: etree._Element, limits: XmlLimits) -> None:
    """Reject an element with more attributes than the cap (one XPath, evaluated in C)."""
    crowded = _CROWDED(root, most=limits.max_attributes)
    assert isinstance(crowded, list)
    if crowded:
        element = crowded[0]
        raise XmlRejected(
            f"element <{etree.QName(element).localname}> has {len(element.attrib)} "
            f"attributes; at most {limits.max_attributes} are allowed on one element",
            element.sourceline,
        )


def _is_wide(data: bytes) -> bool:
    """Whether the parser will read the bytes as UTF-16 or UTF-32: a byte order mark of UTF-16
    (UTF-32's begins with it) or a zero byte where "<" or "<?" begins (XML 1.0, appendix F)."""
    return data.startswith(_UTF16_MARKS) or data.find(0, 0, 4) >= 0


def _declarations_at_most(data: bytes) -> int:
    """How many times the word "xmlns", which every namespace declaration has, is in the
    bytes: at least as many as the declarations, if ``_counted_right`` says so."""
    if not _is_wide(data):
        return data.count(b"xmlns")
    return sum(data.count(form) for form in _WIDE_XMLNS)


def _counted_right(data: bytes, encoding: str | None) -> bool:
    """Whether the parser read the message in an encoding ``_declarations_at_most`` counts in.

    A message without a declaration is named UTF-8 by the parser whatever its byte order mark
    said; one declaring another encoding than its first bytes suggest is counted again.
    """
    if encoding in _USUAL:
        return True
    name = (encoding or "").lower().replace("-", "").replace("_", "")
    return name.startswith(_WIDE if _is_wide(data) else _NARROW)


_USUAL = frozenset({"UTF-8", "utf-8", "UTF8", "utf8"})
_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_WIDE_XMLNS = tuple(
    "xmlns".encode(form) for form in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
# Encodings that write ASCII as ASCII, and those that write it in 16 or 32 bits.
_NARROW = ("utf8", "ascii", "usascii", "iso8859", "latin", "windows125", "cp125")
_WIDE = ("utf16", "utf32", "ucs2", "ucs4", "utf8")


_POSITION_SUFFIX = re.compile(r",? line \d+, column \d+$")


def syntax_reason(exc: etree.XMLSyntaxError) -> str:
    """libxml2's complaint without the position lxml appends (callers report it separately)."""
    message = _POSITION_SUFFIX.sub("", exc.msg or "") or "not well-formed"
    # libxml2 reports its own limits as plain syntax errors; say which cap was hit.
    if "Excessive depth" in message or "depth" in message.lower():
        return f"nesting too deep (libxml2 caps it at 256 levels): {message}"
    if "huge" in message.lower() or "too long" in message.lower():
        return f"a text node is over libxml2's 10 MB limit: {message}"
    return message
