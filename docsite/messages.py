"""The message pages: one per contract, every element as a row, from the compiler's IR."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.codegen.ir import ComplexType, Contract, ContractSet, Facets, Home, Particle, SimpleType

from .flows import page_path as flow_page
from .markdown import Link, table

FIELD_TABLE = "fields"
# The systems whose contracts the site lists, in order, as a reader names them.
SYSTEMS = {"ccb": "CCB", "mdm": "MDM", "common": "Common"}
# A common contract belongs to no part of the catalogue: every flow may carry it.
COMMON_USE = (
    "Every flow: a common message belongs to no part of the catalogue, and any node may send it "
    "(a fault on a reply part or as the answer to a call, a receipt for a message taken)."
)
VALUES_TABLE = "values"


@dataclass(frozen=True)
class Field:
    """One element of a message, at its path from the root."""

    path: str
    type: str
    cardinality: str
    facets: str
    doc: str
    where: str  # file:line of the element's declaration
    enumerated: tuple[Home, str] | None = None  # its simple type, when that lists its values


@dataclass(frozen=True)
class Values:
    """An enumerated simple type of a message: what each value means, and the fields of that
    type."""

    type: SimpleType
    paths: tuple[str, ...]

    @property
    def anchor(self) -> str:
        """The id of the type's section on the page; the home tells apart equal names."""
        return f"values-{self.type.home}-{self.type.name}".lower()


def page_path(contract: Contract) -> str:
    """Where a contract's page lives in the site, relative to the docs folder."""
    return f"messages/{contract.name}.md"


def fields(contracts: ContractSet, contract: Contract) -> list[Field]:
    """Every element of a contract, depth first in document order."""
    return list(_walk(contracts, contracts.complex_types[contract.type_key], ""))


def _walk(contracts: ContractSet, owner: ComplexType, prefix: str) -> Iterator[Field]:
    for particle in owner.particles:
        path = f"{prefix}{particle.name}"
        yield _field(contracts, particle, path)
        if particle.kind == "complex" and particle.type_key is not None:
            yield from _walk(contracts, contracts.complex_types[particle.type_key], f"{path}/")


def _field(contracts: ContractSet, particle: Particle, path: str) -> Field:
    upper = "unbounded" if particle.max_occurs is None else str(particle.max_occurs)
    cardinality = f"{particle.min_occurs}..{upper}"
    if particle.kind == "any":
        return Field(path, "any element", cardinality, "", particle.doc, str(particle.origin))
    assert particle.type_key is not None
    name = particle.type_key[1]
    if particle.kind == "complex":
        complex_type = contracts.complex_types[particle.type_key]
        doc = particle.doc or complex_type.doc
        return Field(path, name, cardinality, "", doc, str(particle.origin))
    simple = contracts.simple_types[particle.type_key]
    type_name = name if name.startswith("xs:") else f"{name} ({simple.primitive})"
    doc = particle.doc or simple.doc
    if particle.personal:
        doc = f"{doc} Personal data.".strip()
    enumerated = particle.type_key if simple.facets.enumeration else None
    facets = describe(simple.facets)
    return Field(path, type_name, cardinality, facets, doc, str(particle.origin), enumerated)


def values(contracts: ContractSet, contract: Contract) -> list[Values]:
    """Every enumerated simple type of a contract, once, in the order its fields first use it."""
    paths: dict[tuple[Home, str], list[str]] = {}
    for field in fields(contracts, contract):
        if field.enumerated is not None:
            paths.setdefault(field.enumerated, []).append(field.path)
    return [Values(contracts.simple_types[key], tuple(used)) for key, used in paths.items()]


def describe(facets: Facets) -> str:
    """The facets of a simple type as a reader states them."""
    parts = []
    if facets.enumeration:
        parts.append("one of " + ", ".join(facets.enumeration))
    parts += [f"pattern {p}" for p in facets.patterns]
    for label, value in (
        ("length", facets.length),
        ("min length", facets.min_length),
        ("max length", facets.max_length),
        ("total digits", facets.total_digits),
        ("fraction digits", facets.fraction_digits),
        ("min", facets.min_inclusive),
        ("max", facets.max_inclusive),
    ):
        if value is not None:
            parts.append(f"{label} {value}")
    return "; ".join(parts)


