"""Run flow cases through the runtime between the reference simulators, and judge their trail.

Each case gets a runtime of its own on a fresh SQLite store in a temporary folder, every node
in process, with the case's clock: what the mappings and the simulators read as now, and where
the store's clock starts. The ``given`` steps make the starting state; then the recorder is
switched on and the ``when`` steps run, each followed by the workers' rounds until nothing
moves. A case passes when the recorded trail has the golden's hops in the golden's order, each
message equal to its golden after normalisation, and the end state equals ``end-state.yaml``.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import yaml
from deepdiff import DeepDiff
from pydantic import BaseModel

from ccbmdm.codegen.diagnostics import Finding, Pos
from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.project import Project
from ccbmdm.conformance.cases import HINT, Case, FlowCase, Step, flow_code
from ccbmdm.conformance.compare import (
    Difference,
    differences,
    message_tree,
    present_fields,
    shown,
)
from ccbmdm.conformance.end_state import end_state, watermark
from ccbmdm.conformance.limit import limit_of
from ccbmdm.conformance.outcome import Outcome, pretty
from ccbmdm.conformance.scenario import StepFailed, Unsettled, World, perform
from ccbmdm.conformance.trail import TRAIL_FOLDER, Hop, Recorder, golden_files, read_hop
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import DeliverySetting, reference_config
from ccbmdm.runtime.messages.codec import ContractViolation
from ccbmdm.runtime.messages.contracts import ContractRegistry, UnknownContract
from ccbmdm.runtime.messages.mapping import Transformer
from ccbmdm.runtime.messages.xmlsafe import XmlRejected

END_STATE_FILE = "end-state.yaml"
# Every node is in process: retries and leases need not wait minutes.
CASE_DELIVERY = DeliverySetting(
    lease_s=30, backoff_base_s=0.05, backoff_factor=2, backoff_cap_s=1, poll_interval_s=0.01
)


@contextmanager
def _runtime_warnings() -> Iterator[list[str]]:
    """The runtime's warnings while a case runs, kept rather than printed: a mapping fault the
    case expects is in its trail; they are shown when the case cannot be run to its end."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger = logging.getLogger("ccbmdm")
    logger.addHandler(handler)
    try:
        yield said
    finally:
        logger.removeHandler(handler)


@dataclass(frozen=True)
class Ran:
    """What the case's events did: the trail and the end state."""

    hops: list[Hop]
    state: dict[str, Any]


class CompiledProject(Protocol):
    """What a flow case uses of the kit (``runner.Kit``)."""

    @property
    def project(self) -> Project: ...
    @property
    def registry(self) -> ContractRegistry: ...
    @property
    def contracts(self) -> ContractSet: ...
    @property
    def lineage(self) -> dict[str, Any]: ...
    @property
    def transformers(self) -> dict[tuple[str, str], Transformer]: ...
    def rules(self, transformer: Transformer) -> dict[str, str]: ...
    def decode_file(
        self, case: Case, path: Path, contract: str | None = None
    ) -> tuple[str, BaseModel]: ...


