"""`ccbmdm compat`: what a change of the contracts does to the systems that exchange them.

Two contract sets are compared element by element from each message's root, so a change in a
shared type is reported in every message that carries it, at the path where it does. Every
change is classified twice, because a change that one side can absorb may break the other:

- **senders** (systems emitting the message) still on the old contract break when a message
  they may emit is no longer valid (the contract got narrower);
- **receivers** (systems reading it) still on the old contract break when a message valid under
  the new contract is not valid under the old one (the contract got wider): the generated codecs
  are strict, so an element they do not know is rejected, even an optional one.

The model and the version rule are documented in docs/contracts.md (Compatibility).
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, Literal

from ccbmdm.codegen.catalogue import CatalogueError, load_catalogue
from ccbmdm.codegen.ir import (
    ComplexType,
    Contract,
    ContractSet,
    Facets,
    Home,
    Origin,
    Particle,
    SimpleType,
)
from ccbmdm.codegen.mapping.compile import compile_mappings
from ccbmdm.codegen.project import PROJECT_FILE, Project
from ccbmdm.codegen.render import Renderer
from ccbmdm.errors import CcbmdmError

Kind = Literal[
    "contract removed",
    "contract added",
    "root renamed",
    "namespace changed",
    "element removed",
    "element renamed",
    "element order changed",
    "required element added",
    "optional element added",
    "cardinality narrowed",
    "cardinality widened",
    "facet narrowed",
    "facet widened",
    "facet changed",
    "enumeration value removed",
    "enumeration value added",
    "type changed",
]

# Whether a kind of change breaks (senders, receivers) still on the old contract. A removed
# element breaks receivers only when it was required: see Change.breaks_receivers.
CLASSIFICATION: dict[Kind, tuple[bool, bool]] = {
    "contract removed": (True, True),
    "contract added": (False, False),
    "root renamed": (True, True),
    "namespace changed": (True, True),
    "element removed": (True, True),
    "element renamed": (True, True),
    "element order changed": (True, True),
    "required element added": (True, True),
    "optional element added": (False, True),
    "cardinality narrowed": (True, False),
    "cardinality widened": (False, True),
    "facet narrowed": (True, False),
    "facet widened": (False, True),
    "facet changed": (True, True),
    "enumeration value removed": (True, False),
    "enumeration value added": (False, True),
    "type changed": (True, True),
}
# Changes of the contract as a whole: every mapping that reads or writes it is touched.
CONTRACT_KINDS: frozenset[Kind] = frozenset(
    {"contract removed", "contract added", "root renamed", "namespace changed"}
)


class CompatError(CcbmdmError):
    """The reference contracts cannot be had (no such folder or revision); says what to do."""


@dataclass(frozen=True)
class Change:
    """One difference between the reference and the current contract of a message."""

    kind: Kind
    path: str  # dotted, from the root's children (as the lineage writes paths); "" the root
    detail: str
    where: Origin
    breaks_senders: bool
    breaks_receivers: bool
    was: str = ""  # a renamed element's path in the reference

    @property
    def breaking(self) -> bool:
        return self.breaks_senders or self.breaks_receivers


@dataclass(frozen=True)
class ContractDiff:
    """Every change of one message, with the versions its two schemas declare."""

    name: str  # the current name; the reference's when the contract was removed
    old: Contract | None
    new: Contract | None
    changes: tuple[Change, ...]

    @property
    def version_raised(self) -> bool:
        if self.old is None or self.new is None:
            return self.new is not None  # a new contract has nothing to break
        return version_key(self.new.version) > version_key(self.old.version)

    @property
    def blocking(self) -> tuple[Change, ...]:
        """The breaking changes the contract's version does not own up to."""
        return () if self.version_raised else tuple(c for c in self.changes if c.breaking)


def version_key(version: str) -> tuple[int, ...]:
    """A schema version as numbers: absent is 1 (the namespace's v1); ``1.2`` and ``v1.2``
    are (1, 2); anything else ranks below every number, so it never counts as raised."""
    if not version.strip():
        return (1,)
    match = re.fullmatch(r"v?(\d+(?:\.\d+)*)", version.strip())
    return tuple(int(n) for n in match.group(1).split(".")) if match else ()


# ------------------------------------------------------------------------------- comparison


