"""The reference CCB's synchronous calls to MDM, answered inline through the bridge (docs/flows.md
PD-C07): high-low boundaries for a read (14), usage under another rate (15), the usage
adjustments of a self-service customer (17) and the bill cycle at SA activation (19).

A call returns MDM's reply in CCB's contract; a fault, a refused connection or a timeout raises
``CallFailed`` with the fault's numbers and text, which is what CCB shows its user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from ccbmdm.runtime.header import message_header
from ccbmdm.runtime.model import ContractModel
from ccbmdm.runtime.node import Node
from ccbmdm.runtime.transport import Posting, TransportError


class CallFailed(Exception):
    """MDM could not answer: its fault, or why it could not be reached."""


class CcbCalls:
    """CCB's side of the read-only flows."""

    def __init__(self, node: Node, partner: str = "bridge") -> None:
        self.node = node
        self.partner = partner

    def high_low(
        self, meter_config_id: str, read_date_time: datetime, register_ids: Sequence[str]
    ) -> ContractModel:
        """Flow 14: the plausible range of each register's read."""
        return self.call(
            "HIGH_LOW",
            "ccb/MeterReadHighLowRequest",
            {
                "meter_config_id": meter_config_id,
                "read_date_time": read_date_time,
                "registers": [{"register_id": r} for r in register_ids],
            },
        )

    def rate_check(
        self, sa_id: str, rate_schedule: str, start: datetime, end: datetime
    ) -> ContractModel:
        """Flow 15: the SA's usage over ``[start, end)`` under ``rate_schedule``."""
        processing = {"start_date_time": start, "end_date_time_from": end, "end_date_time_to": end}
        return self.call(
            "GET_USAGE",
            "ccb/GetUsageRequest",
            {
                "request_details": {
                    "usage_calculation_cal_type": "RATECHK",
                    "mode": "SIMULATE",
                    "request": [
                        {
                            "sa_id": sa_id,
                            "rate_schedule": rate_schedule,
                            "rate_schedule_seq": 1,
                            "bill_condition": "D2IM",
                            "interval_processing": processing,
                        }
                    ],
                    "language": "ENG",
                }
            },
        )

    def usage_adjustments(
        self,
        account_id: str,
        web_user: str,
        reference: datetime,
        rates: Mapping[str, Sequence[str]],
    ) -> ContractModel:
        """Flow 17: per SA and rate, the usage MDM holds now for the last twelve months."""
        return self.call(
            "USAGE_ADJUSTMENT",
            "ccb/UsageAdjustmentRequest",
            {
                "head": {
                    "action": "READ",
                    "key1": {"name": "ACCT_ID", "value": account_id},
                    "web_user_id": web_user,
                },
                "reference_date_time": reference,
                "service_agreements": [
                    {"sa_id": sa_id, "rates": [{"rate_schedule": rate} for rate in schedules]}
                    for sa_id, schedules in rates.items()
                ],
            },
        )

    def activation_bill_cycle(
        self, sa_id: str, account_id: str, sp_ids: Sequence[str], activation: date
    ) -> ContractModel:
        """Flow 19: the bill cycle MDM's measurement cycles give an SA at activation."""
        return self.call(
            "SA_ACTIVATION_BILL_CYCLE",
            "ccb/SaActivationBillCycleRequest",
            {
                "sa_id": sa_id,
                "account_id": account_id,
                "sp_ids": list(sp_ids),
                "activation_date": activation,
            },
        )

    def call(self, flow: str, contract: str, body: Mapping[str, Any]) -> ContractModel:
        """Post a request to the bridge and wait for the reply; ``CallFailed`` otherwise."""
        contracts = self.node.contracts
        codec = contracts[contract]
        request = codec.model.model_validate(
            {"message_header": message_header(flow, "CCB", "MDM"), **body}
        )
        kebab = flow.lower().replace("_", "-")
        (answer,) = self.node.transport.post_many(
            self.node.name, self.partner, [Posting(kebab, "request", codec.encode(request))]
        )
        if isinstance(answer, TransportError):
            raise CallFailed(f"{flow}: MDM could not be reached: {answer}")
        codec, reply = contracts.decode(answer.body)
        if codec.name == "common/Fault" or answer.status != 200:
            raise CallFailed(f"{flow}: HTTP {answer.status}: {_faults(reply)}")
        return reply


def _faults(reply: ContractModel) -> str:
    result = getattr(reply, "result", None)
    if result is None:
        return "no result"
    return "; ".join(
        f"{i.message_category}/{i.message_number} {i.comments or ''}".strip()
        for i in result.exception_info
    )
