"""Each of the 20 flows end to end, through the runtime between the two reference simulators:
once with every node in one process and once as three HTTP services on loopback. Every test
reads the business outcome in the receiving simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import pytest

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import (
    REFERENCE_SYSTEMS,
    CredentialSetting,
    DeliverySetting,
    NodeSetting,
    RuntimeConfig,
    reference_config,
)
from ccbmdm.runtime.sim.ccb.calls import CcbCalls
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator
from ccbmdm.runtime.sim.synthetic import CYCLES
from ccbmdm.runtime.store import open_store
from flows_world import (
    MOVED_TO,
    OPTION,
    OPTION_EVENT,
    RENAMED,
    SCALAR_CONFIG,
    SCALAR_HISTORY,
    SCALAR_METER,
    SCALAR_READ,
    SCALAR_REGISTER,
    SCALAR_SP,
    Scenario,
    Systems,
    run_scenario,
    settle,
)
from loopback import TOKENS, Loopback, three_services

FAST = DeliverySetting(lease_s=5, backoff_base_s=0.05, backoff_factor=2, poll_interval_s=0.01)


def in_process(project: Project, folder: Path) -> Iterator[Scenario]:
    """Every node in this process, on one store, moved on by a worker while the test waits."""
    runtime = Runtime(reference_config(str(folder / "runtime.db"), FAST), project)
    ccb, mdm = runtime.systems["ccb"], runtime.systems["mdm"]
    assert isinstance(ccb, CcbSimulator) and isinstance(mdm, MdmSimulator)
    worker = runtime.worker(batch=200)
    stores = [runtime.store]
    systems = Systems(
        ccb, mdm, CcbCalls(runtime.nodes["ccb"]), stores, lambda: settle(stores, worker.drain)
    )
    try:
        yield run_scenario(systems)
    finally:
        runtime.close()


def over_http(project: Project, folder: Path) -> Iterator[Scenario]:
    """Three services on loopback doing the work; the test acts on each simulator's store as
    its users would (a change in CCB, a correction in MDM) and calls through the bridge."""
    with pytest.MonkeyPatch.context() as env, three_services(folder) as services:
        for name, value in TOKENS.items():
            env.setenv(name, value)
        ccb_side = Runtime(beside(services, "ccb"), project)
        mdm_side = Runtime(beside(services, "mdm"), project)
        ccb, mdm = ccb_side.systems["ccb"], mdm_side.systems["mdm"]
        assert isinstance(ccb, CcbSimulator) and isinstance(mdm, MdmSimulator)
        stores = [ccb_side.store, mdm_side.store, open_store(str(services.store["bridge"]))]
        systems = Systems(ccb, mdm, CcbCalls(ccb_side.nodes["ccb"]), stores, lambda: settle(stores))
        try:
            yield run_scenario(systems)
        finally:
            ccb_side.close()
            mdm_side.close()
            stores[-1].close()


def beside(services: Loopback, name: Literal["ccb", "mdm"]) -> RuntimeConfig:
    """The simulator service's own configuration, without its endpoint or worker: the test's
    view of that system (its store, and the bridge over HTTP for its calls)."""
    other: Literal["ccb", "mdm"] = "mdm" if name == "ccb" else "ccb"
    token = CredentialSetting(token_env=f"CCBMDM_{name.upper()}_TOKEN")
    return RuntimeConfig(
        store=str(services.store[name]),
        nodes={
            name: NodeSetting(system=REFERENCE_SYSTEMS[name]),
            "bridge": NodeSetting(url=services.url["bridge"], credential=token),
            other: NodeSetting(url=services.url["bridge"], credential=token),
        },
    )


@pytest.fixture(scope="module", params=["in-process", "http"])
def scenario(
    request: pytest.FixtureRequest, project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    folder = tmp_path_factory.mktemp(request.param)
    run = in_process if request.param == "in-process" else over_http
    yield from run(project, folder)


def test_nothing_ends_in_error(scenario: Scenario) -> None:
    assert scenario.systems.errors() == []


# -- master data (flows 1-10, 18) -------------------------------------------------------------


def test_person_sync_contacts_hold_what_ccb_has(scenario: Scenario) -> None:
    """PERSON_SYNC: a contact per person, the later change of name applied over the first."""
    with scenario.ccb.store.transaction() as tx:
        people = {
            c.person_id: scenario.ccb.record(tx, "PERSON", (c.person_id,))
            for c in scenario.customers
        }
    with scenario.mdm.store.transaction() as tx:
        contacts = {key: scenario.mdm.contact(tx, key) for key in people}
    assert people[scenario.billed.person_id]["entity_name"] == RENAMED  # type: ignore[index]
    for key, person in people.items():
        contact = contacts[key]
        assert person is not None and contact is not None, key
        assert (contact.name, contact.phone, contact.language) == (
            person["entity_name"],
            person["phone_number"],
            person["language"],
        )
        assert contact.address is not None and contact.address.city == person["address"]["city"]


def test_sp_sync_service_points_keep_cycle_route_and_zone(scenario: Scenario) -> None:
    with scenario.ccb.store.transaction() as tx:
        sps = {
            sp_id: scenario.ccb.record(tx, "SP", (sp_id,))
            for sp_id in [c.sp_id for c in scenario.customers] + [SCALAR_SP]
        }
    with scenario.mdm.store.transaction() as tx:
        held = {sp_id: scenario.mdm.service_point(tx, sp_id) for sp_id in sps}
    for sp_id, record in sps.items():
        sp = held[sp_id]
        assert record is not None and sp is not None, sp_id
        assert (sp.route, sp.route_sequence, sp.time_zone, sp.externally_managed) == (
            record["route"],
            record["route_sequence"],
            record["time_zone"],
            record["externally_managed"],
        )
    assert held[scenario.online_customer.sp_id].externally_managed  # type: ignore[union-attr]


def test_sa_sync_usage_subscriptions_link_contact_sp_and_usage_group(scenario: Scenario) -> None:
    with scenario.mdm.store.transaction() as tx:
        for customer in scenario.customers:
            us = scenario.mdm.usage_subscription(tx, customer.sa_id)
            contact = scenario.mdm.contact(tx, customer.person_id)
            sp = scenario.mdm.service_point(tx, customer.sp_id)
            assert us is not None and contact is not None and sp is not None
            assert (us.external_account_id, us.main_contact_id) == (
                customer.account_id,
                contact.production_id,
            )
            assert [link.sp_id for link in us.service_points] == [sp.production_id]
            assert [group.usage_group for group in us.usage_groups] == [
                "COM-DEM" if customer.commercial else "RES-TOU"
            ]


def test_sa_rel_sync_the_service_provider_joins_the_usage_subscription(scenario: Scenario) -> None:
    with scenario.mdm.store.transaction() as tx:
        us = scenario.mdm.usage_subscription(tx, scenario.billed.sa_id)
    assert us is not None
    (participant,) = us.market_participants
    assert (participant.service_provider, participant.status) == ("GREENMTN-ESP", "ACTIVE")
    assert participant.us_id == us.production_id


def test_dop_sync_the_contract_option_links_the_usage_subscription(scenario: Scenario) -> None:
    with scenario.mdm.store.transaction() as tx:
        us = scenario.mdm.usage_subscription(tx, scenario.billed.sa_id)
        option = scenario.mdm.dynamic_option(tx, OPTION)
    assert us is not None and option is not None
    assert option.dynamic_option_type == "CPP-SUMMER-DOP"
    assert [link.us_id for link in option.usage_subscriptions] == [us.production_id]
    assert option.values == (("CPPTIER", "TIER2"),)


def test_dop_event_sync_the_event_belongs_to_its_option(scenario: Scenario) -> None:
    with scenario.mdm.store.transaction() as tx:
        option = scenario.mdm.dynamic_option(tx, OPTION)
        event = scenario.mdm.dynamic_option_event(tx, OPTION_EVENT)
    assert option is not None and event is not None
    assert event.option_id == option.production_id
    assert event.period.end is not None and event.period.end - event.period.start == timedelta(
        hours=5
    )
    assert event.values == (("CPPREASN", "HEAT-WAVE"),)


def test_meter_sync_devices_carry_the_meters_badges(scenario: Scenario) -> None:
    meters = [c.meter_id for c in scenario.customers] + [SCALAR_METER]
    with scenario.ccb.store.transaction() as tx:
        badges = {m: scenario.ccb.record(tx, "METER", (m,))["badge_number"] for m in meters}  # type: ignore[index]
    with scenario.mdm.store.transaction() as tx:
        devices = {m: scenario.mdm.device(tx, m) for m in meters}
    assert {m: d.badge_number if d else None for m, d in devices.items()} == badges
    assert {d.status for d in devices.values() if d} == {"ACTIVE"}


def test_meter_config_sync_one_measuring_component_per_register(scenario: Scenario) -> None:
    with scenario.mdm.store.transaction() as tx:
        for customer in scenario.customers:
            device = scenario.mdm.device(tx, customer.meter_id)
            configuration = scenario.mdm.device_configuration(tx, customer.meter_config_id)
            assert device is not None and configuration is not None
            assert configuration.device_id == device.production_id
            assert [
                (mc.register_id, mc.interval, mc.seconds_per_interval, mc.uom)
                for mc in configuration.measuring_components
            ] == [(customer.register_id, True, 900, "KWH")]
        scalar = scenario.mdm.device_configuration(tx, SCALAR_CONFIG)
    assert scalar is not None
    assert [
        (mc.register_id, mc.interval, mc.reading_kind, mc.number_of_dials)
        for mc in scalar.measuring_components
    ] == [(SCALAR_REGISTER, False, "CUMULATIVE", 6)]


def test_sp_meter_history_sync_installs_the_configuration_at_the_sp(scenario: Scenario) -> None:
    with scenario.mdm.store.transaction() as tx:
        site = scenario.mdm.service_point(tx, SCALAR_SP)
        configuration = scenario.mdm.device_configuration(tx, SCALAR_CONFIG)
        event = scenario.mdm.install_event(tx, SCALAR_HISTORY)
    assert site is not None and configuration is not None and event is not None
    assert (event.sp_id, event.device_configuration_id) == (
        site.production_id,
        configuration.production_id,
    )
    assert event.period.end is None  # still installed
    assert [(r.reason, r.reading) for r in event.reads] == [("INSTALLATION", Decimal("1000"))]


def test_scalar_read_sync_the_read_is_an_imd_of_its_register(scenario: Scenario) -> None:
    with scenario.mdm.store.transaction() as tx:
        configuration = scenario.mdm.device_configuration(tx, SCALAR_CONFIG)
        (imd,) = scenario.mdm.meter_read(tx, SCALAR_READ)
    assert configuration is not None
    (mc,) = configuration.measuring_components
    assert (imd.mc_id, imd.reading, imd.reason, imd.status) == (
        mc.production_id,
        Decimal("5210"),
        "METER_READ",
        "ACTIVE",
    )
    assert imd.external_id == f"{SCALAR_READ}-{SCALAR_REGISTER}"


def test_bill_cycle_sync_schedules_reach_mdm(scenario: Scenario) -> None:
    with scenario.ccb.store.transaction() as tx:
        cycles = {code: scenario.ccb.record(tx, "BILL CYCLE", (code,)) for code, _ in CYCLES}
    with scenario.mdm.store.transaction() as tx:
        held = {code: scenario.mdm.bill_cycle(tx, code) for code in cycles}
    for code, record in cycles.items():
        cycle = held[code]
        assert record is not None and cycle is not None, code
        assert [
            (e.window_start_date.isoformat(), e.window_end_date.isoformat()) for e in cycle.schedule
        ] == [(e["window_start_date"], e["window_end_date"]) for e in record["schedule"]]


# -- billing (flows 11-13, 16) -----------------------------------------------------------------


def kwh(scenario: Scenario, segment_id: int) -> Decimal:
    """The segment's kWh service quantity without TOU: the whole consumption of its period."""
    (total,) = [
        Decimal(q["quantity"])
        for q in scenario.quantities(segment_id)
        if (q["uom"], q["tou"], q["sqi"]) == ("KWH", None, None)
    ]
    return total