class FlowRunner:
    """Runs flow cases with the kit's contracts and lineage."""

    def __init__(self, kit: CompiledProject) -> None:
        self.kit = kit

    def run(self, case: FlowCase, time_limit_s: float | None = None) -> Outcome:
        return self._outcome(case, time_limit_s, write=False)

    def update(self, case: FlowCase, time_limit_s: float | None = None) -> Outcome:
        """Run the case and write its trail and end state as the goldens; the differences are
        what changed."""
        return self._outcome(case, time_limit_s, write=True)

    # ------------------------------------------------------------------ running

    def _outcome(self, case: FlowCase, time_limit_s: float | None, *, write: bool) -> Outcome:
        started = time.perf_counter()
        with _runtime_warnings() as warnings:
            try:
                ran = self._run(case, time_limit_s)
                found = self._judge(case, ran)
                mapped = self._mapped(ran.hops)
            except (Finding, StepFailed, Unsettled) as exc:
                problem = str(exc) if isinstance(exc, Finding) else f"{case.id}: {exc}"
                said = tuple(f"the runtime warned: {w}" for w in warnings)
                return Outcome(case, time.perf_counter() - started, problems=(problem, *said))
        notes: tuple[str, ...] = ()
        if write and found:
            self._write(case, ran)
            notes = (f"wrote {len(ran.hops)} trail message(s) and {END_STATE_FILE}",)
        return Outcome(
            case,
            time.perf_counter() - started,
            differences=tuple(found),
            notes=notes,
            mapped=mapped,
        )

    def _run(self, case: FlowCase, time_limit_s: float | None) -> Ran:
        # (the runner stops a case at its limit; this stops waiting for the nodes by then)
        deadline = time.monotonic() + limit_of(case, time_limit_s)
        with tempfile.TemporaryDirectory(prefix="ccbmdm-case-") as folder:
            store = str(Path(folder) / "runtime.db")
            runtime = Runtime(
                reference_config(store, CASE_DELIVERY), self.kit.project, frozen_at=case.clock
            )
            try:
                recorder = Recorder(runtime.transport.local)
                world = World(runtime, case.folder)
                self._steps(case, world, case.given, deadline)
                before = watermark(runtime.store)
                recorder.recording = True
                self._steps(case, world, case.when, deadline)
                recorder.recording = False
                return Ran(recorder.hops, end_state(world.ccb, world.mdm, before))
            finally:
                runtime.close()

    @staticmethod
    def _steps(case: FlowCase, world: World, steps: tuple[Step, ...], deadline: float) -> None:
        for step in steps:
            try:
                perform(world, step.action, step.arguments)
            except StepFailed as exc:
                raise Finding(step.pos, "case", str(exc), HINT) from None
            world.settle(deadline)

    # ------------------------------------------------------------------ judging

    def _judge(self, case: FlowCase, ran: Ran) -> list[Difference]:
        found: list[Difference] = []
        goldens = golden_files(case.folder)
        for number, path in enumerate(goldens, 1):
            expected = read_hop(path)
            if expected is None:
                raise Finding(
                    Pos(case.display(path), 1, 1),
                    "case",
                    "not a trail file name",
                    "NN-<from>-to-<to>-<flow>-<part>.xml, as `ccbmdm conformance --update` "
                    "writes them",
                )
            where = f"trail[{number}]"
            if number > len(ran.hops):
                found.append(Difference(where, expected.label, "(no such message)", None))
                continue
            actual = ran.hops[number - 1]
            if expected.label != actual.label:
                found.append(Difference(where, expected.label, actual.label, None))
                continue
            found += self._message_differences(case, path, actual, where)
        for number in range(len(goldens) + 1, len(ran.hops) + 1):
            hop = ran.hops[number - 1]
            found.append(Difference(f"trail[{number}]", "(no such message)", hop.label, None))
        found += self._state_differences(case, ran.state)
        return found

    def _message_differences(
        self, case: FlowCase, golden: Path, hop: Hop, where: str
    ) -> list[Difference]:
        expected_name, expected_model = self.kit.decode_file(case, golden)
        try:
            actual_codec, actual_model = self.kit.registry.decode(hop.body)
        except (XmlRejected, UnknownContract, ContractViolation) as exc:
            return [Difference(f"{where} {hop.label}", "a valid message", str(exc), None)]
        actual_name = actual_codec.name
        if expected_name != actual_name:
            return [Difference(f"{where}/contract", expected_name, actual_name, None)]
        type_key = self.kit.contracts.contracts[actual_name].type_key
        # a message the bridge mapped names the rule that wrote each field
        mapping = self.kit.transformers.get((flow_code(hop.flow), hop.part))
        rules: dict[str, str] = {}
        if hop.sender == "bridge" and mapping is not None and mapping.target == actual_name:
            rules = self.kit.rules(mapping)
        return [
            replace(d, path=f"{where} {hop.label}{d.path}")
            for d in differences(
                message_tree(expected_model, self.kit.contracts, type_key),
                message_tree(actual_model, self.kit.contracts, type_key),
                rules,
            )
        ]

    def _state_differences(self, case: FlowCase, state: dict[str, Any]) -> list[Difference]:
        path = case.folder / END_STATE_FILE
        if not path.is_file():
            return [Difference(END_STATE_FILE, "(no such file)", "the end state", None)]
        try:
            expected = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            raise Finding(
                Pos(case.display(path), line, column), "case", f"not valid YAML: {exc}", HINT
            ) from None
        diff = DeepDiff(expected, state, view="tree")
        return [
            Difference(
                END_STATE_FILE + "".join(f"/{step}" for step in level.path(output_format="list")),
                shown(level.t1),
                shown(level.t2),
                None,
            )
            for levels in diff.values()
            for level in levels
        ]

    def _mapped(self, hops: list[Hop]) -> tuple[tuple[str, str, frozenset[str]], ...]:
        """The fields each bridge mapping wrote in the trail, for --coverage."""
        found = []
        for hop in hops:
            if hop.sender != "bridge" or hop.part == "fault":
                continue
            codec, model = self.kit.registry.decode(hop.body)
            type_key = self.kit.contracts.contracts[codec.name].type_key
            tree = message_tree(model, self.kit.contracts, type_key)
            found.append((flow_code(hop.flow), hop.part, frozenset(present_fields(tree))))
        return tuple(found)

    # ------------------------------------------------------------------ writing

    def _write(self, case: FlowCase, ran: Ran) -> None:
        trail = case.folder / TRAIL_FOLDER
        for old in golden_files(case.folder):
            old.unlink()
        trail.mkdir(exist_ok=True)
        for number, hop in enumerate(ran.hops, 1):
            (trail / hop.file_name(number)).write_bytes(pretty(hop.body))
        (case.folder / END_STATE_FILE).write_text(
            "# Written by `ccbmdm conformance --update`: what the case's events left behind.\n"
            + yaml.safe_dump(ran.state, sort_keys=False, allow_unicode=True, width=100),
            encoding="utf-8",
        )
