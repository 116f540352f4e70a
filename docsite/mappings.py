"""The mapping pages: one per mapping part, a row per target field, from the lineage."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from ccbmdm.codegen.lineage import written

from .flows import CaseSummary
from .markdown import Code, table

LINEAGE_TABLE = "lineage"
# How a case exercises the mapping: the part alone, or a flow through the runtime.
_THROUGH = {False: "this part alone", True: "a flow case, through the runtime"}


def page_path(mapping_file: str) -> str:
    """``mappings/sa-sync.request.yaml`` -> ``mappings/sa-sync.request.md``."""
    return f"mappings/{PurePosixPath(mapping_file).stem}.md"


def page(
    root: Path,
    mapping_file: str,
    lineage: dict[str, Any],
    message_pages: dict[str, str],
    cases: list[CaseSummary],
) -> str:
    """The Markdown of one mapping page; ``lineage`` is its entry in the compiler's lineage
    (its files relative to the project's ``root``), ``message_pages`` maps a contract name to
    its page, ``cases`` exercise the mapping."""
    depth = "../" * page_path(mapping_file).count("/")
    source, target = lineage["source"], lineage["target"]

    def message(name: str) -> str:
        return f"[{name}]({depth}{message_pages[name]})" if name in message_pages else f"`{name}`"

    rows = [
        (
            field,
            Code(written(root, entry["rule"])) if entry["rule"] else _rule(entry),
            entry["rule"] or "",
            ", ".join(entry["sources"]),
            ", ".join(entry["tables"]),
        )
        for field, entry in lineage["fields"].items()
    ]
    lines = [
        f"# {PurePosixPath(mapping_file).stem}",
        "",
        f"The **{lineage['part']}** part of flow `{lineage['flow']}`: "
        f"from {message(source)} to {message(target)}, written in `{mapping_file}`.",
        "",
        "## Target fields",
        "",
        table(
            ("Target field", "Rule", "Where", "Source paths", "Code tables"),
            rows,
            name=LINEAGE_TABLE,
        ),
        "## Source fields no rule reads",
        "",
    ]
    unread = lineage.get("unread_sources", [])
    declared = lineage.get("declared_unread", [])
    lines += [f"- `{leaf}`" for leaf in unread] + [
        f"- `{leaf}` (listed under `unread:`)" for leaf in declared
    ] or ["Every source field is read."]
    lines += ["", "## Conformance cases", ""]
    lines += [
        f"- `{case.id}` ({_THROUGH[case.part == 'flow']}): {case.description}" for case in cases
    ] or ["*No conformance case exercises this mapping.*"]
    lines.append("")
    return "\n".join(lines)


def _rule(entry: dict[str, Any]) -> str:
    """What computes the field, as the lineage records it."""
    parts = []
    if entry["sources"]:
        parts.append("copy" if len(entry["sources"]) == 1 else "combine")
    parts += [f"table {t}" for t in entry["tables"]]
    parts += [f"function {f}" for f in entry["functions"]]
    parts += [f"constant {c}" for c in entry["constants"]]
    return ", ".join(parts) or "generated"