def test_batch_bd_segments_are_priced_from_what_mdm_measured(scenario: Scenario) -> None:
    """BATCH_BD: a segment per SA of the runs, its kWh the sum of MDM's intervals over its
    period (summed here from the stored values), priced and frozen with its bill."""
    assert len(scenario.batch) == len(scenario.customers)
    for customer in scenario.customers[1:]:  # the first one's read is corrected later
        (segment,) = [s for s in scenario.segments(customer.sa_id) if s.id in scenario.batch]
        assert segment.status == "FROZEN" and segment.amount is not None
        assert segment.end is not None
        period = datetime.fromisoformat(segment.start), datetime.fromisoformat(segment.end)
        assert kwh(scenario, segment.id) == scenario.interval_total(customer, *period)
        assert Decimal(segment.amount) > 0


def test_online_bd_bills_one_account_at_once(scenario: Scenario) -> None:
    customer = scenario.online_customer
    (segment_id,) = scenario.online
    segments = scenario.segments(customer.sa_id)
    (online,) = [s for s in segments if s.id == segment_id]
    assert online.status == "FROZEN" and online.end is not None
    start, end = datetime.fromisoformat(online.start), datetime.fromisoformat(online.end)
    # billed through the day asked for: up to the next midnight
    assert (start.date(), end.date()) == (scenario.month, scenario.month + timedelta(days=11))
    assert kwh(scenario, online.id) == scenario.interval_total(customer, start, end)
    (batch,) = [s for s in segments if s.id in scenario.batch]
    assert batch.start == online.end  # the run went on from where the online bill ended


