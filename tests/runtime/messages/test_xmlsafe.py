"""Hostile XML is rejected before anything is bound (docs/reliability.md §3.7, X1-X11)."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ccbmdm.runtime.messages.xmlsafe import XmlLimits, XmlRejected, parse_partner_xml

BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]><lolz>&lol9;</lolz>"
)
QUADRATIC = (
    '<?xml version="1.0"?><!DOCTYPE kaboom [<!ENTITY a "'
    + "x" * 50_000
    + '">]><kaboom>'
    + "&a;" * 5_000
    + "</kaboom>"
)


class Canary:
    """A TCP listener on loopback that counts the connections it receives."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            client.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


@pytest.fixture
def canary() -> Iterator[Canary]:
    listener = Canary()
    yield listener
    listener.close()


# Namespace declarations enough to have the bytes read once more before the parse, to count them.
FLOOD = " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(200))


def test_x1_xxe_to_a_local_file_is_rejected_and_leaks_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "canary.txt"
    secret.write_text("CANARY-SECRET-41")
    dtd = f'<!DOCTYPE r [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
    flooded = (f"<r>&x;<s {FLOOD}/></r>", "over 128 namespace declarations")
    for data, reason in (("<r>&x;</r>", "DTD not allowed"), flooded):
        with pytest.raises(XmlRejected, match=reason) as caught:
            parse_partner_xml((dtd + data).encode())
        assert "CANARY-SECRET-41" not in str(caught.value)


def test_x2_external_parameter_entity_is_rejected(tmp_path: Path) -> None:
    fragment = tmp_path / "frag.dtd"
    fragment.write_text('<!ENTITY leak "CANARY-FRAGMENT">')
    data = f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{fragment.as_uri()}"> %p;]><r>&leak;</r>'.encode()
    with pytest.raises(XmlRejected) as caught:
        parse_partner_xml(data)
    assert "CANARY-FRAGMENT" not in str(caught.value)


def test_x3_external_dtd_and_entity_over_http_are_never_fetched(canary: Canary) -> None:
    url = f"http://127.0.0.1:{canary.port}"
    for data in (
        f'<!DOCTYPE r SYSTEM "{url}/x.dtd"><r/>',
        f'<!DOCTYPE r [<!ENTITY e SYSTEM "{url}/e">]><r>&e;</r>',
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}/p"> %p;]><r/>',
    ):
        for flooded in (
            data,
            data.replace("</r>", f"<s {FLOOD}/></r>").replace("<r/>", f"<r {FLOOD}/>"),
        ):
            with pytest.raises(XmlRejected):
                parse_partner_xml(flooded.encode())
    assert canary.connections == 0


@pytest.mark.parametrize(
    "data", [BILLION_LAUGHS, QUADRATIC], ids=["x4-billion-laughs", "x5-quadratic"]
)
def test_x4_x5_entity_expansion_is_rejected(data: str) -> None:
    # libxml2 refuses the amplification while reading the DTD; otherwise the DTD check would.
    with pytest.raises(XmlRejected, match=r"DTD not allowed|amplification"):
        parse_partner_xml(data.encode())


def test_x6_size_cap_rejects_before_parsing() -> None:
    # Not even well-formed: the cap must answer before the parser looks at it.
    with pytest.raises(XmlRejected, match="over the 1000-byte cap"):
        parse_partner_xml(b"<" * 1001, XmlLimits(max_bytes=1000))


def test_x6_text_node_over_libxml2_limit_is_rejected() -> None:
    data = b"<r>" + b"x" * (10_000_001) + b"</r>"
    with pytest.raises(XmlRejected):
        parse_partner_xml(data, XmlLimits(max_bytes=len(data) + 1))


def test_x7_nesting_over_the_depth_cap_is_rejected() -> None:
    data = b"<a>" * 300 + b"</a>" * 300
    with pytest.raises(XmlRejected, match="nesting too deep"):
        parse_partner_xml(data)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_x8_doctype_in_wide_encodings_is_rejected(encoding: str) -> None:
    text = '<!DOCTYPE r [<!ENTITY x "expanded">]><r>&x;</r>'
    data = text.encode(encoding)
    assert b"<!DOCTYPE" not in data  # a byte search would miss it
    with pytest.raises(XmlRejected):
        parse_partner_xml(data)


@pytest.mark.parametrize(
    ("data", "line", "column"),
    [
        (b"<r>\n  <a>1</a>\n  <b>", 3, 6),  # truncated
        (b"<r><a>1</b></r>", 1, 12),  # mismatched tags
        (b"<r/>\n<r/>", 2, 1),  # junk after the root
        (b"<r>&undefined;</r>", 1, 15),  # an entity that would be dropped
    ],
    ids=["x9-truncated", "x9-mismatched", "x9-junk-after-root", "x10-undefined-entity"],
)
def test_x9_x10_damaged_documents_are_rejected_with_a_position(
    data: bytes, line: int, column: int
) -> None:
    with pytest.raises(XmlRejected) as caught:
        parse_partner_xml(data)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert not caught.value.reason.endswith(f"column {column}")  # the position is said once


def test_x11_xinclude_stylesheet_and_schema_location_are_not_processed(
    canary: Canary, tmp_path: Path
) -> None:
    secret = tmp_path / "included.txt"
    secret.write_text("CANARY-INCLUDED")
    url = f"http://127.0.0.1:{canary.port}"
    data = textwrap.dedent(f"""\
        <?xml-stylesheet type="text/xsl" href="{url}/style.xsl"?>
        <r xmlns:xi="http://www.w3.org/2001/XInclude"
           xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
           xsi:schemaLocation="urn:x {url}/schema.xsd">
          <xi:include href="{secret.as_uri()}" parse="text"/>
        </r>""").encode()
    root = parse_partner_xml(data)
    assert b"CANARY-INCLUDED" not in __import__("lxml.etree").etree.tostring(root)
    assert canary.connections == 0


