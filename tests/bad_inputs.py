"""The bad inputs the foundation issue lists, each with the words its error must carry."""

from __future__ import annotations

from support import sample

PERSON = sample("ccb/PersonSyncRequest").decode()
SA = sample("ccb/ServiceAgreementSyncRequest").decode()

BAD_INPUTS: dict[str, tuple[bytes, str]] = {
    "xxe-local-file": (
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        "XML rejected: DTD not allowed",
    ),
    "external-parameter-entity": (
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "file:///etc/hostname"> %p;]><r/>',
        "XML rejected",
    ),
    "external-dtd-over-http": (
        b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/r.dtd"><r/>',
        "XML rejected",
    ),
    "billion-laughs": (
        b'<!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><l>&c;</l>',
        "XML rejected",
    ),
    "quadratic-blowup": (
        b'<!DOCTYPE k [<!ENTITY a "' + b"x" * 20000 + b'">]><k>' + b"&a;" * 2000 + b"</k>",
        "XML rejected",
    ),
    "oversized": (b"<r>" + b"x" * (16 * 1024 * 1024) + b"</r>", "XML rejected: message of"),
    "over-deep-nesting": (b"<a>" * 300 + b"</a>" * 300, "XML rejected: nesting too deep"),
    "utf16-doctype": (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode(
            "utf-16"
        ),
        "XML rejected",
    ),
    "truncated": (PERSON[: len(PERSON) // 2].encode(), "XML rejected: Premature end of data"),
    "mismatched-tags": (
        PERSON.replace("</city>", "</town>").encode(),
        "XML rejected: Opening and ending tag mismatch",
    ),
    "junk-after-root": (
        (PERSON + "<more/>").encode(),
        "XML rejected: Extra content at the end of the document",
    ),
    "many-attributes": (
        PERSON.replace(
            "<person>", "<person " + " ".join(f'a{i}="1"' for i in range(60_000)) + ">"
        ).encode(),
        ":20: XML rejected: element <person> has 60000 attributes; at most 64 are allowed",
    ),
    "many-namespace-declarations": (
        PERSON.replace(
            'xmlns="urn:ccbmdm:ccb:v1">',
            'xmlns="urn:ccbmdm:ccb:v1" '
            + " ".join(f'xmlns:p{i}="urn:p{i}"' for i in range(30_000))
            + ">",
        ).encode(),
        "XML rejected: over 128 namespace declarations; at most 128 are allowed",
    ),
    "many-elements": (
        PERSON.replace("<person>", "<person>" + "<x/>" * 1_000_001).encode(),
        "XML rejected: over 1,000,000 elements; at most 1,000,000 are allowed",
    ),
    "wrong-namespace": (
        PERSON.replace("urn:ccbmdm:ccb:v1", "urn:example:ccb").encode(),
        "wrong namespace; did you mean {urn:ccbmdm:ccb:v1}PersonSyncRequest?",
    ),
    "unknown-root": (
        b'<Invoice xmlns="urn:ccbmdm:ccb:v1"/>',
        "unknown root element {urn:ccbmdm:ccb:v1}Invoice",
    ),
    "missing-required-element": (
        PERSON.replace("    <language>ENG</language>\n", "").encode(),
        ":20:3: /PersonSyncRequest/person: missing required element <language>",
    ),
    "bad-enumeration": (
        PERSON.replace("<flow>PERSON_SYNC</flow>", "<flow>PERSONS</flow>").encode(),
        "/PersonSyncRequest/messageHeader/flow: 'PERSONS' is not one of PERSON_SYNC,",
    ),
    "bad-date": (
        SA.replace("<startDate>", "<startDate>x", 1).encode(),
        "/ServiceAgreementSyncRequest/serviceAgreement/startDate: 'x",
    ),
    "date-time-without-offset": (
        PERSON.replace("2025-03-10T14:05:00Z", "2025-03-10T14:05:00").encode(),
        "/PersonSyncRequest/messageHeader/sentDateTime: '2025-03-10T14:05:00' does not match the pattern",
    ),
}
