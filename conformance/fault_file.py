"""Rewrite the expected fault of a case.yaml in place, for ``ccbmdm conformance --update``.

A case.yaml is written by hand: its comments, order, quoting and line ends are its author's. So
the file is not dumped again from data: the YAML is composed to find where the values of
``fault.code`` and ``fault.rule`` are written, and only those characters are replaced; every
other byte of the file stays as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml


class FaultNotWritten(Exception):
    """The case.yaml holds no fault code and rule written as plain values to replace."""


def rewrite_fault(path: Path, code: int, rule: str) -> None:
    """Write ``code`` and ``rule`` as the values of ``fault.code`` and ``fault.rule`` of the
    case.yaml at ``path``, keeping the rest of the file byte for byte."""
    text = path.read_bytes().decode("utf-8")  # not read_text: line ends stay as written
    spans = []
    for key, node in _fault_values(text, path).items():
        new = str(code) if key == "code" else _scalar(rule, node.style)
        spans.append((node.start_mark.index, node.end_mark.index, new))
    for start, end, new in sorted(spans, reverse=True):
        text = text[:start] + new + text[end:]
    path.write_bytes(text.encode("utf-8"))


def _fault_values(text: str, path: Path) -> dict[str, yaml.ScalarNode]:
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    fault = _value(root, "fault")
    found = {key: _value(fault, key) for key in ("code", "rule")}
    scalars = {
        key: node
        for key, node in found.items()
        if isinstance(node, yaml.ScalarNode) and node.style not in ("|", ">")
    }
    if len(scalars) != len(found):
        raise FaultNotWritten(
            f"{path}: no fault: with a code and a rule written on their lines to rewrite; "
            "write them by hand"
        )
    return scalars


def _value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    return next((v for k, v in node.value if k.value == key), None)


def _scalar(value: str, style: str | None) -> str:
    """``value`` as a YAML scalar: plain when it was plain and reads back the same, else
    double-quoted."""
    if style is None and yaml.safe_load(f"k: {value}") == {"k": value}:
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one
