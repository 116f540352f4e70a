"""Mapping cases run against a deployed bridge (``ccbmdm conformance --against URL``).

The kit posts each case's input to the bridge as the system that sends it (with the credential
given for that system), and takes what the bridge delivers as the systems behind it
(receiving.py); the delivered message is judged against the golden by the same code as the
in-process run (Kit.compare: decoding, normalisation, lineage). Each posting gets a new message
id, so a bridge that has seen a case before (its inbox deduplicates by id) maps it again.

- An asynchronous part: the bridge answers 202, maps the message in its worker and delivers it
  to the receiving system; the case waits for that delivery until its time limit. A mapping
  that fails comes back as a framework fault to the sending system, correlated with the
  posting; an expected-fault case passes when its code is the expected one (the fault does not
  name the mapping rule, so the rule is not checked).
- A synchronous (inline) flow: the bridge maps the request and asks the receiving system at
  once. A request case is judged on the request the kit is asked; the kit answers with the input
  of the flow's first response case (one that expects a message, if any), else with fault
  90000/1402. A response case asks with the input of the flow's first request case that
  expects a message, answers with its own input, and is judged on the bridge's answer.

A case that adds code-table rows or cross-references, or sets a clock or a time zone, is
skipped: a deployment has its own, which the kit cannot set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from ccbmdm.codegen.catalogue import Flow, Part
from ccbmdm.codegen.diagnostics import Finding
from ccbmdm.conformance.cases import Case, FlowCase, MappingCase
from ccbmdm.conformance.compare import Difference
from ccbmdm.conformance.limit import DEFAULT_TIME_LIMIT_S, limit_of
from ccbmdm.conformance.outcome import Outcome, pretty
from ccbmdm.conformance.receiving import Delivery, KitSystems, read_fault, rewritten
from ccbmdm.conformance.runner import Kit
from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.config import ConfigError, CredentialSetting
from ccbmdm.runtime.messages.codec import ContractViolation
from ccbmdm.runtime.messages.contracts import UnknownContract
from ccbmdm.runtime.messages.header import new_message_id
from ccbmdm.runtime.messages.mapping import TransformError
from ccbmdm.runtime.messages.xmlsafe import XmlRejected
from ccbmdm.runtime.messaging.http import Credential, HttpTransport
from ccbmdm.runtime.messaging.transport import (
    Response,
    TransportError,
    TransportTimeout,
    TransportUnreachable,
)

CREDENTIAL_FORM = "token_env=VAR, or user=NAME,password_env=VAR"
# How long past a case's limit the kit's own work on it may go on before it is stopped: the
# wait for the bridge ends at the limit, with its own message.
AGAINST_GRACE_S = 1.0


class AgainstError(CcbmdmError):
    """The deployment cannot be checked at all: it does not answer, refuses the credentials, or
    is not a bridge. The message says what to do."""


@dataclass(frozen=True)
class Skipped:
    """A case the kit cannot run against a deployment, and why."""

    case: Case
    reason: str


def credential(spec: str, option: str) -> Credential:
    """A credential given as ``token_env=VAR`` or ``user=NAME,password_env=VAR`` (the forms of
    a runtime configuration's credentials), its secret read from the environment now."""
    try:
        pairs = dict(item.strip().split("=", 1) for item in spec.split(","))
        setting = CredentialSetting.model_validate(pairs)
    except (ValueError, ValidationError):
        raise AgainstError(f"{option} {spec!r}: write {CREDENTIAL_FORM}") from None
    try:
        return setting.resolve(option)
    except ConfigError as exc:
        raise AgainstError(f"{exc}; it holds the secret of {option}") from None


class Against:
    """The cases of a project run one at a time against the bridge at ``url``."""

    def __init__(
        self,
        kit: Kit,
        flows: tuple[Flow, ...],
        url: str,
        credentials: dict[str, Credential],
        systems: KitSystems,
        every_case: list[MappingCase],
        time_limit: float | None = None,
    ) -> None:
        self.kit = kit
        self.flows = {flow.code: flow for flow in flows}
        self.url = url.rstrip("/")
        self.systems = systems
        self.every_case = every_case  # the project's cases, for the pairs of inline flows
        self.time_limit = time_limit
        longest = max((limit_of(c, time_limit) for c in every_case), default=DEFAULT_TIME_LIMIT_S)
        # posted "as" a system: each sending system's credential, all to the bridge's address
        self.transport = HttpTransport(
            {system: self.url for system in credentials}, credentials, longest
        )
        self.sent: set[str] = set()  # the message ids of the cases run so far

    def close(self) -> None:
        self.transport.close()

    def run(self, case: Case) -> Outcome | Skipped:
        """Run one case against the bridge; raise AgainstError when the bridge cannot be
        checked at all."""
        if isinstance(case, FlowCase):
            return Skipped(case, "a flow case runs between the reference simulators, in process")
        reason = self.unsupported(case)
        if reason is not None:
            return Skipped(case, reason)
        limit = limit_of(case, self.time_limit)
        started = time.perf_counter()
        deadline = time.monotonic() + limit
        try:
            transformer_target = self.kit.transformer(case).target
            flow = self.flows[case.flow]
            if flow.mode == "sync":
                outcome = self._inline(case, flow, transformer_target, deadline)
            else:
                outcome = self._delivered(case, flow, transformer_target, deadline, limit)
        except Finding as finding:
            outcome = Outcome(case, 0.0, problems=(str(finding),))
        return replace(outcome, seconds=time.perf_counter() - started)

    def unsupported(self, case: MappingCase) -> str | None:
        """Why the case cannot run against a deployment, or None."""
        for key, set_ in (
            ("tables", bool(case.tables)),
            ("xref", bool(case.xref)),
            ("clock", case.clock is not None),
            ("time_zone", case.time_zone is not None),
        ):
            if set_:
                return f"it sets {key}:, which a deployment has of its own"
        flow = self.flows.get(case.flow)
        sync_response = flow is not None and flow.mode == "sync" and case.part == "response"
        if sync_response and self._asking(case) is None:
            return f"no request case of {case.flow} that expects a message, to ask with"
        return None

    # ------------------------------------------------------------------ asynchronous

    def _delivered(
        self, case: MappingCase, flow: Flow, target: str, deadline: float, limit: float
    ) -> Outcome:
        part = flow.part(case.part)
        body, sent = self._fresh(case, case.input, part.sender)
        earlier = set(self.sent)
        self.sent.add(sent)
        answer = self._post(part.sent_by, flow, part, body)
        if answer.status not in (200, 202):
            return self._judge_fault_answer(case, answer, "answered")

        keeps_id = self._keeps_message_id(case)
        where = (part.received_by, flow.code, part.name)

        def ours(delivery: Delivery) -> bool:
            if delivery.correlation_id == sent and delivery.flow == flow.code:
                return True  # a reply to the posting: a fault
            if (delivery.system, delivery.flow, delivery.part) != where:
                return False
            if keeps_id:  # the mapped message has the posted id: nothing else is this case's
                return delivery.message_id == sent
            # A mapping that gives a new id: the next delivery there, unless it is a late one
            # of an earlier case (a delivery left from an earlier run cannot be told apart).
            return delivery.message_id not in earlier and delivery.correlation_id not in earlier

        delivery = self.systems.deliveries.take(ours, deadline)
        if delivery is None:
            return Outcome(case, 0.0, problems=(self._nothing_delivered(case, part, limit),))
        return self._judge(case, target, delivery.payload, f"delivered to {delivery.system}")

    def _keeps_message_id(self, case: MappingCase) -> bool:
        """Whether the case's mapping (as built here) gives its message the input's id, so that
        the delivery of the posting is known by its id."""
        transformer, result = self.kit.transform(case)
        if isinstance(result, TransformError):
            return True  # only the fault, known by its correlation, is this case's
        source = self.kit.decode(case, case.input, transformer.source)
        return bool(
            result.message_header.message_id  # type: ignore[attr-defined]
            == source.message_header.message_id  # type: ignore[attr-defined]
        )

    def _nothing_delivered(self, case: MappingCase, part: Part, limit: float) -> str:
        where = f"{self.systems.url}/{part.received_by}"
        text = (
            f"{case.id}: the bridge took the input but delivered nothing to the kit within the "
            f"time limit of {limit:g} s; check that the deployment's nodes.{part.received_by}.url "
            f"is {where} (and nodes.{part.sent_by}.url {self.systems.url}/{part.sent_by}) and "
            "that its workers run"
        )
        refused = self.systems.deliveries.refusals
        if refused:
            text += f"; the kit refused {len(refused)} delivery(ies), the last: {refused[-1]}"
        return text

    # ------------------------------------------------------------------ inline

    def _inline(self, case: MappingCase, flow: Flow, target: str, deadline: float) -> Outcome:
        request = flow.part("request")
        asking: MappingCase | None = case
        answering: MappingCase | None = case
        if case.part == "request":
            answering = self._answering(case)
        else:
            asking = self._asking(case)
        assert asking is not None  # unsupported() saw to it
        reply = None
        if answering is not None:
            reply = self.kit.decode(answering, answering.input, flow.part("response").sender)
        body, sent = self._fresh(asking, asking.input, request.sender)
        earlier = set(self.sent)
        self.sent.add(sent)
        self.systems.replying_with(reply)
        answer = self._post(request.sent_by, flow, request, body)
        if case.part == "response":
            return self._judge(case, target, answer.body, f"answered HTTP {answer.status}")

        def asked(delivery: Delivery) -> bool:
            return (delivery.system, delivery.flow, delivery.part) == (
                request.received_by,
                flow.code,
                request.name,
            ) and delivery.message_id not in earlier

        # The kit was asked (or not) before the bridge answered: nothing to wait for.
        delivery = self.systems.deliveries.take(asked, min(deadline, time.monotonic()))
        if delivery is None:
            return self._judge_fault_answer(case, answer, "answered without asking the kit")
        return self._judge(case, target, delivery.payload, f"asked {request.received_by}")

    def _asking(self, case: MappingCase) -> MappingCase | None:
        """The request to ask with for an inline response case: the flow's first request case
        that expects a message."""
        found = (c for c in self.every_case if c.flow == case.flow and c.part == "request")
        return next((c for c in found if c.fault is None), None)

    def _answering(self, case: MappingCase) -> MappingCase | None:
        """The reply to an inline request case: the flow's first response case, one that
        expects a message if there is one."""
        found = [c for c in self.every_case if c.flow == case.flow and c.part == "response"]
        return next((c for c in found if c.fault is None), found[0] if found else None)

    # ------------------------------------------------------------------ judging

    def _judge(self, case: MappingCase, target: str, payload: bytes, how: str) -> Outcome:
        """The case judged on what the bridge gave: a message against the golden, as the
        in-process run judges it, or a fault against the expected one."""
        fault = read_fault(self.kit.registry, payload)
        if fault is not None:
            return self._judge_fault(case, fault, how)
        if case.fault is not None:
            return self._failed(
                case,
                f"expected fault 90000/{case.fault.code} at {case.fault.rule}; the bridge {how} "
                "a message",
            )
        try:
            _, actual = self.kit.registry.decode(payload, target)
        except (XmlRejected, UnknownContract, ContractViolation) as exc:
            return self._failed(case, f"the bridge {how} a message that is not {target}: {exc}")
        transformer = self.kit.transformer(case)
        ran = self.kit.exercised(Outcome(case, 0.0), transformer, actual)
        return replace(
            ran,
            differences=tuple(self.kit.compare(case, transformer, actual)),
            actual=pretty(payload),
        )

    def _judge_fault_answer(self, case: MappingCase, answer: Response, how: str) -> Outcome:
        fault = read_fault(self.kit.registry, answer.body)
        if fault is None:
            text = answer.body.decode("utf-8", "replace")[:300]
            return self._failed(case, f"the bridge {how} HTTP {answer.status}: {text}")
        return self._judge_fault(case, fault, f"{how} HTTP {answer.status} with")

    def _judge_fault(self, case: MappingCase, fault: tuple[int, int, str], how: str) -> Outcome:
        category, number, comments = fault
        if case.fault is None:
            return self._failed(
                case,
                f"expected a message; the bridge {how} fault {category}/{number}: {comments}",
            )
        differences = []
        if (category, number) != (90000, case.fault.code):
            differences.append(
                Difference("fault/code", str(case.fault.code), f"{number} ({comments})", None)
            )
        return Outcome(case, 0.0, differences=tuple(differences))

    @staticmethod
    def _failed(case: MappingCase, problem: str) -> Outcome:
        return Outcome(case, 0.0, problems=(f"{case.id}: {problem}",))

    # ------------------------------------------------------------------ posting

    def _fresh(self, case: MappingCase, path: Path, contract: str) -> tuple[bytes, str]:
        """A case's message under a new message id, and that id."""
        message = self.kit.decode(case, path, contract)
        sent = new_message_id()
        return self.kit.registry[contract].encode(rewritten(message, message_id=sent)), sent

    def _post(self, system: str, flow: Flow, part: Part, body: bytes) -> Response:
        """Post as ``system``; an answer that says the bridge cannot be checked raises."""
        if system not in self.transport.credentials:
            raise AgainstError(
                f"no credential to present as {system.upper()} ({flow.code} {part.name} is "
                f"sent by {system.upper()}): pass --as-{system} {CREDENTIAL_FORM}"
            )
        path = f"/ccbmdm/v1/{flow.kebab}/{part.name}"
        try:
            answer = self.transport.post(system, flow.kebab, part.name, body)
        except TransportUnreachable as exc:
            raise AgainstError(
                f"cannot reach the bridge at {self.url}: {_detail(exc, system)}; is it running, "
                "and is --against its base URL?"
            ) from None
        except TransportTimeout:
            return Response(504, f"no answer to POST {path} in time".encode())
        except TransportError as exc:
            return Response(502, f"POST {path} failed: {_detail(exc, system)}".encode())
        if answer.status == 401:
            raise AgainstError(
                f"the bridge at {self.url} refused the credential presented as "
                f"{system.upper()} (HTTP 401): check --as-{system} against the bridge's "
                f"nodes.bridge.accept.{system}"
            )
        if answer.status == 403:
            raise AgainstError(
                f"the bridge at {self.url} does not take {flow.code} {part.name} with the "
                f"credential of --as-{system} (HTTP 403: {_fault_or_text(self.kit, answer)}); "
                f"is it the credential the bridge accepts from {system.upper()}?"
            )
        if answer.status == 404:
            raise AgainstError(
                f"{self.url} is not a ccbmdm bridge: POST {path} answered HTTP 404; give the "
                "bridge's base URL to --against"
            )
        return answer


def _detail(exc: TransportError, system: str) -> str:
    return str(exc).removeprefix(f"cannot reach {system}: ")


def _fault_or_text(kit: Kit, answer: Response) -> str:
    fault = read_fault(kit.registry, answer.body)
    if fault is None:
        return answer.body.decode("utf-8", "replace")[:200]
    return f"fault {fault[0]}/{fault[1]}: {fault[2]}"