def test_replacement_reads_cancel_and_rebill_the_segment(scenario: Scenario) -> None:
    """REPLACEMENT_READS: the corrected read's frozen segment is cancelled with the reason
    "MDM Corrected Read" and rebilled with the corrected consumption."""
    correction = scenario.correction
    assert correction is not None and correction.corrected
    customer = scenario.billed
    (old,) = [s for s in scenario.segments(customer.sa_id) if s.id in scenario.batch]
    (new,) = [s for s in scenario.segments(customer.sa_id) if s.rebill_of == old.id]
    assert (old.status, old.reason) == ("CANCELED", "MDM Corrected Read")
    assert new.status == "FROZEN" and (new.start, new.end) == (old.start, old.end)
    assert kwh(scenario, new.id) == kwh(scenario, old.id) + (
        correction.new_value - correction.old_value
    )
    assert new.end is not None
    period = datetime.fromisoformat(new.start), datetime.fromisoformat(new.end)
    assert kwh(scenario, new.id) == scenario.interval_total(customer, *period)


def test_ut_info_update_marks_what_was_used_on_a_bill(scenario: Scenario) -> None:
    """UT_INFO_UPDATE: completing a bill sets used-on-bill on the UT, cancelling clears it."""
    segments = [s for c in scenario.customers for s in scenario.segments(c.sa_id)]
    asked = [s for s in segments if s.usage_request_id is not None]  # not converted history
    used: dict[int, bool] = {}
    with scenario.mdm.store.transaction() as tx:
        for segment in asked:
            external = str(segment.usage_request_id).zfill(10)
            uts = scenario.mdm.usage.usage_transactions(tx, external)
            assert uts, segment
            used[segment.id] = uts[-1].used_on_bill
    statuses = {s.id: s.status for s in segments}
    assert used == {sid: statuses[sid] == "FROZEN" for sid in used}
    assert False in used.values() and True in used.values()


