"""A path rule (``field: source.path``): the source value as it is."""

from __future__ import annotations

from ccbmdm.codegen.mapping.bind.model import LineageEntry, Scope, Val
from ccbmdm.codegen.mapping.bind.paths import emit_path, resolve
from ccbmdm.codegen.mapping.bind.state import Binding
from ccbmdm.codegen.mapping.syntax import PathRule
from ccbmdm.codegen.mapping.writer import Writer


def value(
    binder: Binding, w: Writer, scope: Scope, rule: PathRule, entry: LineageEntry
) -> Val | None:
    resolved = resolve(binder, scope, rule.path)
    if resolved is None:
        return None
    entry.sources.add(resolved.dotted)
    if resolved.particles[-1].kind == "complex":
        binder.fail(
            rule.pos,
            "type-mismatch",
            f"<{rule.path}> is a structure; map its elements, or use copy:",
        )
        return None
    binder.reads.add(resolved.dotted)
    return emit_path(binder, w, resolved)
