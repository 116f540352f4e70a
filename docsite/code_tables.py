"""The code-table pages: one per code table, its rows, its miss policy and who reads it."""

from __future__ import annotations

from ccbmdm.runtime.messages.mapping import CodeTable

from .markdown import table

ROWS_TABLE = "rows"
# What each miss policy does, in the words a reader of the table needs.
POLICIES = {
    "fail": "a value with no row fails the mapping with fault 90000/1101 [table, value]",
    "default": "a value with no row takes the default row",
    "pass_through": "a value with no row passes unchanged",
}


def page_path(name: str) -> str:
    return f"code-tables/{name}.md"


def page(code_table: CodeTable, used_by: list[str]) -> str:
    """The Markdown of one code table's page; ``used_by`` lists the mapping pages reading it."""
    columns = (*code_table.keys, *code_table.values)
    rows = [
        tuple(str(key[i]) for i in range(len(code_table.keys)))
        + tuple(str(row[column]) for column in code_table.values)
        for key, row in sorted(code_table.rows.items())
    ]
    lines = [f"# {code_table.name}", ""]
    if code_table.description:
        lines += [code_table.description, ""]
    lines += [
        f"Keys: {', '.join(f'`{k}`' for k in code_table.keys)}; "
        f"values: {', '.join(f'`{v}`' for v in code_table.values)}.",
        "",
        f"**When a value has no row** (`{code_table.miss}`): {POLICIES[code_table.miss]}.",
        "",
    ]
    if code_table.default is not None:
        default = ", ".join(f"`{k}` = `{v}`" for k, v in code_table.default.items())
        lines += [f"**Default row:** {default}.", ""]
    lines += [f"## Rows ({len(rows)})", "", table(columns, rows, name=ROWS_TABLE), "## Used by", ""]
    lines += [f"- [{p.rsplit('/', 1)[-1].removesuffix('.md')}](../{p})" for p in used_by] or [
        "No mapping reads this table."
    ]
    lines.append("")
    return "\n".join(lines)