def compare(old: ContractSet, new: ContractSet) -> list[ContractDiff]:
    """Every contract that changed between ``old`` (the reference) and ``new``, by name."""
    removed = [n for n in old.contracts if n not in new.contracts]
    added = [n for n in new.contracts if n not in old.contracts]
    diffs: list[ContractDiff] = []
    for name in removed:
        before = old.contracts[name]
        renamed = next(
            (
                n
                for n in added
                if new.contracts[n].system == before.system
                and _shape(new, new.contracts[n].type_key) == _shape(old, before.type_key)
            ),
            None,
        )
        if renamed is None:
            where = old.complex_types[before.type_key].origin
            change = _change("contract removed", "", f"{before.root} is gone", where)
            diffs.append(ContractDiff(name, before, None, (change,)))
            continue
        added.remove(renamed)
        after = new.contracts[renamed]
        where = new.complex_types[after.type_key].origin
        rename = _change("root renamed", "", f"{before.root} renamed to {after.root}", where)
        diffs.append(
            ContractDiff(renamed, before, after, (rename, *_diff(old, new, name, renamed)))
        )
    for name in added:
        after = new.contracts[name]
        where = new.complex_types[after.type_key].origin
        change = _change("contract added", "", f"new message {after.root}", where)
        diffs.append(ContractDiff(name, None, after, (change,)))
    for name in new.contracts:
        if name in old.contracts:
            changes = _diff(old, new, name, name)
            if changes:
                diffs.append(ContractDiff(name, old.contracts[name], new.contracts[name], changes))
    return sorted(diffs, key=lambda d: d.name)


def _diff(
    old: ContractSet, new: ContractSet, old_name: str, new_name: str | None = None
) -> tuple[Change, ...]:
    before, after = old.contracts[old_name], new.contracts[new_name or old_name]
    walk = _Walk(old, new)
    if before.namespace != after.namespace:
        where = new.complex_types[after.type_key].origin
        walk.add("namespace changed", "", f"{before.namespace} -> {after.namespace}", where)
    walk.sequence(old.complex_types[before.type_key], new.complex_types[after.type_key], "")
    return tuple(walk.changes)


def _change(kind: Kind, path: str, detail: str, where: Origin) -> Change:
    senders, receivers = CLASSIFICATION[kind]
    return Change(kind, path, detail, where, senders, receivers)


