"""The mutants a project allows to survive: ``<cases>/mutants-allowed.yaml``, reviewed by hand.

An entry names a mutant by what does not change from run to run (its mapping file, target
element, operator and change) and says why no case needs to kill it, such as an equivalent
mutant that cannot alter any message. A malformed entry is a Finding at ``file:line:col``, like
a malformed case; so is a stale one (see ``conformance.mutation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ccbmdm.codegen.diagnostics import Finding, Pos
from ccbmdm.codegen.mapping.loader import (
    LDict,
    compose_located,
    file_validator,
    validate_located,
)
from ccbmdm.codegen.project import Project

ALLOWED_FILE = "mutants-allowed.yaml"
SCHEMA_FILE = Path(__file__).with_name("mutants-allowed.schema.json")
HINT = "see docs/conformance.md, Mutation checking"


@dataclass(frozen=True)
class Allowance:
    """One mutant allowed to survive, and why."""

    mapping: str
    target: str
    operator: str
    change: str
    reason: str
    pos: Pos  # where the entry is written

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.mapping, self.target, self.operator, self.change


def read_allowed(project: Project) -> list[Allowance]:
    """The project's allow-list (none when the file does not exist); a Finding where it is
    malformed."""
    path = project.cases / ALLOWED_FILE
    if not path.is_file():
        return []
    display = str(path.relative_to(project.root))
    data = compose_located(path, display, "an allow-list")
    validate_located(data, file_validator(SCHEMA_FILE), HINT)
    found: list[Allowance] = []
    seen: dict[tuple[str, str, str, str], Pos] = {}
    for entry in data["allowed"]:
        assert isinstance(entry, LDict)
        allowance = Allowance(
            str(entry["mapping"]),
            str(entry["target"]),
            str(entry["operator"]),
            str(entry["change"]),
            str(entry["reason"]),
            entry.pos,
        )
        if allowance.key in seen:
            raise Finding(
                entry.pos,
                "allow-list",
                f"the same mutant is allowed at line {seen[allowance.key].line}",
                "remove one of the two entries",
            )
        seen[allowance.key] = entry.pos
        found.append(allowance)
    return found
