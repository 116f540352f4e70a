"""Source paths bound to the contracts: each step an element of the type before it, and the
expression reading it from the typed source model."""

from __future__ import annotations

from ccbmdm.codegen.diagnostics import Pos, did_you_mean
from ccbmdm.codegen.ir import ContractSet, Home, Particle
from ccbmdm.codegen.mapping.bind.emit import type_label
from ccbmdm.codegen.mapping.bind.model import Resolved, Scope, Val
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import Path
from ccbmdm.codegen.mapping.writer import Writer
from ccbmdm.codegen.naming import field_name


def resolve(binder: Binding, scope: Scope, path: Path) -> Resolved | None:
    """The particles a source path walks, from the scope's node or the message root; None after
    reporting the step that names no element."""
    key = binder.root_source if path.absolute else scope.source
    xpath = binder.root_xpath if path.absolute else scope.source_xpath
    dotted = "" if path.absolute else scope.source_dotted
    particles: list[Particle] = []
    for index, step in enumerate(path.steps):
        complex_type = binder.contracts.complex_types[key]
        found = {p.name: p for p in complex_type.particles}.get(step)
        if found is None:
            names = [p.name for p in complex_type.particles]
            where = (
                "the message root"
                if not particles and path.absolute
                else f"<{'.'.join(path.steps[:index]) or 'the current node'}>"
            )
            binder.fail(
                path.pos,
                "unknown-source-path",
                f"{type_label(complex_type)} ({where}) has no element <{step}>",
                did_you_mean(step, names),
            )
            return None
        particles.append(found)
        xpath += f"/{step}"
        dotted += f"{'.' if dotted else ''}{step}{'[]' if found.repeats else ''}"
        if found.kind != "complex" or found.type_key is None:
            if index < len(path.steps) - 1:
                binder.fail(
                    path.pos,
                    "unknown-source-path",
                    f"<{step}> is a value; it has no <{path.steps[index + 1]}>",
                )
                return None
            break
        key = found.type_key
    return Resolved(tuple(particles), "r" if path.absolute else "s", xpath, dotted)


def structure_source(
    binder: Binding, scope: Scope, path: Path, pos: Pos, verb: str
) -> tuple[Resolved, tuple[Home, str]] | None:
    """The source structure a from:, each: or copy: reads; None after reporting a value."""
    resolved = resolve(binder, scope, path)
    if resolved is None:
        return None
    last = resolved.particles[-1]
    if last.kind != "complex" or last.type_key is None:
        wanted = "repeated structures" if verb == "each:" else "a structure"
        binder.fail(pos, "type-mismatch", f"{verb} needs {wanted}; <{path}> is a value")
        return None
    return resolved, last.type_key


def emit_path(binder: Binding, w: Writer, resolved: Resolved) -> Val:
    """Emit the reading of a resolved path: one value (None when an optional step is absent),
    or the list of every value when a step repeats."""
    var = w.fresh()
    particles = resolved.particles
    last = particles[-1]
    simple = (
        binder.contracts.simple_types.get(last.type_key)
        if last.kind == "simple" and last.type_key
        else None
    )
    if any(p.repeats for p in particles):
        w.line(f"{var} = [{_comprehension(resolved)}]")
        return Val(var, simple, True, False, last)
    expression = resolved.start
    guarded = False
    for particle in particles:
        if guarded:
            w.line(f"{var} = None if {var} is None else {var}.{field_name(particle.name)}")
        else:
            expression += f".{field_name(particle.name)}"
            if particle.min_occurs == 0:
                w.line(f"{var} = {expression}")
                guarded = True
    if not guarded:
        w.line(f"{var} = {expression}")
    optional = any(p.min_occurs == 0 for p in particles)
    return Val(var, simple, False, optional, last)


def _comprehension(resolved: Resolved) -> str:
    """The body of a list comprehension over every value a repeating path reaches."""
    current, clauses = resolved.start, []
    for index, particle in enumerate(resolved.particles):
        item = f"x{index}"
        attr = f"{current}.{field_name(particle.name)}"
        if particle.repeats:
            clauses.append(f"for {item} in {attr}")
        elif particle.min_occurs == 0:
            clauses.append(f"for {item} in ({attr},) if {item} is not None")
        else:
            clauses.append(f"for {item} in ({attr},)")
        current = item
    return f"{current} {' '.join(clauses)}"


def reads_personal(binder: Binding, scope: Scope, path: Path) -> bool:
    """Whether a source path reaches personal data (a path that does not resolve was
    reported where it was read)."""
    key = binder.root_source if path.absolute else scope.source
    for step in path.steps:
        complex_type = binder.contracts.complex_types.get(key)
        found = (
            None if complex_type is None else {p.name: p for p in complex_type.particles}.get(step)
        )
        if found is None:
            return False
        if found.personal:
            return True
        if found.type_key is None or found.kind != "complex":
            return False
        key = found.type_key
    return False


def read_subtree(binder: Binding, dotted: str, key: tuple[Home, str]) -> None:
    """Every value under a copied structure counts as read."""
    for leaf in leaves(binder.contracts, key, dotted):
        binder.reads.add(leaf)


def leaves(contracts: ContractSet, key: tuple[Home, str], prefix: str = "") -> list[str]:
    """Every value element under a type, as dotted paths with [] after repeated steps."""
    found = []
    for particle in contracts.complex_types[key].particles:
        path = f"{prefix}{'.' if prefix else ''}{particle.name}{'[]' if particle.repeats else ''}"
        if particle.kind == "complex" and particle.type_key is not None:
            found += leaves(contracts, particle.type_key, path)
        else:
            found.append(path)
    return found


def elements(
    contracts: ContractSet, key: tuple[Home, str], prefix: str = ""
) -> dict[str, Particle]:
    """Every element under a type, structures and values, by dotted path (no [] markers: the
    paths a mapping writes)."""
    found: dict[str, Particle] = {}
    for particle in contracts.complex_types[key].particles:
        path = f"{prefix}{'.' if prefix else ''}{particle.name}"
        found[path] = particle
        if particle.kind == "complex" and particle.type_key is not None:
            found.update(elements(contracts, particle.type_key, path))
    return found