@dataclass
class _Walk:
    old: ContractSet
    new: ContractSet
    changes: list[Change] = field(default_factory=list)
    # the pairs of complex types being compared, so that a recursive type ends the walk
    _open: set[tuple[tuple[Home, str], tuple[Home, str]]] = field(default_factory=set)

    def add(self, kind: Kind, path: str, detail: str, where: Origin) -> None:
        self.changes.append(_change(kind, path, detail, where))

    def sequence(self, before: ComplexType, after: ComplexType, path: str) -> None:
        old_by = {p.name: p for p in before.particles}
        new_by = {p.name: p for p in after.particles}
        removed = [p for p in before.particles if p.name not in new_by]
        added = [p for p in after.particles if p.name not in old_by]
        renamed: dict[str, Particle] = {}
        for particle in removed:
            index = before.particles.index(particle)
            if index < len(after.particles):
                candidate = after.particles[index]
                if (
                    candidate in added
                    and candidate.kind == particle.kind
                    and _particle_shape(self.new, candidate) == _particle_shape(self.old, particle)
                ):
                    renamed[particle.name] = candidate
        for particle in removed:
            twin = renamed.get(particle.name)
            if twin is not None:
                renaming = _change(
                    "element renamed",
                    _join(path, twin.name),
                    f"{particle.name} renamed to {twin.name}",
                    twin.origin,
                )
                self.changes.append(dataclasses.replace(renaming, was=_join(path, particle.name)))
                self.particle(particle, twin, _join(path, twin.name))
                continue
            change = _change(
                "element removed",
                _join(path, particle.name),
                f"{_occurs(particle)} {_type_name(particle)} is gone",
                after.origin,
            )
            if particle.min_occurs == 0:  # old receivers never relied on it
                change = dataclasses.replace(change, breaks_receivers=False)
            self.changes.append(change)
        for particle in added:
            if particle in renamed.values():
                continue
            kind: Kind = (
                "required element added" if particle.min_occurs > 0 else "optional element added"
            )
            detail = f"{_occurs(particle)} {_type_name(particle)}"
            self.add(kind, _join(path, particle.name), detail, particle.origin)
        kept_before = [p.name for p in before.particles if p.name in new_by]
        kept_after = [p.name for p in after.particles if p.name in old_by]
        if kept_before != kept_after:
            detail = f"was {', '.join(kept_before)}; now {', '.join(kept_after)}"
            self.add("element order changed", path, detail, after.origin)
        for name in kept_after:
            self.particle(old_by[name], new_by[name], _join(path, name))

    def particle(self, before: Particle, after: Particle, path: str) -> None:
        self.cardinality(before, after, path)
        if before.kind != after.kind:
            detail = f"{_type_name(before)} -> {_type_name(after)}"
            self.add("type changed", path, detail, after.origin)
        elif before.kind == "simple":
            assert before.type_key is not None and after.type_key is not None
            simple_before = self.old.simple_types[before.type_key]
            simple_after = self.new.simple_types[after.type_key]
            # the line of the type's facets when its type is the same, else the element's
            where = after.origin
            if before.type_key == after.type_key and simple_after.origin is not None:
                where = simple_after.origin
            self.simple(simple_before, simple_after, path, where)
        elif before.kind == "complex":
            assert before.type_key is not None and after.type_key is not None
            pair = (before.type_key, after.type_key)
            if pair in self._open:
                return
            self._open.add(pair)
            self.sequence(
                self.old.complex_types[before.type_key],
                self.new.complex_types[after.type_key],
                path,
            )
            self._open.discard(pair)

    def cardinality(self, before: Particle, after: Particle, path: str) -> None:
        inf = float("inf")
        old_max = inf if before.max_occurs is None else before.max_occurs
        new_max = inf if after.max_occurs is None else after.max_occurs
        narrowed: list[str] = []
        widened: list[str] = []
        if after.min_occurs != before.min_occurs:
            text = f"minOccurs {before.min_occurs} -> {after.min_occurs}"
            (narrowed if after.min_occurs > before.min_occurs else widened).append(text)
        if new_max != old_max:
            text = f"maxOccurs {_bound(before.max_occurs)} -> {_bound(after.max_occurs)}"
            (narrowed if new_max < old_max else widened).append(text)
        if narrowed:
            self.add("cardinality narrowed", path, ", ".join(narrowed), after.origin)
        if widened:
            self.add("cardinality widened", path, ", ".join(widened), after.origin)

    def simple(self, before: SimpleType, after: SimpleType, path: str, where: Origin) -> None:
        if before.primitive != after.primitive:
            detail = f"{before.name} ({before.primitive}) -> {after.name} ({after.primitive})"
            self.add("type changed", path, detail, where)
            return
        a, b = before.facets, after.facets
        if a == b:
            return
        self.enumeration(a, b, path, where, after.name)
        for kind, detail in _facet_changes(a, b, before.primitive):
            self.add(kind, path, f"{detail} ({after.name})", where)

    def enumeration(self, a: Facets, b: Facets, path: str, where: Origin, name: str) -> None:
        if a.enumeration and b.enumeration:
            origins = {v.value: v.origin for v in b.value_docs}
            for value in a.enumeration:
                if value not in b.enumeration:
                    self.add("enumeration value removed", path, f"{value!r} ({name})", where)
            for value in b.enumeration:
                if value not in a.enumeration:
                    at = origins.get(value, where)
                    self.add("enumeration value added", path, f"{value!r} ({name})", at)
        elif b.enumeration:
            self.add("facet narrowed", path, f"enumeration {list(b.enumeration)} ({name})", where)
        elif a.enumeration:
            self.add("facet widened", path, f"no enumeration any more ({name})", where)


def _facet_changes(a: Facets, b: Facets, primitive: str) -> Iterator[tuple[Kind, str]]:
    """Each facet that moved, with the direction it moved in; enumerations apart."""
    if a.patterns != b.patterns:
        old, new = set(a.patterns), set(b.patterns)
        text = f"pattern {_patterns(a.patterns)} -> {_patterns(b.patterns)}"
        # every pattern must match: one more narrows, one fewer widens, another one is both
        yield ("facet changed" if not (old < new or new < old) else _moved(old < new)), text
    if a.length != b.length:
        text = f"length {_bound(a.length)} -> {_bound(b.length)}"
        both = a.length is not None and b.length is not None
        yield ("facet changed" if both else _moved(a.length is None)), text
    if (a.min_length or 0) != (b.min_length or 0):
        text = f"minLength {a.min_length or 0} -> {b.min_length or 0}"
        yield _moved((b.min_length or 0) > (a.min_length or 0)), text
    for label, x, y in (
        ("maxLength", a.max_length, b.max_length),
        ("totalDigits", a.total_digits, b.total_digits),
        ("fractionDigits", a.fraction_digits, b.fraction_digits),
    ):
        if x != y:
            yield (
                _moved(y is not None and (x is None or y < x)),
                f"{label} {_bound(x)} -> {_bound(y)}",
            )
    for label, before, after, upper in (
        ("minInclusive", a.min_inclusive, b.min_inclusive, False),
        ("maxInclusive", a.max_inclusive, b.max_inclusive, True),
    ):
        if before != after:
            # a new bound narrows; a lower bound narrows when it rises, an upper when it falls
            moved = 0 if after is None or before is None else _order(after, before, primitive)
            narrower = after is not None and (before is None or (moved < 0 if upper else moved > 0))
            yield _moved(narrower), f"{label} {_bound(before)} -> {_bound(after)}"


