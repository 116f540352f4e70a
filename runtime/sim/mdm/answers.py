"""The reference MDM's answers to the synchronous, read-only flows: high-low boundaries (14),
get usage (15), usage adjustment (17) and the SA activation bill cycle (19) (docs/flows.md §14, §15,
§17, §19; PD-C07). Nothing is written: each answer reads MDM's master data, measurements and
usage transactions as they are now.

A fault about the whole request travels in the flow's reply contract with ``hasError`` true
(HTTP 200), as docs/flows.md §0.3 says of flows with a reply contract; only a request MDM will not
read (an unknown ``mode`` or usage request mode, PD-F34) or a defect is a common ``Fault``.

Decisions:

* High-low: the register is evaluated under the usage group of the US linked to the
  configuration's SP at the read date, with that SP's zone and type; an MC that is not a
  scalar MC of the configuration, or that cannot be evaluated, is left out and reported with
  its register id as parameter (PD-F33), 1102 for one MDM does not know, 1301 otherwise.
* Get usage: an item is calculated like an online request, with its interval window when it
  gives one, else its scalar window, under the usage group it names and without the
  summary-billing skip; nothing is kept (PD-F16). The modes MDM knows are ``MODES``.
* Usage adjustment: per SA and rate, every Sent (or Subsequently Corrected), non-superseded UT
  under that usage group overlapping the twelve months before ``referenceDateTime`` (in the
  reference's own offset; from 28 February when the reference is a 29 February), recalculated
  over its sent period from the data MDM holds now; an SQ that differs from what was sent is an
  adjustment, ``ADDED`` when it counts more values than were sent, else ``EDITED`` (PD-F18,
  PD-F35). A rate with no such UT, or an unknown SA, is reported in ``exceptionInfo`` and the
  others are answered.
* SA activation: each SP's measurement cycle gives its default bill cycle
  (``Measurements.default_bill_cycle``); the reply names the first SP's measurement cycle and
  takes effect on the activation date; an unknown SP is 1102 [D1-SP, id], different defaults
  1305 (PD-F20).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ccbmdm.codegen.catalogue import Flow
from ccbmdm.runtime.messages.header import message_header
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.transport import Response
from ccbmdm.runtime.sim.determinants.engine import Determinants, DeterminantsFault, calculate
from ccbmdm.runtime.sim.determinants.high_low import high_low_boundaries
from ccbmdm.runtime.sim.determinants.measurements import FAULT_CATEGORY, instant
from ccbmdm.runtime.sim.determinants.usage_groups import SqKey, UsageGroup
from ccbmdm.runtime.sim.mdm.records import production_id
from ccbmdm.runtime.sim.mdm.usage import (
    TABLE,
    MdmUsage,
    Unanswerable,
    decode_determinants,
    fault_result,
    period_body,
)
from ccbmdm.runtime.store import StoreUnavailable, Transaction

log = logging.getLogger("ccbmdm.sim.mdm")

MODES = frozenset({"SIMULATE"})  # get usage's ``mode``, which has no code table (PD-F34)
USAGE_REQUEST_MODES = frozenset(
    {"RATE-COMPARISON", "RATE-CHECK", "SELF-SERVICE-RATE-COMPARISON", "BILL-ESTIMATE"}
)
CODE_TABLE_MISS, UNRESOLVED_KEY, INSUFFICIENT_DATA = 1101, 1102, 1301
DIFFERENT_BILL_CYCLES, NOT_PROCESSED = 1305, 1402

Reply = dict[str, Any]


def _info(number: int, text: str, *parameters: str) -> dict[str, Any]:
    return {
        "message_category": FAULT_CATEGORY,
        "message_number": number,
        "message_parameters": [p[:254] for p in parameters],
        "comments": text[:254],
    }


def _result(exceptions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"has_error": bool(exceptions), "exception_info": exceptions}


class MdmAnswers:
    """Answers flows 14, 15, 17 and 19 from what the usage side reads."""

    def __init__(self, usage: MdmUsage) -> None:
        self.usage = usage
        self._answers: dict[str, tuple[str, Callable[[Transaction, Any], Reply | Response]]] = {
            "HIGH_LOW": ("mdm/HighLowBoundariesResponse", self.high_low),
            "GET_USAGE": ("mdm/CalculateUsageResponse", self.get_usage),
            "USAGE_ADJUSTMENT": ("mdm/UsageAdjustmentRetrievalResponse", self.usage_adjustment),
            "SA_ACTIVATION_BILL_CYCLE": (
                "mdm/SaActivationBillCycleResponse",
                self.sa_activation_bill_cycle,
            ),
        }

    def answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        fault = self.usage.node.receiver.fault
        correlation = str(request.message_header.message_id)  # type: ignore[attr-defined]
        known = self._answers.get(flow.code)
        if known is None:
            return fault(correlation, flow.code, 1002, f"MDM does not answer {flow.code}", 400)
        contract, handler = known
        try:
            with self.usage.store.transaction() as tx:
                reply = handler(tx, request)
        except StoreUnavailable as exc:  # no defect: the caller asks again (a 5xx is retried)
            log.warning("%s could not be answered: %s", flow.code, exc)
            text = "not processed: the store is unavailable, try again"
            # said once, above, with the store's (redacted) address the fault leaves out
            receiver = self.usage.node.receiver
            return Response(
                503, receiver.fault_message(correlation, flow.code, NOT_PROCESSED, text)[1]
            )
        except Exception as exc:  # a defect answers the caller instead of hanging it
            log.exception("%s could not be answered", flow.code)
            return fault(correlation, flow.code, NOT_PROCESSED, f"not processed: {exc}", 500)
        if isinstance(reply, Response):
            return reply
        codec = self.usage.contracts[contract]
        body = {
            "message_header": message_header(flow.code, "MDM", "CCB", correlation_id=correlation),
            **reply,
        }
        return Response(200, codec.encode(codec.model.model_validate(body)))

    # -- flow 14 ---------------------------------------------------------------------------

    def high_low(self, tx: Transaction, request: Any) -> Reply:
        records, measurements = self.usage.records, self.usage.measurements
        key = str(request.device_configuration_external_id)
        configuration_id = production_id(tx, "CCB", "D1-DVCCFG", (key,))
        configuration = (
            None if configuration_id is None else records.device_configuration(tx, configuration_id)
        )
        if configuration is None:
            text = f"MDM has no device configuration for meter configuration {key}"
            return {"result": _result([_info(UNRESOLVED_KEY, text, "D1-DVCCFG", key)])}
        at = instant(request.evaluation_date_time)
        event = tx.fetch_one(
            """SELECT sp_id FROM mdm_install_event
               WHERE device_configuration_id = :configuration AND status = 'ACTIVE'
                 AND installation_date_time <= :at ORDER BY installation_date_time DESC LIMIT 1""",
            {"configuration": configuration.production_id, "at": tx.instant(at)},
        )
        sp = None if event is None else records.service_point(tx, str(event["sp_id"]))
        group = None if sp is None else self._group_at(tx, sp.production_id, at)
        exceptions, answered = [], []
        by_register = {
            mc.register_id: mc for mc in configuration.measuring_components if mc.status == "ACTIVE"
        }
        for item in request.measuring_components:
            register_id = str(item.mc_external_id)
            mc = by_register.get(register_id)
            if mc is None:
                text = f"register {register_id} is not an MC of meter configuration {key}"
                exceptions.append(_info(UNRESOLVED_KEY, text, register_id))
                continue
            if mc.interval or sp is None:
                reason = "is an interval MC" if mc.interval else "is not installed at an SP"
                text = f"register {register_id} {reason}: no high-low boundaries"
                exceptions.append(_info(INSUFFICIENT_DATA, text, register_id))
                continue
            register = measurements.register(tx, mc)
            try:
                found = high_low_boundaries(register, at, sp.time_zone, group, sp.sp_type)
            except DeterminantsFault as fault:
                exceptions.append(_info(fault.number, fault.text, register_id))
                continue
            answered.append(
                {
                    "mc_external_id": register_id,
                    "estimated_reading": found.estimated_reading,
                    "low_reading": found.low_reading,
                    "high_reading": found.high_reading,
                    "low_consumption": found.low_consumption,
                    "high_consumption": found.high_consumption,
                    "basis_reading": found.basis_reading,
                    "basis_read_date_time": found.basis_read_date_time,
                }
            )
        return {"result": _result(exceptions), "measuring_components": answered}

    def _group_at(self, tx: Transaction, sp_id: str, at: datetime) -> UsageGroup | None:
        """The usage group of the US linked to the SP at ``at``; None: the defaults."""
        rows = tx.fetch(
            """SELECT g.usage_group, g.start_date_time, g.end_date_time,
                      l.start_date_time AS link_start, l.end_date_time AS link_end
               FROM mdm_us_service_point l JOIN mdm_us_usage_group g ON g.us_id = l.us_id
               WHERE l.sp_id = :sp ORDER BY g.start_date_time""",
            {"sp": sp_id},
        )
        records = self.usage.records
        for row in rows:
            spans = [
                (records.instant(row["link_start"]), records.instant(row["link_end"])),
                (records.instant(row["start_date_time"]), records.instant(row["end_date_time"])),
            ]
            if all(s is not None and s <= at and (e is None or at < e) for s, e in spans):
                try:
                    return self.usage.usage_group(str(row["usage_group"]))
                except Unanswerable:  # a group MDM does not ship: the defaults
                    return None
        return None

    # -- flow 15 ---------------------------------------------------------------------------

    def get_usage(self, tx: Transaction, request: Any) -> Reply | Response:
        fault = self.usage.node.receiver.fault
        correlation = str(request.message_header.message_id)
        for name, value, known in (
            ("mode", str(request.mode), MODES),
            ("usageRequestMode", str(request.usage_request_mode), USAGE_REQUEST_MODES),
        ):
            if value not in known:
                text = f"{name} {value} is not one MDM knows ({', '.join(sorted(known))})"
                return fault(correlation, "GET_USAGE", CODE_TABLE_MISS, text, 400, (name, value))
        responses = []
        for item in request.requests_list:
            entry: dict[str, Any] = {
                "external_id": item.external_id,
                "usage_group_external_id": item.usage_group_external_id,
            }
            window = item.interval_mc or item.scalar_mc
            try:
                if window is None:
                    raise Unanswerable(1003, "the item gives no period", "intervalMC")
                build = self.usage.calculation_for(
                    tx,
                    str(item.external_id),
                    window.start_date_time,
                    window.end_date_time_from,
                    window.end_date_time_to,
                    bill_condition=item.bill_condition,
                    online=True,
                    usage_group=str(item.usage_group_external_id),
                    summary_billing=False,
                )
                result = calculate(build.request, build.installations, build.group)
                assert isinstance(result, Determinants)
            except (DeterminantsFault, Unanswerable) as problem:
                entry["result"] = fault_result(problem)
            else:
                entry["result"] = {"has_error": False}
                entry["periods"] = [period_body(p) for p in result.periods if p.service_quantities]
            responses.append(entry)
        return {"responses_list": responses}

    # -- flow 17 ---------------------------------------------------------------------------

    def usage_adjustment(self, tx: Transaction, request: Any) -> Reply:
        reference = request.reference_date_time
        since = year_before(reference)
        exceptions: list[dict[str, Any]] = []
        results = []
        for subscription in request.us_list:
            sa_id = str(subscription.external_id)
            if production_id(tx, "CCB", "D1-US", (sa_id,)) is None:
                text = f"MDM has no US for SA {sa_id}"
                exceptions.append(_info(UNRESOLVED_KEY, text, "D1-US", sa_id))
                continue
            for rate in subscription.rates_list:
                rows = tx.fetch(
                    f"""SELECT * FROM {TABLE} WHERE us_external_id = :sa
                          AND state IN ('SENT','SUBSEQUENT_CORRECTION') AND superseded = FALSE
                          AND usage_group = :rate AND period_start < :high AND period_end > :low
                        ORDER BY period_start, id""",
                    {
                        "sa": sa_id,
                        "rate": str(rate.rate_schedule),
                        "low": int(instant(since).timestamp()),
                        "high": int(instant(reference).timestamp()),
                    },
                )
                if not rows:
                    text = f"SA {sa_id} has no usage under {rate.rate_schedule} in the window"
                    exceptions.append(
                        _info(INSUFFICIENT_DATA, text, sa_id, str(rate.rate_schedule))
                    )
                    continue
                periods, adjustments = [], []
                for row in rows:
                    sent = decode_determinants(str(row["determinants"]))
                    now = self.usage.recalculate(tx, row)
                    if isinstance(now, DeterminantsFault):
                        exceptions.append(_info(now.number, now.text, str(row["ut_id"])))
                        now = sent
                    periods += [period_body(p) for p in now.periods if p.service_quantities]
                    adjustments += _adjustments(str(row["ut_id"]), sent, now)
                results.append(
                    {
                        "external_id": sa_id,
                        "rate_schedule": rate.rate_schedule,
                        "periods": periods,
                        "adjustments": adjustments,
                    }
                )
        reply: Reply = {"result": _result(exceptions)}
        if results:
            reply["output_list"] = {"results": results}
        return reply

    # -- flow 19 ---------------------------------------------------------------------------

    def sa_activation_bill_cycle(self, tx: Transaction, request: Any) -> Reply:
        records, measurements = self.usage.records, self.usage.measurements
        found: list[tuple[str, str, str]] = []  # SP, measurement cycle, default bill cycle
        for sp_key in request.sp_external_ids:
            sp_id = production_id(tx, "CCB", "D1-SP", (str(sp_key),))
            sp = None if sp_id is None else records.service_point(tx, sp_id)
            if sp is None:
                text = f"MDM has no SP {sp_key}"
                return {"result": _result([_info(UNRESOLVED_KEY, text, "D1-SP", str(sp_key))])}
            bill_cycle = measurements.default_bill_cycle(tx, sp.measurement_cycle)
            if bill_cycle is None:
                text = f"measurement cycle {sp.measurement_cycle} names no default bill cycle"
                return {
                    "result": _result(
                        [_info(UNRESOLVED_KEY, text, "D1-MEASRCYC", sp.measurement_cycle)]
                    )
                }
            found.append((str(sp_key), sp.measurement_cycle, bill_cycle))
        if len({bill_cycle for *_, bill_cycle in found}) > 1:
            sps = " and ".join(sp for sp, *_ in found)
            cycles = " and ".join(dict.fromkeys(cycle for _, cycle, _ in found))
            bills = " and ".join(dict.fromkeys(bill for *_, bill in found))
            text = (
                f"SPs {sps} are in measurement cycles {cycles}, whose default bill cycles "
                f"{bills} differ"
            )
            return {"result": _result([_info(DIFFERENT_BILL_CYCLES, text)])}
        _, measurement_cycle, bill_cycle = found[0]
        return {
            "bill_cycle": bill_cycle,
            "measurement_cycle": measurement_cycle,
            "effective_date": request.activation_date,
            "result": _result([]),
        }


def year_before(at: datetime) -> datetime:
    """The same wall time twelve months earlier; 29 February's is 28 February (a year with no
    29 February has no such day)."""
    try:
        return at.replace(year=at.year - 1)
    except ValueError:
        return at.replace(year=at.year - 1, day=28)


def _adjustments(ut_id: str, sent: Determinants, now: Determinants) -> list[dict[str, Any]]:
    """Each SQ whose quantity or counts changed since it was sent (PD-F18)."""

    def totals(d: Determinants) -> dict[SqKey, tuple[Any, int, int]]:
        found: dict[SqKey, tuple[Any, int, int]] = {}
        for period in d.periods:
            for sq in period.service_quantities:
                quantity, values, edited = found.get(sq.key, (0, 0, 0))
                found[sq.key] = (
                    quantity + sq.quantity,
                    values + sq.value_count,
                    edited + sq.edited_count,
                )
        return found

    before, after = totals(sent), totals(now)
    adjustments = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key, (0, 0, 0)), after.get(key, (0, 0, 0))
        if old == new:
            continue
        adjustments.append(
            {
                "ut_id": ut_id,
                "uom": key.uom,
                "tou": key.tou or None,
                "sqi": key.sqi or None,
                "quality": "ADDED" if new[1] > old[1] else "EDITED",
                "delta_quantity": new[0] - old[0],
            }
        )
    return adjustments