# -- CCB's synchronous calls (flows 14, 15, 17, 19) --------------------------------------------


def test_high_low_gives_the_range_of_the_next_read(scenario: Scenario) -> None:
    answer = scenario.answers["HIGH_LOW"]
    assert not answer.result.has_error  # type: ignore[attr-defined]
    (register,) = answer.registers  # type: ignore[attr-defined]
    assert register.register_id == SCALAR_REGISTER
    assert register.basis_reading == Decimal("5210")
    assert register.low_reading <= register.estimated_reading <= register.high_reading
    assert register.estimated_reading > register.basis_reading


def test_get_usage_answers_the_rate_check_from_the_corrected_data(scenario: Scenario) -> None:
    customer = scenario.billed
    (item,) = scenario.answers["GET_USAGE"].response  # type: ignore[attr-defined]
    assert (item.sa_id, item.result.has_error) == (customer.sa_id, False)
    assert item.rate_schedule == ("RES-TOU" if customer.commercial else "COM-DEM")
    (period,) = item.periods
    (energy,) = [
        sq.quantity
        for sq in period.service_quantities
        if (sq.uom, sq.tou, sq.sqi) == ("KWH", None, None)
    ]
    assert energy == scenario.interval_total(customer, period.start_date_time, period.end_date_time)
    assert {sq.uom for sq in period.service_quantities} == {"KWH", "KW"}


