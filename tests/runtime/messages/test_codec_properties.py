"""Property-based round trips: any valid instance of any contract survives the codec."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from ccbmdm.codegen.ir import ContractSet
from ccbmdm.codegen.loader import load_package
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.messages.contracts import ContractRegistry
from contract_strategies import ContractStrategies
from support import REPO

CONTRACT_NAMES = sorted(
    f"{path.parent.name}/{path.stem}"
    for path in (REPO / "contracts").glob("*/*.xsd")
    if etree.parse(str(path)).getroot().get("targetNamespace")
)


@pytest.fixture(scope="module")
def strategies(project: Project, contract_set: ContractSet) -> ContractStrategies:
    return ContractStrategies(contract_set, load_package(project))


@pytest.mark.parametrize("contract", CONTRACT_NAMES)
def test_generated_instances_round_trip(
    contract: str, registry: ContractRegistry, strategies: ContractStrategies
) -> None:
    codec = registry[contract]
    system, root = contract.split("/")
    schema = etree.XMLSchema(etree.parse(str(REPO / "contracts" / system / f"{root}.xsd")))

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(message=strategies.message(contract))
    def round_trip(message: object) -> None:
        written = codec.encode(message)
        assert registry.decode_afresh(written, contract)[1] == message
        assert schema.validate(etree.fromstring(written)), schema.error_log

    round_trip()


@given(st.data())
@settings(max_examples=10, deadline=None)
def test_models_reject_values_their_facets_forbid(
    registry: ContractRegistry, data: st.DataObject
) -> None:
    person_type = type(registry["ccb/PersonSyncRequest"].model.model_fields["person"].annotation)
    assert person_type is not None
    header = registry["ccb/PersonSyncRequest"].model.model_fields["message_header"].annotation
    model = header if isinstance(header, type) else None
    assert model is not None
    bad_id = data.draw(
        st.text(min_size=1).filter(lambda s: not (len(s) == 36 and s.count("-") == 4))
    )
    with pytest.raises(ValueError):
        model(
            message_id=bad_id,
            flow="PERSON_SYNC",
            source_system="CCB",
            target_system="MDM",
            sent_date_time="2025-01-01T00:00:00Z",
            schema_version="v1",
        )
