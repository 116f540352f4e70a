"""The simulators' page per entity: a minimal HTML table at the address navigation links use
(``links``), ``/{system}/{kind}/{id}``; each simulator looks up its own entities' fields."""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping

from ccbmdm.runtime.store import Store, Transaction

# (transaction, kind, entity id) -> the entity's fields; None when there is no such entity
Fields = Callable[[Transaction, str, str], Mapping[str, object] | None]


def page(store: Store, system: str, path: str, fields_of: Fields) -> str | None:
    """The HTML page a simulator serves at ``path`` (``/ccb/sa/0000000001``); None when there
    is no such entity. ``fields_of`` is the system's own lookup of an entity's fields."""
    parts = path.strip("/").split("/")
    if len(parts) != 3 or parts[0] != system:
        return None
    _, kind, entity_id = parts
    with store.transaction() as tx:
        fields = fields_of(tx, kind, entity_id)
    if fields is None:
        return None
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in fields.items()
    )
    title = html.escape(f"{system.upper()} {kind} {entity_id}")
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><table>{rows}</table></body></html>"
    )