def gaps(contracts: ContractSet, contract: Contract, samples_dir: Path) -> list[str]:
    """What a reader of the contract's page will miss, as ``file:line: what`` lines."""
    found = [
        f"{field.where}: {contract.name}: {field.path} has no documentation"
        for field in fields(contracts, contract)
        if not field.doc
    ]
    found += [
        f"{value.origin}: {contract.name}: {path} value {value.value} has no documentation"
        for enumerated in values(contracts, contract)
        for path in enumerated.paths
        for value in enumerated.type.facets.value_docs
        if not value.doc
    ]
    if not contract.doc:
        found.insert(0, f"{contract.file}: {contract.name} has no documentation")
    if not samples(samples_dir, contract):
        found.append(
            f"{contract.file}: {contract.name} has no sample message in "
            f"{samples_dir.name}/{contract.system}/{contract.root}.xml"
        )
    return found


def samples(samples_dir: Path, contract: Contract) -> list[Path]:
    """The sample messages of a contract: ``<system>/<root>.xml`` and its ``--variant``s."""
    folder = samples_dir / contract.system
    return sorted(
        path
        for path in folder.glob(f"{contract.root}*.xml")
        if path.stem.split("--")[0] == contract.root
    )


def page(
    contracts: ContractSet,
    contract: Contract,
    flows: tuple[Flow, ...],
    mapping_pages: dict[str, list[str]],
    samples_dir: Path,
) -> str:
    """The Markdown of one message page; ``mapping_pages`` maps a contract name to the pages of
    the mappings that read or write it (relative to the docs folder)."""
    enumerated = values(contracts, contract)
    anchors = {(v.type.home, v.type.name): v.anchor for v in enumerated}
    rows = [
        (
            f.path,
            f.type,
            f.cardinality,
            Link(f.facets, "#" + anchors[f.enumerated]) if f.enumerated else f.facets,
            f.doc or "(no documentation)",
        )
        for f in fields(contracts, contract)
    ]
    lines = [
        f"# {contract.root}",
        "",
        f"**{SYSTEMS[contract.system]}** message, namespace `{contract.namespace}`, "
        f"defined in `{contract.file}`.",
        "",
        contract.doc or "*The contract has no documentation.*",
        "",
        "## Fields",
        "",
        table(("Path", "Type", "Cardinality", "Facets", "Documentation"), rows, name=FIELD_TABLE),
        *_values_section(enumerated),
        "## Used by",
        "",
    ]
    using = [
        (flow, part.name)
        for flow in flows
        for part in flow.parts
        if contract.name in (part.sender, part.receiver)
    ]
    depth = "../" * page_path(contract).count("/")

    def flow_link(flow: Flow) -> str:
        return f"[flow {flow.number} `{flow.code}`]({depth}{flow_page(flow)})"

    unused = COMMON_USE if contract.system == "common" else "No flow of the catalogue uses it."
    lines += [f"- {flow_link(flow)}, {flow.name}: the {part} part" for flow, part in using] or [
        unused
    ]
    lines.append("")
    for target in mapping_pages.get(contract.name, []):
        lines.append(f"- mapping [{Path(target).stem}]({depth}{target})")
    lines.append("")
    found = samples(samples_dir, contract)
    lines += ["## Samples", ""]
    if not found:
        lines += ["*No sample message in `contracts/samples/`.*", ""]
    for path in found:
        lines += [
            f"`{path.parent.name}/{path.name}`",
            "",
            "```xml",
            path.read_text(encoding="utf-8").rstrip(),
            "```",
            "",
        ]
    return "\n".join(lines)


def _values_section(enumerated: list[Values]) -> list[str]:
    """What each value of the message's enumerated types means, a table per type."""
    if not enumerated:
        return []
    lines = ["## Values", "", "What each value of an enumerated field means.", ""]
    for entry in enumerated:
        of_fields = ", ".join(f"`{path}`" for path in entry.paths)
        rows = [(v.value, v.doc or "(no documentation)") for v in entry.type.facets.value_docs]
        lines += [
            f"### {entry.type.name} {{ #{entry.anchor} }}",
            "",
            *([entry.type.doc, ""] if entry.type.doc else []),
            f"The type of {of_fields}.",
            "",
            table(("Value", "Meaning"), rows, name=VALUES_TABLE),
        ]
    return lines
