"""A copy rule (``copy:``): a source structure written as a target structure of the same shape,
through a generated copier when the two are different models."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import Pos
from ccbmdm.codegen.ir import Home, Particle
from ccbmdm.codegen.mapping.bind.checks import required_source
from ccbmdm.codegen.mapping.bind.emit import model, type_label
from ccbmdm.codegen.mapping.bind.model import Scope
from ccbmdm.codegen.mapping.bind.paths import emit_path, read_subtree, structure_source
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.facets import subsumes
from ccbmdm.codegen.mapping.syntax import CopyRule
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.codegen.naming import field_name
from ccbmdm.codegen.render import simple_name


def value(binder: Binding, w: Writer, scope: Scope, rule: CopyRule, particle: Particle) -> str:
    """Emit the copy; returns the variable holding it."""
    found = structure_source(binder, scope, rule.source, rule.pos, "copy:")
    if found is None or particle.type_key is None:
        return "None"
    resolved, source_key = found
    last = resolved.particles[-1]
    value = emit_path(binder, w, resolved)
    read_subtree(binder, resolved.dotted, source_key)
    if last.repeats != particle.repeats:
        binder.fail(
            rule.pos,
            "list-into-single",
            f"<{rule.source}> and <{particle.name}> differ in repetition",
        )
        return "None"
    converter = copier(binder, source_key, particle.type_key, rule.pos)
    var = value.var
    if particle.repeats:
        w.line(
            f"{var} = tuple({converter}(x) for x in {var})"
            if converter
            else f"{var} = tuple({var})"
        )
    elif converter:
        w.line(f"{var} = None if {var} is None else {converter}({var})")
    if particle.min_occurs > 0 and value.optional and not particle.repeats:
        required_source(binder, w, rule, scope, particle, var)
    return var


def copier(
    binder: Binding, source: tuple[Home, str], target: tuple[Home, str], pos: Pos
) -> str | None:
    """A function copying one structure into another of the same shape; None when the two
    are the same model (the value is shared as it is, models being immutable)."""
    if source == target:
        return None
    name = f"_copy_{source[0]}_{source[1]}_to_{target[0]}_{target[1]}"
    if any(f.startswith(f"def {name}(") for f in binder.functions):
        return name
    source_type = binder.contracts.complex_types[source]
    target_type = binder.contracts.complex_types[target]
    available = {p.name: p for p in source_type.particles}
    lines = []
    for part in target_type.particles:
        other = available.get(part.name)
        if other is None:
            if part.min_occurs > 0:
                binder.fail(
                    pos,
                    "copy-shape",
                    f"copy: {type_label(source_type)} has no <{part.name}>, which {type_label(target_type)} requires",
                )
            lines.append(f"{field_name(part.name)!r}: {'()' if part.repeats else 'None'}")
            continue
        line = _field(binder, pos, part, other)
        if line is not None:
            lines.append(line)
    fields = "".join(f"            {line},\n" for line in lines)
    binder.functions.append(
        f"def {name}(m: {model(source)}) -> {model(target)}:\n"
        f"    return build(\n        {model(target)},\n        {{\n{fields}        }},\n    )\n"
    )
    return name


def _field(binder: Binding, pos: Pos, part: Particle, other: Particle) -> str | None:
    """The copier's entry for one target element from its namesake; None after reporting
    elements of different shapes."""
    attr = field_name(part.name)
    if other.kind != part.kind or other.repeats != part.repeats:
        binder.fail(pos, "copy-shape", f"copy: <{part.name}> differs in kind or repetition")
        return None
    if part.kind == "complex":
        assert other.type_key is not None and part.type_key is not None
        inner = copier(binder, other.type_key, part.type_key, pos)
        if inner is None:
            return f"{attr!r}: m.{attr}"
        if part.repeats:
            return f"{attr!r}: tuple({inner}(x) for x in m.{attr})"
        return f"{attr!r}: None if m.{attr} is None else {inner}(m.{attr})"
    if part.kind == "simple":
        assert other.type_key is not None and part.type_key is not None
        mine = binder.contracts.simple_types[part.type_key]
        theirs = binder.contracts.simple_types[other.type_key]
        if mine.primitive != theirs.primitive or not subsumes(mine, theirs):
            binder.fail(
                pos,
                "copy-shape",
                f"copy: <{part.name}> has a different type ({simple_name(theirs)} into {simple_name(mine)})",
            )
    return f"{attr!r}: m.{attr}"
