"""`ccbmdm check` on a mutated reference project: whatever is wrong with a mapping, a code table,
a fragment, the flow catalogue or a contract, the checker answers with findings that point into
the project's files, never with an internal error.

The mutations are the mistakes people make: a key deleted or misspelt, a value of the wrong
type, two values swapped, a table row's column misspelt, a file cut short, an XSD element or
attribute deleted, duplicated or misspelt.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from ccbmdm.codegen import compiler
from ccbmdm.codegen.diagnostics import FindingsError
from ccbmdm.codegen.project import Project, init_project

Draw = Callable[[st.SearchStrategy[Any]], Any]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One project for every example: each example changes one file and puts it back."""
    return init_project(tmp_path_factory.mktemp("fuzz") / "project")


def project_files(project: Project) -> list[str]:
    """The files `check` reads (the mapping language's own schema aside)."""
    root = project.root
    found = [
        *compiler.contract_files(project),
        project.contracts / "flows.yaml",
        *(p for p in compiler.mapping_files(project) if p.suffix == ".yaml"),
    ]
    return sorted(p.relative_to(root).as_posix() for p in found)


# ---------------------------------------------------------------- mutations


def misspelt(draw: Draw, word: str) -> str:
    """The word with one typing mistake (a letter dropped, doubled, swapped or changed)."""
    if not word:
        return "x"
    at = draw(st.integers(0, len(word) - 1))
    kind = draw(st.sampled_from(["drop", "double", "swap", "change"]))
    if kind == "drop" and len(word) > 1:
        return word[:at] + word[at + 1 :]
    if kind == "swap" and at + 1 < len(word) and word[at] != word[at + 1]:
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    if kind == "change":
        return word[:at] + ("q" if word[at] != "q" else "z") + word[at + 1 :]
    return word[:at] + word[at] + word[at:]


def slots(data: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) of a YAML document, depth first."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield data, key
            yield from slots(value)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield data, index
            yield from slots(value)


WRONG_VALUES = st.sampled_from(["list", "mapping", 7, None, True, "", "not a name", 1.5])


def mutate_yaml(draw: Draw, text: str) -> str:
    data = yaml.safe_load(text)
    places = list(slots(data))
    if not places:
        return mutate_text(draw, text)
    container, key = draw(st.sampled_from(places))
    kind = draw(st.sampled_from(["delete", "misspell", "wrong type", "swap", "duplicate"]))
    if kind == "delete":
        del container[key]
    elif kind == "misspell" and isinstance(container, dict):
        renamed = misspelt(draw, str(key))
        items = [(renamed if k == key else k, v) for k, v in container.items()]
        container.clear()
        container.update(items)
    elif kind == "swap" and isinstance(container, dict) and len(container) > 1:
        other = draw(st.sampled_from([k for k in container if k != key]))
        container[key], container[other] = container[other], container[key]
    elif kind == "duplicate" and isinstance(container, list):
        container.insert(key, copy.deepcopy(container[key]))
    else:
        wrong = draw(WRONG_VALUES)
        value = container[key]
        container[key] = {"list": [value], "mapping": {"x": value}}.get(wrong, wrong)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def mutate_text(draw: Draw, text: str) -> str:
    lines = text.splitlines(keepends=True)
    kind = draw(st.sampled_from(["truncate", "delete line", "duplicate line"]))
    if kind == "truncate" or len(lines) < 2:
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    at = draw(st.integers(0, len(lines) - 1))
    if kind == "delete line":
        return "".join(lines[:at] + lines[at + 1 :])
    return "".join(lines[: at + 1] + lines[at:])


def mutate_xsd(draw: Draw, data: bytes) -> bytes:
    root = etree.fromstring(data)
    nodes = [n for n in root.iter() if isinstance(n.tag, str) and n is not root]
    node = draw(st.sampled_from(nodes))
    kind = draw(
        st.sampled_from(
            ["delete", "duplicate", "rename", "drop attribute", "misspell attribute", "attribute"]
        )
    )
    parent = node.getparent()
    assert parent is not None
    if kind == "delete":
        parent.remove(node)
    elif kind == "duplicate":
        node.addnext(copy.deepcopy(node))
    elif kind == "rename":
        qname = etree.QName(node)
        node.tag = etree.QName(qname.namespace, misspelt(draw, qname.localname)).text
    elif kind == "attribute" or not node.attrib:
        node.set(draw(st.sampled_from(["name", "type", "minOccurs", "fixed"])), "1")
    else:
        name = draw(st.sampled_from(sorted(node.attrib)))
        if kind == "drop attribute":
            del node.attrib[name]
        else:
            node.set(name, misspelt(draw, str(node.get(name))))
    return bytes(etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8"))


def mutated(draw: Draw, path: Path) -> bytes:
    data = path.read_bytes()
    if draw(st.integers(0, 5)) == 0:  # now and then, a file cut short or a line lost
        return mutate_text(draw, data.decode()).encode()
    if path.suffix == ".xsd":
        return mutate_xsd(draw, data)
    return mutate_yaml(draw, data.decode()).encode()


# ---------------------------------------------------------------- the property


def positions(project: Project) -> list[tuple[str, int | None, int | None]]:
    """What `check` reports, as (file, line, column); the exceptions the command explains
    (findings, contract and catalogue problems) are the only ones allowed to escape."""
    try:
        build = compiler.generate(project, formatted=False)
    except FindingsError as exc:  # the contracts', the catalogue's or the mappings'
        return [(f.pos.file, f.pos.line, f.pos.column) for f in exc.findings]
    for name, source in build.files.items():
        if name.endswith(".py"):
            compile(source, name, "exec")  # what was generated is Python
    return [(f.pos.file, f.pos.line, f.pos.column) for f in build.findings]


@pytest.mark.slow
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_check_answers_every_mutation_with_positioned_findings(
    pristine: Project, data: st.DataObject
) -> None:
    relative = data.draw(st.sampled_from(project_files(pristine)), label="file")
    path = pristine.root / relative
    original = path.read_bytes()
    try:
        path.write_bytes(mutated(data.draw, path))
        found = positions(pristine)
        for file, line, column in found:
            where = Path(file) if Path(file).is_absolute() else pristine.root / file
            assert where.is_file(), (file, found)
            if line is not None:
                assert 1 <= line <= len(where.read_bytes().splitlines()) + 1, (file, line)
            if column is not None:
                assert column >= 1, (file, column)
    finally:
        path.write_bytes(original)
