"""Mermaid diagrams of the site: a flow's messages as a sequence, a lifecycle table as states.

Both are written from the same data the runtime runs on (the flow catalogue, the lifecycle
tables), so a diagram cannot disagree with what happens. The browser draws them: the site ships
Mermaid itself (``assets/mermaid.min.js``), so the pages work offline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ccbmdm.codegen.catalogue import Flow, Part
from ccbmdm.runtime.lifecycles.lifecycle import Lifecycle

# The framework faults a mapping or a relay raises (docs/runtime.md, Faults), by flow mode.
ASYNC_FAULTS = "90000/1003, 1101, 1102, 1401, 1402"
SYNC_FAULTS = "90000/1003, 1101 (HTTP 400), 1401 (HTTP 502 or 504)"
_PARTICIPANT = {"ccb": "CCB", "mdm": "MDM"}


def fence(diagram: str) -> str:
    """A Mermaid block as the site's Markdown writes it."""
    return f"```mermaid\n{diagram}\n```\n"


def pipeline() -> str:
    """The framework's pipeline, for the home page."""
    return "\n".join(
        [
            "flowchart LR",
            '    contracts["contracts<br/>XSD per message"] --> compile(["ccbmdm compile"])',
            '    mappings["mappings<br/>YAML per part"] --> compile',
            '    compile --> generated["models, codecs,<br/>transformers"]',
            '    generated --> runtime["runtime<br/>pending monitors, delivery, bridge"]',
            '    generated --> conformance["conformance<br/>golden cases"]',
            '    runtime <--> systems["CCB and MDM<br/>or the reference simulators"]',
        ]
    )


def sequence(flow: Flow, mapping_of: Callable[[Part], str | None]) -> str:
    """Every message of ``flow`` from system to bridge to system, each with its contract and the
    mapping the bridge applies (``mapping_of`` names it), then the faults the bridge answers."""
    lines = [
        "sequenceDiagram",
        f"    participant {_PARTICIPANT[flow.initiator]}",
        "    participant Bridge",
        f"    participant {_PARTICIPANT[flow.receiver]}",
    ]
    synchronous = flow.mode == "sync"
    for part in flow.parts:
        lines += _hops(part, mapping_of(part), synchronous)
    lines += _faults(flow)
    return "\n".join(lines)


def _hops(part: Part, mapping: str | None, synchronous: bool) -> Iterator[str]:
    sender, receiver = _PARTICIPANT[part.sent_by], _PARTICIPANT[part.received_by]
    if synchronous:  # a call answered in the same exchange: solid there, dashed back
        arrow, into, out_of = ("-->>", "-", "-") if part.reply else ("->>", "+", "+")
    else:  # each hop is a POST answered at once with a receipt; the reply comes later
        arrow, into, out_of = "-)", "", ""
    if synchronous and part.reply:
        # the reply leaves the system called, then the bridge that called it
        yield f"    {sender}{arrow}{out_of}Bridge: {part.name}: {part.sender}"
        if mapping:
            yield f"    Note over Bridge: mapping {mapping}"
        yield f"    Bridge{arrow}{into}{receiver}: {part.name}: {part.receiver}"
        return
    yield f"    {sender}{arrow}{into}Bridge: {part.name}: {part.sender}"
    if mapping:
        yield f"    Note over Bridge: mapping {mapping}"
    yield f"    Bridge{arrow}{out_of}{receiver}: {part.name}: {part.receiver}"


def _faults(flow: Flow) -> Iterator[str]:
    """What the initiator gets when the bridge cannot map or relay its message."""
    initiator = _PARTICIPANT[flow.initiator]
    if flow.mode == "sync":
        yield "    opt the mapping fails, or the other system cannot be reached"
        yield f"        Bridge-->>{initiator}: Fault {SYNC_FAULTS}"
    else:
        reply = next((p for p in flow.parts if p.reply), flow.parts[0])
        yield "    opt the mapping fails, or the message is not delivered or processed"
        yield f"        Bridge-){initiator}: Fault on the {reply.name} part: {ASYNC_FAULTS}"
    yield "    end"


def states(lifecycle: Lifecycle) -> str:
    """A lifecycle table as a state diagram: each transition labelled with its id and event;
    transitory states (never stored) dashed, exception states marked."""
    lines = ["stateDiagram-v2"]
    kinds = {name: lifecycle.kind(name) for name in lifecycle.states}
    lines += [f"    [*] --> {name}" for name, kind in kinds.items() if kind == "initial"]
    lines += [f"    {t.source} --> {t.target}: {t.id} {t.event}" for t in lifecycle.transitions]
    lines += [f"    {name} --> [*]" for name, kind in kinds.items() if kind == "final"]
    lines += [
        "    classDef transitory stroke-dasharray: 5 5",
        "    classDef exception stroke:#d32f2f,stroke-width:2px",
    ]
    for kind in ("transitory", "exception"):
        marked = [name for name, k in kinds.items() if k == kind]
        if marked:
            lines.append(f"    class {','.join(marked)} {kind}")
    return "\n".join(lines)
