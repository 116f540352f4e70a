"""Hardened parsing of partner XML (reliability.md §4.1).

Every message from outside goes through ``parse_partner_xml``: the size cap before parsing, a
strict parser with every option explicit, and a rejection of any DTD found in the parsed
document, so that XXE, entity expansion, network access and silently dropped entity references
cannot happen whatever the encoding.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class XmlLimits:
    """Caps on partner XML. libxml2 itself caps depth (256) and text nodes (10 MB)."""

    max_bytes: int = 16 * 1024 * 1024


DEFAULT_LIMITS = XmlLimits()


class XmlRejected(Exception):
    """The bytes are not an acceptable XML document; nothing was bound to a model."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        where = f"line {line}, column {column}: " if line is not None else ""
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
    if not data.strip():
        raise XmlRejected("the message is empty")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise XmlRejected(syntax_reason(exc), line, column) from None
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise XmlRejected("DTD not allowed (a DOCTYPE declaration was found)", 1, 1)
    return root


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
