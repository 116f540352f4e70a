"""The lineage artifact questioned: which source fields, rules, code tables and functions make
a target field; which source fields no rule reads; and which of those are new since the last
compile, so that a contract change nobody mapped does not pass unnoticed.

The artifact is ``target/lineage.json`` (written by the compiler, see
`ccbmdm.codegen.mapping.compile`): per mapping file, its fields and its unread source fields.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.mapping.bind import elements
from ccbmdm.codegen.mapping.loader import Finding
from ccbmdm.codegen.mapping.syntax import Pos
from ccbmdm.errors import CcbmdmError

Lineage = dict[str, Any]  # mapping file -> its entry
SYSTEMS = ("ccb/", "mdm/", "common/")


class LineageError(CcbmdmError):
    """A question the lineage cannot answer as asked; the message says what would work."""


@dataclass(frozen=True)
class Field:
    """One target field of one mapping, as the lineage names it."""

    file: str  # the mapping file
    path: str  # dotted, with [] after repeated steps


# ---------------------------------------------------------------- the last compile


def previous(path: Path) -> Lineage | None:
    """The lineage the last compile wrote, or None (never compiled, or unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def new_unread(
    before: Lineage | None, now: Lineage, contracts: ContractSet, root: Path
) -> list[Finding]:
    """A warning per source field no rule reads that was not in its contract at the last
    compile, at the field's declaration in the contract. Nothing on a first compile, nor for a
    mapping that is new or now reads another contract."""
    found: dict[str, Finding] = {}
    for file, entry in now.items():
        old = (before or {}).get(file)
        if not isinstance(old, dict) or old.get("source") != entry["source"]:
            continue
        if "source_fields" not in old:  # written by a version that did not record them
            continue
        known = set(old["source_fields"])
        contract = contracts.contracts[entry["source"]]
        declared = elements(contracts, contract.type_key)
        for leaf in entry["unread_sources"]:
            if leaf in known:
                continue
            plain = leaf.replace("[]", "")
            finding = Finding(
                _declaration(root, declared[plain].origin.file, declared[plain].origin.line),
                "unread-source",
                f"{entry['source']}: {plain.replace('.', '/')} is new and no rule reads it",
                f"map it in {file}, or list {plain} under unread: there",
                severity="warning",
            )
            found.setdefault(str(finding), finding)
    return list(found.values())


def _declaration(root: Path, file: str, line: int) -> Pos:
    """The position of the element declared on ``line``: its first non-blank column."""
    lines = _lines(root / file)
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return Pos(file, max(line, 1), len(text) - len(text.lstrip()) + 1)


# ---------------------------------------------------------------- finding a field


def locate(lineage: Lineage, query: str) -> list[Field]:
    """The target fields ``query`` names, in one of three forms:

    - ``mdm/ContactSyncRequest/contact/name``: a target contract and the path in it (every
      mapping that writes that contract);
    - ``person-sync.request:contact.name``: a mapping (its file name, or ``PERSON_SYNC.request``)
      and a field in it;
    - ``contact.name`` or ``name``: a field of any mapping, when it names one only.

    Steps are separated by ``.`` or ``/``; ``[]`` after a repeated step may be left out.
    """
    bare = False
    if ":" in query:
        name, _, wanted = query.partition(":")
        files = [_mapping_file(lineage, name)]
        where = f"in {files[0]}"
    elif query.startswith(SYSTEMS):
        system, contract, *steps = query.split("/")
        target = f"{system}/{contract}"
        files = [file for file, entry in lineage.items() if entry["target"] == target]
        if not files:
            targets = sorted({entry["target"] for entry in lineage.values()})
            raise LineageError(f"no mapping writes {target}{_did_you_mean(target, targets)}")
        wanted = ".".join(steps)
        where = f"of {target}"
    else:
        bare, files, wanted, where = True, list(lineage), query, "of any mapping"
    key = _plain(wanted)
    if not key:
        raise LineageError(f"{query}: name a field after the mapping or contract")
    everywhere = [Field(file, path) for file in files for path in lineage[file]["fields"]]
    exact = [f for f in everywhere if _plain(f.path) == key]
    if not bare:
        if not exact:
            options = [_plain(f.path) for f in everywhere]
            raise LineageError(f"no rule {where} writes {key}{_did_you_mean(key, options)}")
        return exact
    ending = exact or [f for f in everywhere if _plain(f.path).endswith("." + key)]
    if len(ending) == 1:
        return ending
    if not ending:
        options = sorted({_plain(f.path) for f in everywhere})
        names = options + sorted({o.rsplit(".", 1)[-1] for o in options})
        raise LineageError(f"no rule {where} writes {key}{_did_you_mean(key, names)}")
    raise LineageError(
        f"{key} is written by {len(ending)} rules; name one:\n"
        + "\n".join(f"  {_stem(f.file)}:{_plain(f.path)}" for f in ending)
    )


def _mapping_file(lineage: Lineage, name: str) -> str:
    """The mapping file of ``person-sync.request``, ``PERSON_SYNC.request`` or the file's path."""
    stem = PurePosixPath(name).name.removesuffix(".yaml")
    flow, _, part = stem.rpartition(".")
    wanted = f"{flow.lower().replace('_', '-')}.{part}"
    by_stem = {_stem(file): file for file in lineage}
    if wanted in by_stem:
        return by_stem[wanted]
    raise LineageError(f"no mapping {name}{_did_you_mean(wanted, list(by_stem))}")


def _plain(path: str) -> str:
    return path.replace("/", ".").replace("[]", "").strip(".")


def _stem(file: str) -> str:
    return PurePosixPath(file).name.removesuffix(".yaml")


def _did_you_mean(wanted: str, options: list[str]) -> str:
    close = difflib.get_close_matches(wanted, list(dict.fromkeys(options)), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


# ---------------------------------------------------------------- what is printed


def describe(root: Path, tables: Path, lineage: Lineage, field: Field) -> list[str]:
    """What makes one target field: the rule as written and where, through which fragment, its
    source paths, code tables (with their files), functions and constants."""
    mapping = lineage[field.file]
    entry = mapping["fields"][field.path]
    lines = [
        f"{field.path} in {field.file} ({mapping['flow']} {mapping['part']}: "
        f"{mapping['source']} -> {mapping['target']})"
    ]
    rule = entry["rule"]
    if rule:
        lines.append(f"  rule: {rule}: {written(root, rule)}")
        rule_file = rule.rsplit(":", 2)[0]
        if rule_file != field.file:
            lines.append(f"  through fragment: {_stem(rule_file)}")
    else:
        lines.append("  rule: none written (the compiler fills the field)")
    lines += [f"  source: {source}" for source in entry["sources"]]
    for table in entry["tables"]:
        file = tables / f"{table}.yaml"
        shown = file.relative_to(root) if file.is_relative_to(root) else file
        lines.append(f"  table: {table} ({shown})")
    lines += [f"  function: {function}" for function in entry["functions"]]
    lines += [f"  constant: {constant}" for constant in entry["constants"]]
    return lines


def unread(lineage: Lineage, flow: str | None = None) -> list[str]:
    """The source fields no rule reads, per mapping (of one flow: ``PERSON_SYNC`` or
    ``person-sync``), leaving out those a mapping lists under ``unread:``."""
    files = list(lineage)
    if flow is not None:
        code = flow.upper().replace("-", "_")
        files = [file for file in files if lineage[file]["flow"] == code]
        if not files:
            codes = sorted({entry["flow"] for entry in lineage.values()})
            raise LineageError(f"no mapping of flow {flow}{_did_you_mean(code, codes)}")
    lines = []
    for file in files:
        entry = lineage[file]
        fields, declared = entry["unread_sources"], entry.get("declared_unread", [])
        if not fields and flow is None:
            continue
        listed = f"; {len(declared)} more listed under unread:" if declared else ""
        lines.append(
            f"{file} ({entry['flow']} {entry['part']}, from {entry['source']}): "
            f"{len(fields)} source field(s) no rule reads{listed}"
        )
        lines += [f"  {leaf}" for leaf in fields]
    return lines


def written(root: Path, where: str) -> str:
    """The rule at ``file:line:col`` as the mapping writes it: the key's value on its line, or,
    for a structure, the lines that say what it is built from (up to its nested ``rules:``)."""
    file, line, _ = where.rsplit(":", 2)
    lines = _lines(root / file)
    number = int(line) - 1
    if number >= len(lines):
        return ""
    head = lines[number]
    value = _COMMENT.sub("", head.split(":", 1)[1]).strip() if ":" in head else ""
    following = iter(lines[number + 1 :])
    while _unclosed(value):  # a flow-style value written over several lines
        value += " " + _COMMENT.sub("", next(following, "}")).strip()
    if value:
        return value
    indent = len(head) - len(head.lstrip())
    body = []
    for text in lines[number + 1 :]:
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(text) - len(text.lstrip()) <= indent or stripped.startswith("rules:"):
            break
        body.append(_COMMENT.sub("", stripped).strip())
    return "; ".join(body)


_COMMENT = re.compile(r"\s+#.*$")


def _unclosed(value: str) -> bool:
    return value.count("{") + value.count("[") > value.count("}") + value.count("]")


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