def test_empty_message_is_rejected() -> None:
    with pytest.raises(XmlRejected, match="empty"):
        parse_partner_xml(b"  \n")


def attributes(count: int) -> str:
    """A message whose root has ``count`` attributes."""
    return "<r " + " ".join(f'a{i}="1"' for i in range(count)) + "><a/></r>"


def declarations(count: int) -> str:
    """A message with ``count`` namespace declarations, on its root and on a child."""
    half = count // 2
    return (
        '<r xmlns="urn:r" '
        + " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(half - 1))
        + "><a "
        + " ".join(f'xmlns:q{i}="urn:q{i}"' for i in range(count - half))
        + "/></r>"
    )


WIDE = ["utf-8", "utf-16", "utf-32"]


@pytest.mark.parametrize("encoding", WIDE)
def test_an_element_with_more_attributes_than_the_cap_is_rejected(encoding: str) -> None:
    cap = XmlLimits().max_attributes
    assert parse_partner_xml(attributes(cap).encode(encoding)).get("a0") == "1"
    with pytest.raises(XmlRejected, match=f"<r> has {cap + 1} attributes; at most {cap} are"):
        parse_partner_xml(attributes(cap + 1).encode(encoding))


@pytest.mark.parametrize("encoding", WIDE)
def test_a_message_with_more_namespace_declarations_than_the_cap_is_rejected(
    encoding: str,
) -> None:
    cap = XmlLimits().max_namespace_declarations
    assert len(parse_partner_xml(declarations(cap).encode(encoding))[0].nsmap) == cap
    with pytest.raises(XmlRejected, match=f"over {cap} namespace declarations"):
        parse_partner_xml(declarations(cap + 1).encode(encoding))


@pytest.mark.parametrize("encoding", WIDE)
def test_a_message_with_more_elements_than_the_cap_is_rejected_before_its_tree(
    encoding: str,
) -> None:
    limits = XmlLimits(max_elements=10)
    assert len(parse_partner_xml(("<r>" + "<x/>" * 9 + "</r>").encode(encoding), limits)) == 9
    with pytest.raises(XmlRejected, match="over 10 elements; at most 10 are allowed"):
        parse_partner_xml(("<r>" + "<x/>" * 10 + "</r>").encode(encoding), limits)


def test_the_element_cap_is_far_above_a_message_at_the_size_cap() -> None:
    # A realistic message at the size cap: readings laid out as partners write them.
    limits = XmlLimits()
    reading = b"  <reading>\n    <at>2026-01-01T00:15:00Z</at>\n    <q>1.5</q>\n  </reading>\n"
    count = (limits.max_bytes - 100) // len(reading)
    root = parse_partner_xml(b"<r>\n" + reading * count + b"</r>", limits)
    assert len(root) == count and 3 * count < limits.max_elements


def test_caps_hold_in_an_encoding_that_writes_the_equals_sign_otherwise() -> None:
    # UTF-7 may write "=" as "+AD0-": the bytes then say nothing, and the tree is counted.
    def utf7(text: str) -> bytes:
        return ('<?xml version="1.0" encoding="UTF-7"?>' + text.replace("=", "+AD0-")).encode()

    with pytest.raises(XmlRejected, match="over 128 namespace declarations"):
        parse_partner_xml(utf7(declarations(129)))
    with pytest.raises(XmlRejected, match="65 attributes"):
        parse_partner_xml(utf7(attributes(65)))
    assert parse_partner_xml(utf7(attributes(3))).get("a2") == "1"


BLOW_UPS = {
    "billion-laughs": BILLION_LAUGHS.encode(),
    "quadratic": QUADRATIC.encode(),
    "deep": b"<a>" * 300 + b"</a>" * 300,
    **{f"60k-attributes-{e}": attributes(60_000).encode(e) for e in WIDE},
    **{f"30k-namespace-declarations-{e}": declarations(30_000).encode(e) for e in WIDE},
    "4m-elements": b"<r>" + b"<x/>" * 4_000_000 + b"</r>",
}


@pytest.mark.parametrize("name", sorted(BLOW_UPS))
def test_blow_ups_stay_within_memory_and_time_ceilings(name: str, tmp_path: Path) -> None:
    """Generous ceilings against blow-ups (50 MiB growth, a second of processor time), measured
    in a subprocess.

    The growth is the peak resident size while parsing (the kernel's high-water mark, reset just
    before) less the resident size before it: the peak of the imports cannot hide it. The time
    is the process's own processor time, which a machine busy with other work does not stretch
    as it stretches the wall clock."""
    payload = tmp_path / "payload.xml"
    payload.write_bytes(BLOW_UPS[name])
    script = textwrap.dedent(f"""\
        import sys, time
        from ccbmdm.runtime.messages.xmlsafe import XmlRejected, parse_partner_xml
        def kib(field):
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith(field))
        data = open({str(payload)!r}, "rb").read()
        before = kib("VmRSS:")
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # the high-water mark starts again from here
        started = time.process_time()
        try:
            parse_partner_xml(data)
        except XmlRejected:
            pass
        else:
            sys.exit("accepted")
        print(kib("VmHWM:") - before, time.process_time() - started)
        """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    growth_kib, seconds = result.stdout.split()
    assert int(growth_kib) < 50 * 1024
    assert float(seconds) < 1.0
