"""One way to report a problem: a finding at a file, line and column, under a registered rule.

Every stage that checks what an integrator wrote (the contract reader, the flow catalogue, the
mapping compiler, the conformance kit, `ccbmdm validate`) reports `Finding`s, so the command line
prints them one way (text, JSON or SARIF, see `report`). `RULES` lists every rule id with its
severity and what it means, which the SARIF output and the documentation site's Rules page show;
a rule id that is not registered fails the tests.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ccbmdm.errors import CcbmdmError

Severity = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class Pos:
    """A position in a project file (1-based line and column; column 1 when unknown)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Finding(Exception):
    """One problem at a position; the stages collect them and the command line prints them."""

    def __init__(
        self,
        pos: Pos,
        rule: str,
        message: str,
        hint: str = "",
        severity: Severity | None = None,
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.pos = pos
        self.rule = rule
        self.message = message
        self.hint = hint
        # The rule's own severity unless the stage says otherwise.
        self.severity: Severity = severity or (RULES[rule].severity if rule in RULES else "error")
        self.path = path  # the contract path concerned: the element being written or declared

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        path = f"{self.path}: " if self.path else ""
        return f"{self.pos}: {self.severity}[{self.rule}]: {path}{self.message}{hint}"


class FindingsError(CcbmdmError):
    """A stage found errors; carries every finding (warnings too) for the command line."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        super().__init__("\n".join(str(f) for f in self.findings))


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """A hint naming the known name closest to a misspelt one, or nothing."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else ""


@dataclass(frozen=True)
class Rule:
    """A registered rule: where it applies, its severity, a one-line summary and what it means
    and how to fix it."""

    id: str
    stage: str
    severity: Severity
    summary: str
    explanation: str


def _rules(*rules: Rule) -> dict[str, Rule]:
    return {rule.id: rule for rule in rules}


CONTRACTS = "Contracts (contracts/**/*.xsd)"
CATALOGUE = "Flow catalogue (contracts/flows.yaml)"
MAPPINGS = "Mappings (mappings/*.yaml and fragments)"
TABLES = "Code tables (mappings/tables/*.yaml)"
CHECKS = "Conformance and validation"

RULES: dict[str, Rule] = _rules(
    # ---------------------------------------------------------------- contracts
    Rule(
        "xsd-syntax",
        CONTRACTS,
        "error",
        "a schema cannot be read",
        "The file is not well-formed XML, cannot be read, or the contracts folder holds no "
        "XSD under common/, ccb/ or mdm/. Fix the XML at the line and column given.",
    ),
    Rule(
        "xsd-subset",
        CONTRACTS,
        "error",
        "the schema leaves the supported XSD subset",
        "The generator supports a subset of XSD (docs/contracts.md): named simple types that "
        "restrict a base, complex types holding one xs:sequence, groups, xs:any and the facets "
        "the runtime checks. Rewrite the declaration within the subset, as the message says.",
    ),
    Rule(
        "namespace",
        CONTRACTS,
        "error",
        "a namespace does not belong where it is used",
        "Each system's folder has its target namespace (ccb/: urn:ccbmdm:ccb:v1, mdm/: "
        "urn:ccbmdm:mdm:v1, common/: none), and a schema can only refer to its own namespace "
        "and what it includes. Move the schema or correct its targetNamespace or prefix.",
    ),
    Rule(
        "unknown-type",
        CONTRACTS,
        "error",
        "a type or group reference names nothing",
        "No type or group of that name is declared in the schema or what it includes. Correct "
        "the name (the hint names close matches) or include the schema that declares it.",
    ),
    Rule(
        "duplicate-type",
        CONTRACTS,
        "error",
        "a complex type is declared twice",
        "Two declarations give a system the same complex type name, so generated classes would "
        "clash. Rename one of them.",
    ),
    Rule(
        "message-root",
        CONTRACTS,
        "error",
        "a schema's global elements are not one message root",
        "A message schema declares exactly one global element, named as its file, of a complex "
        "type; a shared-type schema (common/) declares none. Adjust the global elements.",
    ),
    Rule(
        "personal-data",
        CONTRACTS,
        "error",
        "the personal-data marker is misplaced",
        'The only xs:appinfo is the empty marker source="urn:ccbmdm:personal-data", on an '
        "element of a simple type or on a complex type; everything in a personal type is "
        "personal, so a complex type inside one must be marked too. Move or add the marker.",
    ),
    # ---------------------------------------------------------------- catalogue
    Rule(
        "catalogue",
        CATALOGUE,
        "error",
        "a flow entry is malformed",
        "Each flow lists number, code, name, initiator, receiver, mode, optional, error_policy, "
        "ordering_key, reply_timeout and parts, with the values docs/flows.md allows; each part "
        "(request, response, ack, notification) names a sender and a receiver contract. Add, "
        "remove or correct the key named.",
    ),
    Rule(
        "catalogue-contract",
        CATALOGUE,
        "error",
        "a part names a contract that is not there or of the wrong system",
        "A part's sender and receiver are contracts (<system>/<root>) of the systems that send "
        "and receive it: the initiator sends requests and notifications, the receiver answers. "
        "Correct the name (the hint names close matches) or the system.",
    ),
    Rule(
        "duplicate-flow",
        CATALOGUE,
        "error",
        "a flow code is listed twice",
        "Flow codes identify flows in mappings, cases and messages, so each is listed once. "
        "Remove or rename one entry.",
    ),
    # ---------------------------------------------------------------- mappings
    Rule(
        "yaml",
        MAPPINGS,
        "error",
        "a YAML file cannot be read",
        "The file (a mapping, fragment, code table, case or the catalogue) is not valid YAML or "
        "cannot be read. Fix the syntax at the line and column given.",
    ),
    Rule(
        "schema",
        MAPPINGS,
        "error",
        "a mapping file does not follow the mapping language",
        "The file breaks mappings/mapping.schema.json: a key is missing, unknown or of the "
        "wrong kind. The message names the key; docs/mappings.md describes each form of rule.",
    ),
    Rule(
        "duplicate-target",
        MAPPINGS,
        "error",
        "two rules write the same target element",
        "A target element is written once: by one rule of the mapping or of a fragment it "
        "uses. Remove one of the rules (the hint gives the other's line).",
    ),
    Rule(
        "unknown-contract",
        MAPPINGS,
        "error",
        "a mapping's source or target is no contract",
        "source: and target: name contracts as <system>/<root>. Correct the name.",
    ),
    Rule(
        "unknown-fragment",
        MAPPINGS,
        "error",
        "use: names no fragment",
        "use: lists fragments by the name in their fragment: key, from mappings/fragments/. "
        "Correct the name or add the fragment.",
    ),
    Rule(
        "unknown-target",
        MAPPINGS,
        "error",
        "a rule writes an element the target type does not have",
        "Each key of rules: is an element of the target structure. Correct the name (the hint "
        "names close matches) or remove the rule.",
    ),
    Rule(
        "unmapped-required",
        MAPPINGS,
        "error",
        "a required target element has no rule",
        "The target contract requires the element (minOccurs 1), so the mapping must write it. "
        "Add a rule for it: a path, a const:, a table: lookup or a function.",
    ),
    Rule(
        "target-cycle",
        MAPPINGS,
        "error",
        "target: rules depend on each other in a circle",
        "A target: rule copies an element written by another rule of the same structure; when "
        "the rules refer to each other in a circle, none can be computed first. Write one of "
        "them from the source instead.",
    ),
    Rule(
        "type-mismatch",
        MAPPINGS,
        "error",
        "a value does not fit the target's type",
        "The value a rule gives has another type than the target element takes (a structure "
        "for a value, a date for a decimal, ...). Map a matching element, or convert it with a "
        "function (the hint names one when there is).",
    ),
    Rule(
        "list-into-single",
        MAPPINGS,
        "error",
        "repetitions do not match",
        "A path that reaches several values cannot write an element that occurs once, and a "
        "repeated target is built with each:. Add pick: first, last or only, or use each:.",
    ),
    Rule(
        "conditional-required",
        MAPPINGS,
        "error",
        "a required element is written only under a condition",
        "when: may leave the element out, which the target contract forbids. Give the rule a "
        "default:, or drop the condition.",
    ),
    Rule(
        "copy-shape",
        MAPPINGS,
        "error",
        "copy: joins structures of different shapes",
        "copy: takes a source structure whole into the target, so both types must have the "
        "same elements with the same types and repetitions. Map the structure element by "
        "element instead.",
    ),
    Rule(
        "pick",
        MAPPINGS,
        "error",
        "pick: where a path reaches one value",
        "pick: chooses among repeated values; the path reaches at most one. Remove pick:.",
    ),
    Rule(
        "unknown-table",
        MAPPINGS,
        "error",
        "table: names no code table",
        "Code tables are mappings/tables/<name>.yaml. Correct the name (the hint names close "
        "matches) or add the table.",
    ),
    Rule(
        "reverse",
        MAPPINGS,
        "error",
        "a table used in reverse has more than one key or value column",
        "reverse: true looks a value up by its key column's partner; that needs exactly one key "
        "and one value column. Use a table of that shape.",
    ),
    Rule(
        "reverse-not-unique",
        MAPPINGS,
        "error",
        "a table used in reverse repeats a value",
        "Looked up in reverse, a repeated value would give several keys. Make the value column "
        "unique, or use a separate table for this direction.",
    ),
    Rule(
        "table-key",
        MAPPINGS,
        "error",
        "a lookup gives another number of keys than the table has",
        "key: gives one value per key column of the table, in order. Give as many keys as the "
        "table's keys: lists.",
    ),
    Rule(
        "table-column",
        MAPPINGS,
        "error",
        "a lookup does not say which value column it wants",
        "A table with several value columns needs column: naming one of them. Add or correct "
        "column:.",
    ),
    Rule(
        "facet-violation",
        MAPPINGS,
        "error",
        "a constant or table cell breaks the target's facets",
        "The value can never be valid for the target element (too long, not in its "
        "enumeration, not matching its pattern, ...). Correct the constant or the table cell.",
    ),
    Rule(
        "table-coverage",
        MAPPINGS,
        "error",
        "a table lacks rows for values the source may hold",
        "The source element's enumeration has values no row of the table keys, and the table "
        "would fail at run time. Add the rows, or declare miss: fail or miss: default.",
    ),
    Rule(
        "map-coverage",
        MAPPINGS,
        "error",
        "map: lacks cases for values the source may hold",
        "The source element's enumeration has values that map: has no case for. Add the cases, "
        "or a default:.",
    ),
    Rule(
        "function-signature",
        MAPPINGS,
        "error",
        "a project function's signature cannot be checked",
        "A project function (the project file's `functions:`) is called from mappings only when "
        "every parameter and its result have a type hint the compiler knows (str, int, Decimal, "
        "bool, date, datetime, optionally `| None`; a tuple or `*args` for a list), with no "
        "keyword-only parameter. Add or correct the hint, or make the function private (`_name`).",
    ),
    Rule(
        "function-clash",
        MAPPINGS,
        "error",
        "a project function has the name of another function",
        "A project function may not take the name of a built-in function or of another project "
        "function. Rename it (`ccbmdm functions` lists the names in use).",
    ),
    Rule(
        "function-import",
        MAPPINGS,
        "error",
        "a project function file cannot be imported",
        "The file named by the project file's `functions:` raised while it was imported. Fix the "
        "error at the line given; the file runs at every compile and when the project loads.",
    ),
    Rule(
        "unread-path",
        MAPPINGS,
        "error",
        "`unread:` names a source path the contract does not have",
        "A mapping's `unread:` lists source fields no rule should read, as paths from the source "
        "message's root. Correct the path (the hint names the closest) or remove it.",
    ),
    Rule(
        "unread-source",
        MAPPINGS,
        "warning",
        "a source field new since the last compile is read by no rule",
        "The field was added to the source contract and no rule of the mapping reads it, so its "
        "value would be dropped without a word. Map it, or list it under the mapping's "
        "`unread:`. The warning compares with target/lineage.json, so it lasts until the next "
        "build of target/.",
    ),
    Rule(
        "unknown-function",
        MAPPINGS,
        "error",
        "fn: names no function",
        "The functions are listed in docs/mappings.md. Correct the name (the hint names close "
        "matches).",
    ),
    Rule(
        "arity",
        MAPPINGS,
        "error",
        "a function gets another number of arguments than it takes",
        "args: gives one value per parameter of the function. Give as many arguments as the "
        "message lists.",
    ),
    Rule(
        "target-path",
        MAPPINGS,
        "error",
        "target: names no element written before",
        "target: copies a value of the target structure being built, which a rule before it "
        "writes. Correct the path, or write the value from the source.",
    ),
    Rule(
        "unknown-source-path",
        MAPPINGS,
        "error",
        "a path names no element of the source",
        "Each step of a path is an element of the source structure, from the rule's scope (or "
        "the message root when it starts with /). Correct the step (the hint names close "
        "matches).",
    ),
    Rule(
        "contract",
        MAPPINGS,
        "error",
        "a mapping's contracts are not its flow part's",
        "source: and target: are the sender's and receiver's contracts of the part in "
        "contracts/flows.yaml. Correct them, or the catalogue.",
    ),
    Rule(
        "file-name",
        MAPPINGS,
        "error",
        "a mapping file is not named after its flow and part",
        "A mapping of flow F part P is mappings/<f in kebab case>.<P>.yaml, so each flow part has "
        "one mapping and it is found by name. Rename the file.",
    ),
    Rule(
        "unknown-flow",
        MAPPINGS,
        "error",
        "a mapping's flow and part are not in the catalogue",
        "flow: and part: name a part of a flow in contracts/flows.yaml. Correct them, or add "
        "the flow.",
    ),
    # ---------------------------------------------------------------- code tables
    Rule(
        "table-name",
        TABLES,
        "error",
        "a code table's name is not its file's",
        "Rules find a table by name in mappings/tables/<name>.yaml. Rename the file or the table.",
    ),
    Rule(
        "unused-table",
        TABLES,
        "warning",
        "no mapping uses the code table",
        "The table is dead weight, or a mapping that should use it does not. Use it or remove it.",
    ),
    Rule(
        "pass-through",
        TABLES,
        "warning",
        "a code table passes unknown codes through",
        "With miss: pass_through a code the table lacks reaches the other system unchanged, "
        "which is rarely a code it knows. Prefer miss: fail or miss: default.",
    ),
    Rule(
        "table-columns",
        TABLES,
        "error",
        "a column is both a key and a value",
        "keys: and values: name different columns. Remove the column from one of them.",
    ),
    Rule(
        "table-default",
        TABLES,
        "error",
        "miss: default without a complete default row",
        "miss: default answers a missing key with the default: row, which gives every value "
        "column. Add the default row or its missing columns.",
    ),
    Rule(
        "table-row",
        TABLES,
        "error",
        "a row's columns are not the table's",
        "Each row gives every key and value column, and no other. Add or remove cells.",
    ),
    Rule(
        "table-duplicate",
        TABLES,
        "error",
        "two rows have the same key",
        "A key identifies one row. Remove or correct one of the rows.",
    ),
    # ---------------------------------------------------------------- conformance, validate
    Rule(
        "case",
        CHECKS,
        "error",
        "a conformance case is malformed",
        "case.yaml or a file of the case is wrong: a key, an action, a clock, a table or a file "
        "name. docs/conformance.md describes a case; fix what the message names.",
    ),
    Rule(
        "message",
        CHECKS,
        "error",
        "a case's input or golden message is not valid",
        "The message cannot be read, is not well-formed or does not satisfy its contract. Fix "
        "it; `ccbmdm validate` shows every problem.",
    ),
    Rule(
        "allow-list",
        CHECKS,
        "error",
        "an entry of the mutants' allow-list is stale or repeated",
        "Each allowed surviving mutant is listed once, and only while it survives. Remove the "
        "entry the message names.",
    ),
    Rule(
        "case-failed",
        CHECKS,
        "error",
        "a conformance case fails",
        "What the mappings give differs from the case's golden messages or faults. Fix the "
        "mapping, or, when the change is meant, rewrite the golden with `ccbmdm conformance "
        "--update`.",
    ),
    Rule(
        "invalid-message",
        CHECKS,
        "error",
        "a message does not satisfy its contract",
        "`ccbmdm validate` found the message not well-formed, of no known contract, or breaking "
        "its contract at the line, column and XPath given. Fix the message or the contract.",
    ),
)