def test_usage_adjustment_reads_the_usage_mdm_holds(scenario: Scenario) -> None:
    customer = scenario.billed
    answer = scenario.answers["USAGE_ADJUSTMENT"]
    assert not answer.result.has_error  # type: ignore[attr-defined]
    (result,) = answer.main_data.results  # type: ignore[attr-defined]
    assert (result.sa_id, result.rate_schedule) == (customer.sa_id, "RES-TOU")
    quantities = [
        sq.quantity
        for period in result.periods
        for sq in period.service_quantities
        if sq.uom == "KWH"
    ]
    assert quantities and sum(quantities) > 0


def test_sa_activation_bill_cycle_follows_the_sps_measurement_cycle(scenario: Scenario) -> None:
    customer = scenario.billed
    with scenario.ccb.store.transaction() as tx:
        sp = scenario.ccb.record(tx, "SP", (customer.sp_id,))
    answer = scenario.answers["SA_ACTIVATION_BILL_CYCLE"]
    assert sp is not None and not answer.result.has_error  # type: ignore[attr-defined]
    assert answer.measurement_cycle == sp["measurement_cycle"]  # type: ignore[attr-defined]
    assert answer.bill_cycle == "M" + str(sp["measurement_cycle"])[2:]  # type: ignore[attr-defined]


# -- MDM to CCB (flow 20) ----------------------------------------------------------------------


def test_bill_cycle_change_moves_the_sp_and_its_account_in_ccb(scenario: Scenario) -> None:
    customer = scenario.online_customer
    measurement_cycle, bill_cycle = MOVED_TO
    with scenario.ccb.store.transaction() as tx:
        sp = scenario.ccb.record(tx, "SP", (customer.sp_id,))
        account = scenario.ccb.account(tx, customer.account_id)
        others = [scenario.ccb.account(tx, c.account_id) for c in scenario.customers[::2]]
    with scenario.mdm.store.transaction() as tx:
        held = scenario.mdm.service_point(tx, customer.sp_id)
    assert sp is not None and sp["measurement_cycle"] == measurement_cycle
    assert account.bill_cycle == bill_cycle
    assert bill_cycle not in {other.bill_cycle for other in others}
    assert held is not None and held.measurement_cycle == measurement_cycle
