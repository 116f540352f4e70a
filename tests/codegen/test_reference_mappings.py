"""Every reference mapping turns every sample of its source contract into a valid message, equal
to the counterpart sample where the samples tell the same story."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from lxml import etree

from ccbmdm.codegen.catalogue import load_catalogue
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.mapping import CodeTables, Context, Transformer
from support import REPO

SAMPLES = REPO / "contracts" / "samples"
CATALOGUE = load_catalogue(REPO / "contracts" / "flows.yaml")
PARTS = [(flow.code, part.name) for flow in CATALOGUE for part in flow.parts]


@pytest.fixture(scope="module")
def context(project: Project) -> Context:
    return Context(CodeTables.load(project.mappings / "tables"))


@cache
def xml_schema(contract: str) -> etree.XMLSchema:
    system, root = contract.split("/")
    return etree.XMLSchema(etree.parse(str(REPO / "contracts" / system / f"{root}.xsd")))


def samples_of(contract: str) -> list[Path]:
    system, root = contract.split("/")
    return sorted(
        p for p in (SAMPLES / system).glob(f"{root}*.xml") if p.stem.split("--")[0] == root
    )


def counterpart(sample: Path, source: str, target: str) -> Path:
    variant = sample.stem[len(source.split("/")[1]) :]
    system, root = target.split("/")
    return SAMPLES / system / f"{root}{variant}.xml"


@pytest.mark.parametrize(("flow", "part"), PARTS, ids=[f"{f}.{p}" for f, p in PARTS])
def test_mapping_turns_samples_into_their_counterparts(
    flow: str, part: str, package: ModuleType, registry: ContractRegistry, context: Context
) -> None:
    transformer: Transformer | None = package.TRANSFORMERS.get((flow, part))
    if transformer is None:
        pytest.fail(f"no reference mapping for {flow} {part}")
    for sample in samples_of(transformer.source):
        _, message = registry.decode(sample.read_bytes(), transformer.source)
        result = transformer.function(message, context)
        written = registry[transformer.target].encode(result)
        assert xml_schema(transformer.target).validate(etree.fromstring(written)), (
            sample.name,
            str(xml_schema(transformer.target).error_log),
        )
        expected = counterpart(sample, transformer.source, transformer.target)
        if expected.exists():
            assert result == registry.decode(expected.read_bytes())[1], (
                sample.name,
                written.decode(),
            )
