"""The values a golden cannot fix, replaced by placeholders on both sides before comparing.

A message id, a correlation id and a sending time differ from one run to the next; they are
replaced by a placeholder, never dropped, so that an element that should be there and is not
(or the reverse) still fails the case. The rules are declared here, once, and documented in
docs/conformance.md.
"""

from __future__ import annotations

from typing import Any

# The contract path of each normalised element (XML names from the message root) and its
# placeholder.
RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("messageHeader", "messageId"), "<message-id>"),
    (("messageHeader", "correlationId"), "<correlation-id>"),
    (("messageHeader", "sentDateTime"), "<sent-date-time>"),
)


def normalise(tree: dict[str, Any]) -> dict[str, Any]:
    """A copy of a message tree with each rule's element, where present, a placeholder."""
    result = dict(tree)
    for path, placeholder in RULES:
        _replace(result, path, placeholder)
    return result


def _replace(tree: dict[str, Any], path: tuple[str, ...], placeholder: str) -> None:
    head, *rest = path
    value = tree.get(head)
    if value is None:
        return  # absent stays absent: presence is still compared
    if not rest:
        tree[head] = placeholder
    elif isinstance(value, dict):
        tree[head] = dict(value)
        _replace(tree[head], tuple(rest), placeholder)