def _moved(narrower: bool) -> Kind:
    return "facet narrowed" if narrower else "facet widened"


def _order(x: str, y: str, primitive: str) -> int:
    """-1, 0 or 1 as bound x is below, at or above bound y."""
    if primitive in ("decimal", "integer"):
        try:
            a, b = Decimal(x), Decimal(y)
            return (a > b) - (a < b)
        except InvalidOperation:
            pass
    return (x > y) - (x < y)  # dates and date-times in their lexical form


def _shape(contracts: ContractSet, key: tuple[Home, str]) -> Any:
    """A complex type's structure without its names of types or documentation."""
    return _complex_shape(contracts, key, frozenset())


def _complex_shape(
    contracts: ContractSet, key: tuple[Home, str], open_: frozenset[tuple[Home, str]]
) -> Any:
    if key in open_:
        return ("recursive", key[1])
    particles = contracts.complex_types[key].particles
    return tuple(
        (p.name, p.min_occurs, p.max_occurs, _particle_shape(contracts, p, open_ | {key}))
        for p in particles
    )


def _particle_shape(
    contracts: ContractSet, particle: Particle, open_: frozenset[tuple[Home, str]] = frozenset()
) -> Any:
    if particle.type_key is None:
        return ("any",)
    if particle.kind == "simple":
        simple = contracts.simple_types[particle.type_key]
        return (simple.primitive, simple.facets)
    return _complex_shape(contracts, particle.type_key, open_)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _bound(value: object) -> str:
    return "none" if value is None else str(value)


def _occurs(particle: Particle) -> str:
    high = "unbounded" if particle.max_occurs is None else str(particle.max_occurs)
    return f"[{particle.min_occurs}..{high}]"


def _type_name(particle: Particle) -> str:
    return "xs:any" if particle.type_key is None else f"{particle.kind} {particle.type_key[1]}"


def _patterns(patterns: tuple[str, ...]) -> str:
    return " and ".join(repr(p) for p in patterns) if patterns else "none"


# ------------------------------------------------------------------ what a change touches


@dataclass(frozen=True)
class CaseRef:
    """A conformance case as far as compat needs it: which mapping (flow, part) it runs."""

    id: str
    flow: str
    part: str  # "flow" for a flow case, which runs every part of its flow


def touched_mappings(diff: ContractDiff, change: Change, lineage: dict[str, Any]) -> list[str]:
    """The mapping files that read (as source) or write (as target) the changed path, or the
    contract itself for a change of the whole contract or of its root's sequence."""
    names = {n for n in (diff.name, diff.old and diff.old.name) if n}
    found = []
    for file, entry in sorted(lineage.items()):
        reads = entry["source"] in names
        writes = entry["target"] in names
        if not (reads or writes):
            continue
        if change.kind in CONTRACT_KINDS or change.path == "":
            found.append(file)
            continue
        paths: set[str] = set()
        if reads:
            paths.update(s for f in entry["fields"].values() for s in f["sources"])
        if writes:
            paths.update(entry["fields"])
        if change.kind in ("required element added", "optional element added"):
            # the new element concerns a mapping that writes into its parent
            parent = change.path.rpartition(".")[0]
            hit = writes and (parent == "" or any(_related(parent, p) for p in entry["fields"]))
        else:
            changed = [change.path, change.was] if change.was else [change.path]
            hit = any(_related(c, p) for c in changed for p in paths)
        if hit:
            found.append(file)
    return found


def touched_cases(
    mappings: Iterable[str], lineage: dict[str, Any], cases_of: Callable[[str], list[CaseRef]]
) -> list[str]:
    """The cases that run any of these mappings (a flow case runs every part of its flow);
    ``cases_of`` gives a flow's cases, so that only the flows touched are read."""
    parts = {(lineage[m]["flow"], lineage[m]["part"]) for m in mappings}
    return sorted(
        case.id
        for flow in sorted({flow for flow, _ in parts})
        for case in cases_of(flow)
        if (flow, case.part) in parts or case.part == "flow"
    )


