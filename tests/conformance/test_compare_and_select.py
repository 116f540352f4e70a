"""The comparison's rules (decimals by value, normalised ids kept present) and -k selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import BaseModel

from ccbmdm.codegen.ir import ContractSet
from ccbmdm.conformance.compare import Difference, differences, message_tree
from ccbmdm.conformance.suite import BadSelection, Selection, matches


def test_decimals_compare_by_value() -> None:
    rules = {"periods[].quantity": "m.yaml:4:5"}
    same = differences(
        {"periods": [{"quantity": Decimal("1.0")}]},
        {"periods": [{"quantity": Decimal("1.000")}]},
        rules,
    )
    assert same == []
    assert differences(
        {"periods": [{"quantity": Decimal("1.0")}]},
        {"periods": [{"quantity": Decimal("1.001")}]},
        rules,
    ) == [Difference("/periods[1]/quantity", "1.0", "1.001", "m.yaml:4:5")]


class Stamped(BaseModel):
    start: datetime


def test_a_date_time_compares_by_its_offset_too() -> None:
    """The same instant written at another offset is another value: a mapping that writes a
    zone's legal offset is held to it."""
    eastern = timezone(timedelta(hours=-4))
    contracts = ContractSet()

    def tree(start: datetime) -> dict[str, object]:
        return message_tree(Stamped(start=start), contracts, None)

    local = tree(datetime(2019, 6, 14, tzinfo=eastern))
    assert differences(local, tree(datetime(2019, 6, 14, tzinfo=eastern)), {}) == []
    assert differences(local, tree(datetime(2019, 6, 14, 4, tzinfo=UTC)), {"start": "m:1:1"}) == [
        Difference("/start", '"2019-06-14T00:00:00-04:00"', '"2019-06-14T04:00:00+00:00"', "m:1:1")
    ]


def test_a_normalised_id_still_counts_when_absent() -> None:
    header = {"messageId": "a", "correlationId": None, "sentDateTime": "2025-01-01T00:00:00Z"}
    other = {"messageId": "b", "correlationId": None, "sentDateTime": "2030-01-01T00:00:00Z"}
    assert differences({"messageHeader": header}, {"messageHeader": other}, {}) == []
    assert differences(
        {"messageHeader": header}, {"messageHeader": {**other, "messageId": None}}, {}
    ) == [Difference("/messageHeader/messageId", '"<message-id>"', "(absent)", None)]


@pytest.mark.parametrize(
    ("expression", "selected"),
    [
        ("ack", ["person-sync/ack-accepted", "person-sync/ack-rejected"]),
        ("ack and not rejected", ["person-sync/ack-accepted"]),
        ("sp-sync or country", ["person-sync/unknown-country", "sp-sync/abolished"]),
        ("not (ack or sp)", ["person-sync/unknown-country"]),
    ],
)
def test_k_selects_as_pytest_does(expression: str, selected: list[str]) -> None:
    ids = [
        "person-sync/ack-accepted",
        "person-sync/ack-rejected",
        "person-sync/unknown-country",
        "sp-sync/abolished",
    ]
    assert [i for i in ids if matches(expression, i)] == selected


@pytest.mark.parametrize("expression", ["ack and", "(ack", "ack)", "or ack"])
def test_a_k_expression_that_cannot_be_read_is_refused(expression: str) -> None:
    with pytest.raises(BadSelection):
        matches(expression, "person-sync/ack-accepted")


def test_flow_and_case_select_by_code_or_folder() -> None:
    assert Selection(flows=("PERSON_SYNC",))("person-sync/ack-accepted")
    assert not Selection(flows=("sp-sync",))("person-sync/ack-accepted")
    assert Selection(cases=("ack-accepted",))("person-sync/ack-accepted")
    assert Selection(cases=("person-sync/ack-accepted",))("person-sync/ack-accepted")
    assert not Selection(cases=("ack",))("person-sync/ack-accepted")
