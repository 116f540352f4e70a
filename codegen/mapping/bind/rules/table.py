"""A code-table rule (``table:``): a lookup by key columns, or a reversed one, checked against
the table's columns and the target's facets."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import did_you_mean
from ccbmdm.codegen.ir import SimpleType
from ccbmdm.codegen.mapping.bind.checks import table_coverage
from ccbmdm.codegen.mapping.bind.emit import parser, plain, wrap_value_errors
from ccbmdm.codegen.mapping.bind.model import LineageEntry, Scope, Val
from ccbmdm.codegen.mapping.bind.rules.keys import text_argument
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.facets import facet_problem
from ccbmdm.codegen.mapping.syntax import TableRule
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.runtime.messages.mapping import CodeTable


def value(
    binder: Binding,
    w: Writer,
    scope: Scope,
    rule: TableRule,
    expected: SimpleType | None,
    site: int,
    entry: LineageEntry,
) -> Val | None:
    table = _known(binder, rule)
    if table is None:
        return None
    binder.tables_used.add(table.name)
    entry.tables.add(table.name)
    result = expected or plain("string")
    looked_up = _reversed(binder, rule, table) if rule.reverse else _forward(binder, rule, table)
    if looked_up is None:
        return None
    column, cells = looked_up
    if expected is not None:
        _check_cells(binder, rule, table, column, cells, expected)
    keys = _keys(binder, w, scope, rule, table, site)
    if keys is None:
        return None
    return _lookup(w, rule, table, column, keys, result, site)


def _known(binder: Binding, rule: TableRule) -> CodeTable | None:
    """The table a rule names; None after reporting an unknown one (a table that failed to load
    is reported where it is wrong, and counts as used)."""
    table = binder.tables.get(rule.table)
    if table is None and rule.table in binder.broken:
        binder.tables_used.add(rule.table)
        return None
    if table is None:
        binder.fail(
            rule.pos,
            "unknown-table",
            f"no code table named {rule.table}",
            did_you_mean(rule.table, list(binder.tables)),
        )
    return table


def _reversed(binder: Binding, rule: TableRule, table: CodeTable) -> tuple[str, list[str]] | None:
    """The column a reversed lookup returns (the key column) and its cells."""
    if len(table.keys) != 1 or len(table.values) != 1:
        binder.fail(
            rule.pos,
            "reverse",
            f"{table.name} has {len(table.keys)} key and {len(table.values)} value columns; a reversed table needs one of each",
        )
        return None
    values = [row[table.values[0]] for row in table.rows.values()]
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        binder.fail(
            rule.pos,
            "reverse-not-unique",
            f"{table.name} is used in reverse but its column {table.values[0]} repeats {', '.join(duplicates)}",
        )
    return table.keys[0], [key[0] for key in table.rows]


def _forward(binder: Binding, rule: TableRule, table: CodeTable) -> tuple[str, list[str]] | None:
    """The value column a lookup returns and its cells, the default row's included."""
    if len(rule.keys) != len(table.keys):
        binder.fail(
            rule.pos,
            "table-key",
            f"{table.name} is keyed by {len(table.keys)} column(s) ({', '.join(table.keys)}); the rule gives {len(rule.keys)}",
        )
        return None
    column = rule.column or (table.values[0] if len(table.values) == 1 else "")
    if column not in table.values:
        binder.fail(
            rule.pos,
            "table-column",
            f"{table.name} has value columns {', '.join(table.values)}; name one with column:",
            did_you_mean(column, list(table.values)),
        )
        return None
    cells = [row[column] for row in table.rows.values()]
    if table.default is not None:
        cells.append(table.default[column])
    return column, cells


def _check_cells(
    binder: Binding,
    rule: TableRule,
    table: CodeTable,
    column: str,
    cells: list[str],
    expected: SimpleType,
) -> None:
    """The first cell of the returned column the target cannot take."""
    for cell in sorted(set(cells)):
        problem = facet_problem(expected, cell)
        if problem:
            binder.fail(
                rule.pos,
                "facet-violation",
                f"{table.name}.{column} holds {cell!r}, which the target cannot take: {problem}",
            )
            return


def _keys(
    binder: Binding, w: Writer, scope: Scope, rule: TableRule, table: CodeTable, site: int
) -> list[tuple[str, bool]] | None:
    """The variables holding the lookup's keys, each with whether it may be absent."""
    keys = []
    for key_rule in rule.keys[: 1 if rule.reverse else None]:
        argument = text_argument(binder, w, scope, key_rule, site)
        if argument is None:
            return None
        keys.append(argument)
        table_coverage(binder, scope, key_rule, table)
    return keys


def _lookup(
    w: Writer,
    rule: TableRule,
    table: CodeTable,
    column: str,
    keys: list[tuple[str, bool]],
    result: SimpleType,
    site: int,
) -> Val:
    """Emit the lookup itself: None when a key is absent, the cell read as the target's type."""
    names = [key for key, _ in keys]
    optional = [key for key, absent in keys if absent]
    var = w.fresh()
    if rule.reverse:
        call = f"ctx.tables.reverse({site}, {table.name!r}, {names[0]})"
    else:
        call = f"ctx.tables.lookup({site}, {table.name!r}, ({', '.join(names)},), {column!r})"
    parse = parser(result)
    lookup = call if parse == "str" else f"{parse}({call})"
    missing = " or ".join(f"{k} is None" for k in names if k in optional)
    w.line(f"{var} = None if {missing} else {lookup}" if missing else f"{var} = {lookup}")
    if parse != "str":
        wrap_value_errors(w, site, var, names[0])
    return Val(var, result, False, any(k in optional for k in names))
