"""MDM's measurements: synthetic interval data for every installed interval MC over a month with
the spring DST change, a Green Button feed imported onto an SP, and the engine's install events
read back from MDM's master data and these values, on both stores."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from types import ModuleType

import pytest

from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.sim.mdm import interval_days
from ccbmdm.runtime.sim.mdm.measurements import (
    MeasurementError,
    Measurements,
    generate_interval_data,
    import_espi,
)
from ccbmdm.runtime.sim.synthetic import Plan
from ccbmdm.runtime.store import Store
from usage_world import HOURLY_FEED, World, hourly, midnight

MONTH = date(2025, 3, 1)


@pytest.fixture
def world(store: Store, registry: ContractRegistry, package: ModuleType) -> World:
    world = World(store, registry, package)
    world.utility(Plan(customers=4, commercial_share=0.5, month=MONTH, seed=10))
    assert {c.commercial for c in world.customers} == {True, False}
    return world


def test_synthetic_data_covers_the_month_and_its_windows_through_the_dst_change(
    world: World,
) -> None:
    generated = generate_interval_data(world.store, MONTH, seed=3)
    # the billing windows closing March end on April 5-8 (M01-M04): data runs to April 9
    assert (generated.meters, generated.start, generated.end) == (4, MONTH, date(2025, 4, 9))
    expected = int(midnight(date(2025, 4, 9)).timestamp() - midnight(MONTH).timestamp()) // 900
    assert expected == 31 * 96 - 4 + 8 * 96  # March 9 has 23 hours
    assert generated.values == 4 * expected
    residential = next(c for c in world.customers if not c.commercial)
    commercial = next(c for c in world.customers if c.commercial)
    values = {}
    for customer in (residential, commercial):
        rows = world.raw_values(
            world.mc_id(customer.register_id), midnight(MONTH), midnight(date(2025, 4, 9))
        )
        assert len(rows) == expected
        assert rows[0][0] == int((midnight(MONTH) + timedelta(minutes=15)).timestamp())
        steps = {b[0] - a[0] for a, b in pairwise(rows)}
        assert steps == {900}  # no hole and no repeat across 02:00 on March 9
        assert all(str(v).count(".") == 1 and len(str(v).split(".")[1]) == 3 for _, v, _ in rows)
        values[customer.commercial] = sum(v for _, v, _ in rows)
    # a commercial meter uses far more than a house
    assert values[True] > 3 * values[False]
    # a run of estimated intervals on some meters, never many
    estimated = 0
    for customer in world.customers:
        rows = world.raw_values(
            world.mc_id(customer.register_id), midnight(MONTH), midnight(date(2025, 4, 9))
        )
        count = sum(codes == "3.8.0" for *_, codes in rows)
        assert count <= 4
        estimated += count
    assert {
        codes
        for customer in world.customers
        for *_, codes in world.raw_values(
            world.mc_id(customer.register_id), midnight(MONTH), midnight(date(2025, 4, 9))
        )
    } <= {"1.0.0", "3.8.0"}
    # the same seed makes the same data, and a second run overwrites nothing
    again = generate_interval_data(world.store, MONTH, seed=3)
    assert again.values == generated.values
    mc = world.mc_id(residential.register_id)
    before = world.raw_values(mc, midnight(MONTH), midnight(date(2025, 3, 2)))
    with world.store.transaction() as tx:
        interval_days.write(
            tx, world.store.dialect, [(mc, before[0][0], "9.999", before[0][2])], replace=True
        )
    generate_interval_data(world.store, MONTH, seed=99)
    assert world.raw_values(mc, midnight(MONTH), midnight(date(2025, 3, 2)))[0][1] == Decimal(
        "9.999"
    )


def test_the_engine_reads_install_events_with_their_values_from_mdm(world: World) -> None:
    generate_interval_data(world.store, MONTH, seed=3)
    customer = world.customers[0]
    measurements = Measurements(world.store)
    start, end = midnight(MONTH), midnight(date(2025, 3, 10))
    sp = world.sp_production_id(customer.sp_id)
    with world.store.transaction() as tx:
        (installation,) = measurements.installations(tx, sp, start, end)
    assert installation.installed_at == midnight(date(2024, 3, 1)).astimezone(UTC)
    assert installation.removed_at is None and installation.registers == ()
    (channel,) = installation.channels
    assert (channel.mc, channel.uom, channel.seconds_per_interval) == (
        world.mc_id(customer.register_id),
        "KWH",
        900,
    )
    raw = world.raw_values(channel.mc, start, end)
    assert len(channel.values) == len(raw) == 9 * 96 - 4
    assert [v.value for v in channel.values] == [value for _, value, _ in raw]
    assert channel.values[-1].end == end.astimezone(UTC)


def test_a_green_button_feed_loads_onto_the_sps_hourly_mc(
    store: Store, registry: ContractRegistry, package: ModuleType
) -> None:
    world = World(store, registry, package)
    (customer,) = world.utility(
        Plan(customers=1, commercial_share=0.0, month=date(2011, 3, 1), seed=5), hourly
    )
    loaded = import_espi(store, HOURLY_FEED, customer.sp_id)
    assert (loaded.mc_id, loaded.seconds_per_interval) == (world.mc_id(customer.register_id), 3600)
    assert (loaded.values, loaded.skipped, loaded.gaps) == (8760, 0, 0)
    assert loaded.first_end == datetime(2011, 1, 1, 9, tzinfo=UTC)  # 00:00 PST + 1 h
    rows = world.raw_values(loaded.mc_id, datetime(2011, 1, 1, 8, tzinfo=UTC), loaded.first_end)
    assert rows == [(int(loaded.first_end.timestamp()), Decimal("0.450"), "1.0.0")]
    # a second import replaces the values it covers
    assert import_espi(store, HOURLY_FEED.read_bytes(), customer.sp_id).values == 8760
    with store.transaction() as tx:
        stored = interval_days.read(tx, loaded.mc_id, 0, 2**40)
    assert len(stored.ends) == 8760


def test_a_feed_whose_interval_length_differs_from_the_mc_is_refused(world: World) -> None:
    customer = world.customers[0]
    with pytest.raises(MeasurementError, match=r"3600-second intervals, MC .* 900-second"):
        import_espi(world.store, HOURLY_FEED, customer.sp_id)
    with pytest.raises(MeasurementError, match="MDM has no SP"):
        import_espi(world.store, HOURLY_FEED, "0000000000")