def _related(a: str, b: str) -> bool:
    """Whether one path is the other or lies inside it."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def lineage(project: Project, contracts: ContractSet, contracts_dir: Path) -> dict[str, Any] | None:
    """The lineage of the project's mappings over these contracts, or None when they do not
    compile against them (a mapping reading what the contracts no longer have)."""
    try:
        flows = load_catalogue(contracts_dir / "flows.yaml", contracts.contracts)
    except CatalogueError:
        return None
    result = compile_mappings(
        project.root, project.mappings, contracts, flows, Renderer(contracts).env
    )
    return None if result.errors else result.lineage


# ------------------------------------------------------------------ the reference contracts


@contextmanager
def reference_contracts(project: Project, against: str) -> Iterator[Path]:
    """The contracts folder ``against`` names: a folder (a project's, or a contracts folder
    itself) when one exists by that name, else a git revision of the project's repository,
    whose contracts folder is extracted into a temporary folder for the duration."""
    folder = Path(against)
    if folder.is_dir():
        yield _contracts_folder(folder)
        return
    top = Path(_git(project.root, "rev-parse", "--show-toplevel", against=against).decode().strip())
    try:
        relative = project.contracts.resolve().relative_to(top.resolve())
    except ValueError:
        raise CompatError(f"{project.contracts}: not inside the git repository {top}") from None
    archive = _git(
        top, "archive", "--format=tar", against, "--", relative.as_posix(), against=against
    )
    with TemporaryDirectory(prefix="ccbmdm-compat-") as temp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(temp, filter="data")
        yield Path(temp) / relative


def _contracts_folder(folder: Path) -> Path:
    if (folder / PROJECT_FILE).is_file():
        return Project.load(folder).contracts
    if any((folder / system).is_dir() for system in ("ccb", "mdm", "common")):
        return folder
    if (folder / "contracts").is_dir():
        return folder / "contracts"
    raise CompatError(
        f"{folder}: neither a project ({PROJECT_FILE}) nor a contracts folder "
        "(ccb/, mdm/, common/); pass one of those, or a git revision"
    )


def _git(root: Path, *arguments: str, against: str) -> bytes:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *arguments], capture_output=True, check=False
        )
    except FileNotFoundError:
        raise CompatError(f"{against}: no such folder, and git is not installed") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise CompatError(
            f"{against}: no such folder, nor a git revision of {root} "
            f"({reason[-1] if reason else 'git failed'}); pass a folder or a revision such as "
            "main or HEAD~1"
        )
    return done.stdout


# ------------------------------------------------------------------------------- reporting


@dataclass(frozen=True)
class Impact:
    """A change with what it touches, as the command reports it."""

    diff: ContractDiff
    change: Change
    mappings: tuple[str, ...]
    cases: tuple[str, ...]

    def __str__(self) -> str:
        change = self.change
        senders = "breaking" if change.breaks_senders else "compatible"
        receivers = "breaking" if change.breaks_receivers else "compatible"
        audience = (
            f"{senders} for senders and receivers"
            if senders == receivers
            else f"{senders} for senders, {receivers} for receivers"
        )
        contract = self.diff.new or self.diff.old
        assert contract is not None  # a diff has a contract on at least one side
        path = change.path or contract.root
        return f"{change.where}: {audience}: {change.kind}: {path}: {change.detail}"

    def as_json(self) -> dict[str, Any]:
        change = self.change
        return {
            "contract": self.diff.name,
            "file": change.where.file,
            "line": change.where.line,
            "kind": change.kind,
            "path": change.path,
            "detail": change.detail,
            "senders": "breaking" if change.breaks_senders else "compatible",
            "receivers": "breaking" if change.breaks_receivers else "compatible",
            "version_raised": self.diff.version_raised,
            "blocking": change in self.diff.blocking,
            "mappings": list(self.mappings),
            "cases": list(self.cases),
        }


def impacts(
    diffs: Iterable[ContractDiff],
    lineage: dict[str, Any],
    cases_of: Callable[[str], list[CaseRef]],
) -> list[Impact]:
    """Every change of every diff, a breaking one with the mappings and cases it touches."""
    result = []
    for diff in diffs:
        for change in diff.changes:
            mappings = touched_mappings(diff, change, lineage) if change.breaking else []
            cases = touched_cases(mappings, lineage, cases_of)
            result.append(Impact(diff, change, tuple(mappings), tuple(cases)))
    return result
