"""What a compiled transformer needs at run time: its context, code tables and failures.

A transformer is a pure function from a source message to a target message plus a Context that
brings everything outside the message: the clock, the installation's time zone, the code tables
and the cross-reference. A failure names the mapping rule (file:line:col), the source XPath it
was reading and the value, so an integrator can fix the mapping or the data; the value of an
element the contracts mark as personal data is written ``***`` instead, in the message as in the
fault the bridge sends back.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Protocol

import yaml

from ccbmdm.runtime.messages.lexical import WITHHELD


@dataclass(frozen=True)
class RuleSite:
    """Where a rule is written and what it reads, recorded by the compiler for messages."""

    file: str
    line: int
    column: int
    target: str  # the target element the rule writes, as an XPath
    source: str  # the source XPath it reads; {} stands for the position of each repetition
    personal: bool = False  # it reads or writes personal data: its failures withhold the value


VALUE = "{value}"  # where a failure's message quotes the value it failed on


class RuleFailure(Exception):
    """Raised inside a transformer; the transformer turns it into a located TransformError.

    ``message`` writes the value as ``{value}`` (``VALUE``), never in itself: where the rule's
    site is personal, the located message withholds it.
    """

    def __init__(
        self,
        rule: int,
        value: object,
        message: str,
        code: int = 1101,
        subject: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.rule = rule
        self.value = value
        self.message = message
        self.code = code
        # what the fault's parameters name before the value: the code table of a miss, the
        # maintenance object of an unresolved key (docs/flows.md PD-C11); none: the source path
        self.subject = subject
        self.positions: list[int] = []  # of each repetition around the rule, innermost first


class TransformError(Exception):
    """A message could not be transformed; says which rule, reading what, and why."""

    def __init__(
        self,
        site: RuleSite,
        source_xpath: str,
        value: object,
        message: str,
        code: int,
        subject: tuple[str, ...] = (),
    ) -> None:
        self.site = site
        self.source_xpath = source_xpath
        self.value = value
        self.subject = subject
        self.template = message
        self.reason = self._reason(site.personal)  # what the fault to the sender says
        self.code = code  # the framework fault number (90000/code), PD-C11
        super().__init__(self._text(site.personal))

    @property
    def parameters(self) -> tuple[str, ...]:
        """The fault's parameters (docs/flows.md PD-C11): a code-table miss names the table
        and the value, an unresolved key the maintenance object and the key (withheld where
        the rule's site is personal data), anything else the source path it read."""
        if not self.subject:
            return (self.source_xpath,)
        return (*self.subject, WITHHELD if self.site.personal else str(self.value))

    def unmasked(self) -> str:
        """The message with the value even when it is personal data: for an operator's
        command run locally on its own data (``ccbmdm transform --unmask``), never a log."""
        return self._text(False)

    def _reason(self, withhold: bool) -> str:
        return self.template.replace(VALUE, WITHHELD if withhold else repr(self.value))

    def _text(self, withhold: bool) -> str:
        site = self.site
        return (
            f"{site.file}:{site.line}:{site.column}: rule for {site.target}, reading "
            f"{self.source_xpath} = {WITHHELD if withhold else repr(self.value)}: "
            f"{self._reason(withhold)}"
        )

    @classmethod
    def located(cls, failure: RuleFailure, sites: tuple[RuleSite, ...]) -> TransformError:
        site = sites[failure.rule]
        positions = [str(p + 1) for p in reversed(failure.positions)]
        xpath = site.source
        for position in positions:
            xpath = xpath.replace("{}", position, 1)
        return cls(
            site,
            xpath.replace("[{}]", ""),
            failure.value,
            failure.message,
            failure.code,
            failure.subject,
        )


class CrossReference(Protocol):
    """The other system's keys of entities, for MDM -> CCB messages and navigation links."""

    def resolve(self, mo: str, key: str) -> str | None: ...


@dataclass(frozen=True)
class CodeTable:
    """A code table (DVM): rows from key columns to value columns, with a miss policy."""

    name: str
    keys: tuple[str, ...]
    values: tuple[str, ...]
    miss: Literal["fail", "default", "pass_through"]
    rows: Mapping[tuple[str, ...], Mapping[str, str]]
    default: Mapping[str, str] | None = None
    description: str = ""

    def lookup(self, key: tuple[str, ...], column: str) -> str | None:
        """The value in ``column`` for ``key``; None on a miss under the fail policy."""
        row = self.rows.get(key)
        if row is not None:
            return row[column]
        if self.miss == "default" and self.default is not None:
            return self.default[column]
        if self.miss == "pass_through":
            return key[0]
        return None

    def reverse(self) -> dict[str, str]:
        """Value -> key of a one-key, one-value table (the compiler checks it is unique)."""
        (key,), (value,) = self.keys, self.values
        return {row[value]: row[key] for row in self.rows.values()}


class TableFileError(Exception):
    """A code-table file is malformed (the compiler reports these with line and column)."""


def _parsed(text: str) -> Any:
    """A YAML document, read by libyaml when it is installed (a command reads every table as it
    starts); a document libyaml refuses is read again by the Python parser, whose error quotes
    the line."""
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None:
        with contextlib.suppress(yaml.YAMLError):
            return yaml.load(text, Loader=fast)
    return yaml.safe_load(text)


def read_table(path: Path) -> CodeTable:
    try:
        data = _parsed(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TableFileError(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not {"table", "keys", "values", "rows"} <= data.keys():
        raise TableFileError(f"{path}: a code table needs table, keys, values and rows")
    keys, values = tuple(data["keys"]), tuple(data["values"])
    rows: dict[tuple[str, ...], Mapping[str, str]] = {}
    for row in data["rows"] or []:
        rows[tuple(str(row.get(k, "")) for k in keys)] = {str(k): str(v) for k, v in row.items()}
    default = data.get("default")
    return CodeTable(
        name=str(data["table"]),
        keys=keys,
        values=values,
        miss=data.get("miss", "fail"),
        rows=rows,
        default={str(k): str(v) for k, v in default.items()} if default else None,
        description=str(data.get("description", "")),
    )


@dataclass
class CodeTables:
    """Every code table of a project, by name, with lookups as transformers call them."""

    tables: dict[str, CodeTable] = field(default_factory=dict)
    _reversed: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, folder: Path) -> CodeTables:
        tables = [read_table(path) for path in sorted(folder.glob("*.yaml"))]
        return cls({table.name: table for table in tables})

    def lookup(self, rule: int, table: str, key: tuple[str, ...], column: str) -> str:
        value = self.tables[table].lookup(key, column)
        if value is None:
            shown = key[0] if len(key) == 1 else "/".join(key)
            raise RuleFailure(
                rule, shown, f"code table {table} has no row for {VALUE}", subject=(table,)
            )
        return value

    def reverse(self, rule: int, table: str, value: str) -> str:
        reversed_ = self._reversed.get(table)
        if reversed_ is None:
            reversed_ = self._reversed[table] = self.tables[table].reverse()
        key = reversed_.get(value)
        if key is None:
            if self.tables[table].miss == "pass_through":
                return value
            raise RuleFailure(
                rule,
                value,
                f"code table {table} has no row whose value is {VALUE}",
                subject=(table,),
            )
        return key


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """Everything a transformer reads besides its message."""

    tables: CodeTables
    clock: Callable[[], datetime] = _utc_now
    time_zone: str = "UTC"  # the installation's zone (PD-F36)
    xref: CrossReference | None = None

    def resolve(self, rule: int, mo: str, key: str) -> str:
        found = self.xref.resolve(mo, key) if self.xref is not None else None
        if found is None:
            raise RuleFailure(
                rule, key, f"no cross-reference for {mo} {VALUE}", code=1102, subject=(mo,)
            )
        return found


Transform = Callable[[Any, Context], Any]


@dataclass(frozen=True)
class Transformer:
    """One compiled mapping: a flow part, its contracts and the function between them, imported
    when first used (``load``)."""

    flow: str
    part: str
    source: str
    target: str
    file: str
    load: Callable[[], Transform] = field(repr=False, compare=False)

    @cached_property
    def function(self) -> Transform:
        return self.load()


def imported_transform(package: str, module: str) -> Callable[[], Transform]:
    """What a generated package's mapping entry imports when first used: its module's
    ``transform``."""

    def load() -> Transform:
        transform: Transform = importlib.import_module(f"{package}.{module}").transform
        return transform

    return load
