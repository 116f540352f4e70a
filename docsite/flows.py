"""The flow pages: one per flow of the catalogue — what it is for, its messages as a sequence
diagram, the lifecycles it drives as state diagrams, its mappings and its conformance cases."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ccbmdm.codegen.catalogue import Flow, Part
from ccbmdm.runtime.lifecycles.lifecycle import (
    MDM_INBOUND_SYNC,
    OFF_CYCLE_BILL_GENERATOR,
    SYNC_REQUEST,
    USAGE_REQUEST,
    USAGE_TRANSACTION,
    Lifecycle,
)
from ccbmdm.runtime.lifecycles.sync import CCB_SYNC_FLOWS
from ccbmdm.runtime.lifecycles.usage import USAGE_FLOWS

from . import diagrams

# A corrected read's off-cycle generator asks MDM again through a usage request (the rebill).
REBILL_FLOWS = ("REPLACEMENT_READS",)
NO_LIFECYCLE = {
    "sync": "each call is answered in its exchange, and nothing of it waits in a store",
    "async": "each message is only delivered (sent, received, processed) and answered",
}
# What a flow's error policy does to later requests of the same entity (docs/lifecycles.md).
POLICIES = {
    "hold": "a request in Error holds the later requests of its entity until it is resolved",
    "supersede": "a newer request of the entity supersedes the one in Error",
}


@dataclass(frozen=True)
class CaseSummary:
    """A conformance case as a page lists it: the kit reads the cases, the site only shows them."""

    id: str  # <flow-kebab>/<name>
    flow: str  # the flow code
    part: str  # a mapping case's part, or "flow" for a case through the runtime
    description: str


def lifecycles(flow: Flow) -> list[tuple[str, Lifecycle]]:
    """The business lifecycles a flow drives, each with the system that keeps its rows, as the
    monitors and simulators choose them (docs/lifecycles.md)."""
    driven: list[tuple[str, Lifecycle]] = []
    if flow.code in CCB_SYNC_FLOWS.values():
        driven += [("CCB", SYNC_REQUEST), ("MDM", MDM_INBOUND_SYNC)]
    if flow.code in USAGE_FLOWS:
        driven += [("CCB", USAGE_REQUEST), ("MDM", USAGE_TRANSACTION)]
    if flow.code in REBILL_FLOWS:
        driven += [("CCB", OFF_CYCLE_BILL_GENERATOR), ("CCB", USAGE_REQUEST)]
    return driven


def page_path(flow: Flow) -> str:
    return f"flows/{flow.kebab}.md"


@dataclass(frozen=True)
class GuideSection:
    """A flow's section in the flows guide: the link to it from the docs folder, and the
    business purpose it gives (its "Why, when." item), when it gives one."""

    link: str
    purpose: str | None


def guide_sections(guide: Path, folder: str) -> dict[str, GuideSection]:
    """Each flow's section of the flows guide (``## 6. Name — `CODE` ``), by flow code; the
    guide lies in ``folder`` of the docs. None when the project has no such guide."""
    if not guide.is_file():
        return {}
    from markdown.extensions.toc import slugify

    found = {}
    for section in re.split(r"^## (?=\d+\. )", guide.read_text(encoding="utf-8"), flags=re.M)[1:]:
        heading = section.splitlines()[0]
        code = re.match(r"\d+\. .*`([A-Z_]+)`\s*$", heading)
        if code is None:
            continue
        anchor = slugify(heading.replace("`", "").strip(), "-")
        why = re.search(r"^- \*\*Why, when\.\*\* (.*?)(?=^- |^\s*$)", section, re.M | re.S)
        purpose = None
        if why:  # its links rebased from the guide to a flow page
            text = " ".join(why.group(1).split())
            purpose = _LINK.sub(lambda m: _rebased(m, f"../{folder}/", guide.name), text)
        found[code.group(1)] = GuideSection(f"{folder}/{guide.name}#{anchor}", purpose)
    return found


_LINK = re.compile(r"\]\((?!https?:|/)([^)]*)\)")


def _rebased(link: re.Match[str], base: str, guide: str) -> str:
    target = link.group(1)
    return f"]({base}{guide if target.startswith('#') else ''}{target})"


def page(
    flow: Flow,
    section: GuideSection | None,
    mapping_pages: Mapping[tuple[str, str], str],
    message_pages: Mapping[str, str],
    cases: list[CaseSummary],
) -> str:
    """The Markdown of one flow page. ``mapping_pages`` maps (flow code, part) to the mapping's
    page, ``message_pages`` a contract name to its page (both relative to the docs folder);
    ``section`` is the flow's section in the flows guide."""
    depth = "../" * page_path(flow).count("/")
    optional = " It is optional: a utility may leave it out." if flow.optional else ""
    mode = "synchronous (a call answered at once)" if flow.mode == "sync" else "asynchronous"
    lines = [
        f"# {flow.number}. {flow.name} — `{flow.code}`",
        "",
        (section and section.purpose) or "*The flows guide does not describe this flow.*",
        "",
        f"From **{flow.initiator.upper()}** to **{flow.receiver.upper()}**, {mode}; "
        f"{_reply_wait(flow.reply_timeout)}.{optional}",
        "",
    ]
    if flow.ordering_key != "none":  # requests of one entity go in order, so Error can hold
        policy = POLICIES[flow.error_policy]
        lines += [f"Error policy `{flow.error_policy}`: {policy}.", ""]
    if section:
        lines += [f"The flow's fields and rules: [the flows guide]({depth}{section.link}).", ""]

    def mapping_of(part: Part) -> str | None:
        path = mapping_pages.get((flow.code, part.name))
        return Path(path).stem if path else None

    lines += ["## Messages", "", diagrams.fence(diagrams.sequence(flow, mapping_of))]
    lines += [
        _part_line(part, mapping_pages.get((flow.code, part.name)), message_pages, depth)
        for part in flow.parts
    ]
    lines += ["", "## Lifecycles", ""]
    driven = lifecycles(flow)
    if not driven:
        lines += [f"The flow drives no business lifecycle: {NO_LIFECYCLE[flow.mode]}.", ""]
    for system, lifecycle in driven:
        lines += [f"### {system}: {lifecycle.name}", "", diagrams.fence(diagrams.states(lifecycle))]
    lines += ["## Conformance cases", ""]
    lines += [
        f"- `{case.id}` ({'through the runtime' if case.part == 'flow' else case.part}): "
        f"{case.description}"
        for case in cases
    ] or ["*No conformance case exercises this flow.*"]
    lines.append("")
    return "\n".join(lines)


def _reply_wait(timeout: str) -> str:
    """The catalogue's ``reply_timeout``: an ISO 8601 duration, ``lifecycle`` or ``none``."""
    if timeout == "lifecycle":
        return "how long a reply is awaited is the lifecycle's deadline"
    if timeout == "none":
        return "no reply is awaited"
    return f"a reply is awaited for `{timeout}` (ISO 8601)"


def _part_line(
    part: Part, mapping: str | None, message_pages: Mapping[str, str], depth: str
) -> str:
    def message(name: str) -> str:
        page = message_pages.get(name)
        return f"[{name}]({depth}{page})" if page else f"`{name}`"

    by = f", mapped by [{Path(mapping).stem}]({depth}{mapping})" if mapping else ""
    return f"- **{part.name}**: {message(part.sender)} to {message(part.receiver)}{by}"
