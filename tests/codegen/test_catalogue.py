"""The flow catalogue loads into typed flows and names only contracts that exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccbmdm.codegen.catalogue import CatalogueError, load_catalogue
from ccbmdm.runtime.messages.contracts import ContractRegistry
from support import REPO

CATALOGUE = REPO / "contracts" / "flows.yaml"


def test_reference_catalogue(registry: ContractRegistry) -> None:
    flows = load_catalogue(CATALOGUE, registry.by_name)
    assert [f.number for f in flows] == list(range(1, 21))
    sa = next(f for f in flows if f.code == "SA_SYNC")
    assert sa.kebab == "sa-sync"
    assert sa.part("request").sender == "ccb/ServiceAgreementSyncRequest"
    assert sa.part("ack").receiver == "ccb/SyncRequestUpdate"
    # who sends each part and who receives it: the initiator its request, the other its reply
    assert (sa.part("request").sent_by, sa.part("request").received_by) == ("ccb", "mdm")
    assert (sa.part("ack").sent_by, sa.part("ack").received_by) == ("mdm", "ccb")
    assert {f.code for f in flows if f.mode == "sync"} == {
        "HIGH_LOW",
        "GET_USAGE",
        "USAGE_ADJUSTMENT",
        "SA_ACTIVATION_BILL_CYCLE",
    }
    change = next(f for f in flows if f.number == 20)
    assert (change.initiator, change.part("notification").sender) == (
        "mdm",
        "mdm/BillCycleChangeSyncRequest",
    )
    assert (change.part("ack").sent_by, change.part("ack").received_by) == ("ccb", "mdm")


def test_problems_name_the_flow(tmp_path: Path, registry: ContractRegistry) -> None:
    broken = tmp_path / "flows.yaml"
    broken.write_text(
        CATALOGUE.read_text()
        .replace("ccb/PersonSyncRequest", "ccb/PersonSyncRequst")
        .replace("    mode: sync\n", "    mode: blocking\n", 1)
        .replace(
            "ack: {sender: mdm/SyncAcknowledgement", "ack: {sender: ccb/SyncAcknowledgement", 1
        )
    )
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(broken, registry.by_name)
    assert [str(finding) for finding in caught.value.findings] == [
        f"{broken}:19:25: error[catalogue-contract]: flow PERSON_SYNC: part request sender "
        "'ccb/PersonSyncRequst' is not a contract (did you mean ccb/PersonSyncRequest?)",
        f"{broken}:20:21: error[catalogue-contract]: flow PERSON_SYNC: part ack is sent by mdm to "
        "ccb, so its sender must be a contract of mdm, not 'ccb/SyncAcknowledgement'",
        f"{broken}:181:11: error[catalogue]: flow HIGH_LOW: `mode` is 'blocking'; expected one of "
        "sync, async",
    ]


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "  - number: 1\n",
            "  - number: [1]\n",
            "flow PERSON_SYNC: `number` must be a whole number",
        ),
        ("    code: PERSON_SYNC\n", "    code: [PERSON_SYNC]\n", "`code` must be a flow code"),
        (
            "ack: {sender: mdm/SyncAcknowledgement",
            "ack: {sender: [mdm/SyncAcknowledgement]",
            "flow PERSON_SYNC: part ack needs exactly `sender` and `receiver`, each a contract",
        ),
        ("    mode: sync\n", "    mode: [sync]\n", "flow HIGH_LOW: `mode` is ['sync']"),
        (
            "    code: SP_SYNC\n",
            "    code: PERSON_SYNC\n",
            "flow PERSON_SYNC: the flow code is listed twice",
        ),
    ],
)
def test_values_of_the_wrong_shape_are_problems_at_their_flow(
    tmp_path: Path, registry: ContractRegistry, old: str, new: str, problem: str
) -> None:
    """Found by the fuzz test of `ccbmdm check`: a list where a name goes was not caught."""
    broken = tmp_path / "flows.yaml"
    text = CATALOGUE.read_text()
    assert old in text
    broken.write_text(text.replace(old, new, 1))
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(broken, registry.by_name, "flows.yaml")
    (found,) = [str(finding) for finding in caught.value.findings]
    assert found.startswith("flows.yaml:") and problem in found, found
