"""MDM's interval values kept one row per MC and UTC day: whatever is written, edited or removed
reads back as the former one-row-per-interval layout gave it (a mapping from MC and end to value
text and codes, here the model), through DST days, gaps, estimated intervals and edits; and the
migration from that layout moves every value, code and edit unchanged, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccbmdm.runtime.messages.functions import zone
from ccbmdm.runtime.sim.determinants.measurements import values_of
from ccbmdm.runtime.sim.mdm import interval_amounts, interval_days
from ccbmdm.runtime.sim.mdm.measurements import Measurements, codes_of
from ccbmdm.runtime.sim.mdm.usage_schema import MIGRATIONS, VERSION_TABLE, migrate
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.schema import migrate as migrate_tables

NY = zone("America/New_York")
MCS = {"MC-15": 900, "MC-60": 3600, "MC-5": 300}  # an MC per interval length
DAYS = [date(2025, 3, 8), date(2025, 3, 9), date(2025, 3, 10), date(2025, 11, 2)]  # DST days
CODES = ["1.0.0", "1.0.0", "3.8.0", "3.7.0", "3.8.0 2.6.1", ""]
Model = dict[tuple[str, int], tuple[str, str]]


def legal_day_ends(day: date, seconds: int) -> list[int]:
    """The interval ends of a day in New York (92 or 100 quarter hours on a DST day)."""
    start = datetime.combine(day, time(0), NY).astimezone(UTC)
    stop = datetime.combine(day + timedelta(days=1), time(0), NY).astimezone(UTC)
    return list(range(int(start.timestamp()) + seconds, int(stop.timestamp()) + 1, seconds))


def decimal_texts() -> st.SearchStrategy[str]:
    """A value's text as a Decimal prints it, at any scale, zero and negative included."""
    return st.builds(
        lambda units, scale: str(Decimal(units).scaleb(-scale)),
        st.integers(-(10**9), 10**9),
        st.integers(-2, 6),
    )


@st.composite
def intervals(draw: st.DrawFn) -> list[tuple[str, int, str, str]]:
    """Some intervals of one MC on one DST-season day, with gaps, at random scales and codes."""
    mc = draw(st.sampled_from(sorted(MCS)))
    ends = legal_day_ends(draw(st.sampled_from(DAYS)), MCS[mc])
    chosen = draw(st.sets(st.sampled_from(ends), max_size=len(ends)))
    return [
        (mc, end, draw(decimal_texts()), draw(st.sampled_from(CODES))) for end in sorted(chosen)
    ]


OPERATIONS = st.one_of(
    st.tuples(st.just("write"), st.booleans(), intervals()),
    st.tuples(st.just("delete"), st.sampled_from(sorted(MCS)), st.integers(0, 5 * 86_400)),
    st.tuples(st.just("edit"), st.integers(0, 10**6), decimal_texts()),
)
FIRST = int(datetime.combine(DAYS[0], time(0), NY).timestamp())


def model_read(model: Model, mc: str, after: int, until: int) -> list[tuple[int, str, str]]:
    return sorted(
        (end, *value) for (m, end), value in model.items() if m == mc and after < end <= until
    )


@pytest.fixture
def measurements(store: Store) -> Iterator[Measurements]:
    yield Measurements(store)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=st.lists(OPERATIONS, min_size=1, max_size=8), data=st.data())
def test_a_channel_reads_back_as_one_row_per_interval_would(
    measurements: Measurements, operations: list[tuple[object, ...]], data: st.DataObject
) -> None:
    store = measurements.store
    model: Model = {}
    with store.transaction() as tx:
        tx.execute(f"DELETE FROM {interval_days.TABLE}")
        tx.execute("DELETE FROM mdm_measurement_edit")
    edits = []
    for operation in operations:
        with store.transaction() as tx:
            if operation[0] == "write":
                _, replace, rows = operation
                assert isinstance(rows, list)
                measurements.write_values(tx, rows, replace=bool(replace))
                for mc, end, value, codes in rows:
                    if replace or (mc, end) not in model:
                        model[(mc, end)] = (value, codes)
            elif operation[0] == "delete":
                _, mc, span = operation
                assert isinstance(mc, str) and isinstance(span, int)
                after = FIRST + data.draw(st.integers(0, 5 * 86_400))
                removed = interval_days.delete(tx, store.dialect, mc, after, after + span)
                gone = [key for key in model if key[0] == mc and after < key[1] <= after + span]
                assert removed == len(gone)
                for key in gone:
                    del model[key]
            elif model:  # an edit, as a correction makes it, of a stored value
                _, pick, value = operation
                assert isinstance(pick, int) and isinstance(value, str)
                mc, end = sorted(model)[pick % len(model)]
                at = datetime.fromtimestamp(end, UTC)
                stored = measurements.interval_value(tx, mc, at)
                assert stored is not None
                assert (str(stored.value), " ".join(stored.quality_codes)) == model[(mc, end)]
                measurements.write_values(tx, [(mc, end, value, "3.7.0")], replace=True)
                measurements.record_edit(
                    tx,
                    mc,
                    "INTERVAL",
                    at,
                    (stored.value, stored.quality_codes),
                    (Decimal(value), ("3.7.0",)),
                )
                edits.append((mc, end, *model[(mc, end)], value, "3.7.0"))
                model[(mc, end)] = (value, "3.7.0")
    last = FIRST + 6 * 86_400
    with store.transaction() as tx:
        for mc in MCS:
            everything = interval_days.read(tx, mc, 0, last).rows()
            assert everything == model_read(model, mc, 0, last)
            after = FIRST + data.draw(st.integers(0, 5 * 86_400), label="after")
            until = after + data.draw(st.integers(0, 2 * 86_400), label="span")
            assert interval_days.read(tx, mc, after, until).rows() == model_read(
                model, mc, after, until
            )
            # what the usage calculation reads: the exact decimals (at the channel's one
            # scale), their codes
            expected = model_read(model, mc, after, until)
            read = values_of(
                measurements.interval_columns(
                    tx, mc, datetime.fromtimestamp(after, UTC), datetime.fromtimestamp(until, UTC)
                )
            )
            assert [(int(v.end.timestamp()), v.value, v.quality_codes) for v in read] == [
                (end, Decimal(value), codes_of(codes)) for end, value, codes in expected
            ]
        history = tx.fetch(
            """SELECT mc_id, measured_at, old_value, old_quality_codes, new_value,
                      new_quality_codes FROM mdm_measurement_edit ORDER BY id"""
        )
    assert [tuple(row.values()) for row in history] == [
        (mc, end, old, codes, new, new_codes) for mc, end, old, codes, new, new_codes in edits
    ]


def test_a_day_packs_its_ends_as_runs_and_only_codes_other_than_actual() -> None:
    ends = legal_day_ends(date(2025, 3, 9), 900)
    assert len(ends) == 92
    day = interval_days.day_of(ends[0])
    assert all(interval_days.day_of(end) in (day, day + 1) for end in ends)
    full = [end for end in range(day * 86_400 + 900, (day + 1) * 86_400 + 1, 900)]
    packed = interval_days.Day.of(
        "MC", day, {end: ("0.250", "3.8.0" if i == 5 else "1.0.0") for i, end in enumerate(full)}
    )
    assert (packed.ends, packed.quality_codes) == ("900:900:96", "5=3.8.0")
    assert interval_amounts.unpack(packed.amounts) == ["0.250"] * 96
    gappy = full[:3] + full[10:12] + full[40:41]
    assert interval_days.pack_ends(day, gappy) == "900:900:3,9900:900:2,36900"
    assert interval_days.unpack_ends(day, "900:900:3,9900:900:2,36900") == gappy
    assert (
        interval_days.Day.of("MC", day, {end: ("1", "1.0.0") for end in full}).quality_codes is None
    )


def old_rows() -> list[tuple[str, int, str, str]]:
    """Rows of the former layout: two MCs across the spring DST day, with a gap, estimated and
    edited intervals and values at several scales."""
    rows = []
    for n, end in enumerate(legal_day_ends(date(2025, 3, 9), 900)):
        if 40 <= n < 44:
            continue  # a gap
        codes = "3.8.0" if n in (10, 11) else "3.7.0" if n == 50 else "1.0.0"
        rows.append(("MC-A", end, f"{n // 10}.{n % 10}{n % 7}0", codes))
    for n, end in enumerate(legal_day_ends(date(2025, 3, 10), 3600)):
        rows.append(("MC-B", end, str(Decimal(n * 125).scaleb(-2 - n % 3)), "1.0.0"))
    return rows


def test_the_migration_packs_one_row_per_interval_and_keeps_every_value_code_and_edit(
    store: Store,
) -> None:
    migrate_tables(store, MIGRATIONS[:3], VERSION_TABLE)  # the store as it was before
    rows = old_rows()
    edited_at = next(row for row in rows if row[3] == "3.7.0")  # its edit is recorded
    with store.transaction() as tx:
        tx.execute_many(
            """INSERT INTO mdm_interval_value (mc_id, end_at, value, quality_codes)
               VALUES (:mc, :end, :value, :codes)""",
            [
                {"mc": mc, "end": end, "value": value, "codes": codes}
                for mc, end, value, codes in rows
            ],
        )
        tx.execute(
            f"""INSERT INTO mdm_measurement_edit (mc_id, kind, measured_at, old_value,
                  old_quality_codes, new_value, new_quality_codes, edited_at)
                VALUES (:mc, 'INTERVAL', :at, '0.333', '1.0.0', :new, '3.7.0', {tx.now})""",
            {"mc": edited_at[0], "at": edited_at[1], "new": edited_at[2]},
        )
        edits_before = tx.fetch("SELECT * FROM mdm_measurement_edit")
    assert migrate(store) == len(MIGRATIONS)
    with store.transaction() as tx:
        for mc in ("MC-A", "MC-B"):
            kept = [(end, value, codes) for m, end, value, codes in rows if m == mc]
            assert interval_days.read(tx, mc, 0, 2**40).rows() == kept
        assert tx.fetch("SELECT * FROM mdm_measurement_edit") == edits_before
        days = tx.fetch_one(f"SELECT count(*) AS n FROM {interval_days.TABLE}")
        assert days is not None and days["n"] == 2 * 2  # each New York day lies across 2 UTC days
    measurements = Measurements(store)
    with store.transaction() as tx:
        at = datetime.fromtimestamp(edited_at[1], UTC)
        stored = measurements.interval_value(tx, "MC-A", at)
        assert stored is not None
        assert (str(stored.value), stored.quality_codes) == (edited_at[2], ("3.7.0",))
    catalogue = (
        "SELECT count(*) AS n FROM sqlite_master WHERE name = :table"
        if store.dialect == "sqlite"
        else """SELECT count(*) AS n FROM pg_tables
                WHERE tablename = :table AND schemaname = current_schema()"""
    )
    with store.transaction() as tx:
        old = tx.fetch_one(catalogue, {"table": "mdm_interval_value"})
        new = tx.fetch_one(catalogue, {"table": interval_days.TABLE})
    assert old is not None and new is not None and (old["n"], new["n"]) == (0, 1)


def test_codes_holding_a_separator_are_refused_rather_than_packed_and_any_value_is_kept() -> None:
    with pytest.raises(ValueError, match=r"MC X: .* holds a separator"):
        interval_days.Day.of("X", 0, {900: ("1", "3.8.0;4=1.0.0")})
    kept = {900: ("1 2", "1.0.0"), 1800: ("", "3.8.0")}
    assert interval_days.Day.of("X", 0, kept).intervals() == kept


def text_days() -> tuple[list[dict[str, object]], Model]:
    """Days as usage migration 4 stored them (the values' texts joined by spaces), and the
    intervals they hold: the spring and autumn DST days in New York, across two UTC days each,
    with gaps, estimated and edited intervals, values at several scales and texts that are not
    plain decimals; and a day written out by hand."""
    model: Model = {}
    odd = ["1E+3", "-0.0", "007", "0.4500", "1.2", "+5", ".5", "-0.125"]
    for mc, local in (("MC-A", date(2025, 3, 9)), ("MC-B", date(2025, 11, 2))):
        for n, end in enumerate(legal_day_ends(local, 900)):
            if 40 <= n < 44:
                continue  # a gap
            value = odd[n % len(odd)] if n % 9 == 0 else f"{n // 10}.{n % 10}{n % 7}0"
            codes = "3.8.0" if n in (10, 11) else "3.7.0 2.6.1" if n == 50 else "1.0.0"
            model[(mc, end)] = (value, codes)
    days: dict[tuple[str, int], dict[int, tuple[str, str]]] = {}
    for (mc, end), interval in model.items():
        days.setdefault((mc, interval_days.day_of(end)), {})[end] = interval
    rows: list[dict[str, object]] = []
    for (mc, number), intervals in sorted(days.items()):
        ends = sorted(intervals)
        rows.append(
            {
                "mc": mc,
                "day": number,
                "ends": interval_days.pack_ends(number, ends),
                "amounts": " ".join(intervals[end][0] for end in ends),
                "codes": interval_days.pack_codes([intervals[end][1] for end in ends]),
            }
        )
    base = 20_000 * 86_400
    rows.append(
        {
            "mc": "MC-C",
            "day": 20_000,
            "ends": "900:900:3,9900:900:2,36900",
            "amounts": "0.126 -0.0 1E+3 007 0.4500 12",
            "codes": "1=3.8.0;4=3.7.0 2.6.1",
        }
    )
    for end, value, codes in zip(
        [900, 1800, 2700, 9900, 10800, 36900],
        ["0.126", "-0.0", "1E+3", "007", "0.4500", "12"],
        ["1.0.0", "3.8.0", "1.0.0", "1.0.0", "3.7.0 2.6.1", "1.0.0"],
        strict=True,
    ):
        model[("MC-C", base + end)] = (value, codes)
    return rows, model


def test_migration_5_packs_the_values_of_every_day_as_bytes_and_each_reads_back_as_written(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate_tables(store, MIGRATIONS[:4], VERSION_TABLE)  # the store as it was before
    rows, model = text_days()
    with store.transaction() as tx:
        tx.execute_many(
            f"""INSERT INTO {interval_days.TABLE} (mc_id, day, ends, amounts, quality_codes)
                VALUES (:mc, :day, :ends, :amounts, :codes)""",
            rows,
        )
        mc, end = next(key for key, value in model.items() if value[1] == "3.7.0 2.6.1")
        tx.execute(
            f"""INSERT INTO mdm_measurement_edit (mc_id, kind, measured_at, old_value,
                  old_quality_codes, new_value, new_quality_codes, edited_at)
                VALUES (:mc, 'INTERVAL', :at, '0.333', '1.0.0', :new, '3.7.0 2.6.1', {tx.now})""",
            {"mc": mc, "at": end, "new": model[(mc, end)][0]},
        )
        edits_before = tx.fetch("SELECT * FROM mdm_measurement_edit")
    monkeypatch.setattr(interval_days, "_DAYS_PER_WRITE", 2)  # days moved a few at a time
    assert migrate(store) == len(MIGRATIONS)
    with store.transaction() as tx:
        for mc in ("MC-A", "MC-B", "MC-C"):
            assert interval_days.read(tx, mc, 0, 2**40).rows() == model_read(model, mc, 0, 2**40)
        assert tx.fetch("SELECT * FROM mdm_measurement_edit") == edits_before
        stored = tx.fetch(f"SELECT mc_id, day, ends, amounts FROM {interval_days.TABLE}")
    assert sorted((r["mc_id"], r["day"], r["ends"]) for r in stored) == sorted(
        (r["mc"], r["day"], r["ends"]) for r in rows
    )
    assert all(isinstance(r["amounts"], bytes) for r in stored)
    assert sum(len(r["amounts"]) for r in stored) < sum(len(str(r["amounts"])) for r in rows) / 2
    if store.dialect == "sqlite":
        columns = "SELECT type FROM pragma_table_info(:table) WHERE name = 'amounts'"
        tables = "SELECT name FROM sqlite_master WHERE tbl_name LIKE 'mdm_interval%' ORDER BY name"
        expected = [interval_days.TABLE, f"sqlite_autoindex_{interval_days.TABLE}_1"]
        kind = "BLOB"
    else:
        columns = """SELECT data_type AS type FROM information_schema.columns
                     WHERE table_name = :table AND column_name = 'amounts'
                       AND table_schema = current_schema()"""
        tables = """SELECT relname AS name FROM pg_class
                    WHERE relname LIKE 'mdm_interval%'
                      AND relnamespace = current_schema()::regnamespace ORDER BY relname"""
        expected = [interval_days.TABLE, f"{interval_days.TABLE}_pkey"]
        kind = "bytea"
    with store.transaction() as tx:
        column = tx.fetch_one(columns, {"table": interval_days.TABLE})
        assert column is not None and column["type"] == kind
        assert [row["name"] for row in tx.fetch(tables)] == expected
    measurements = Measurements(store)  # a migrated day takes an edit as any other
    with store.transaction() as tx:
        measurements.write_values(
            tx, [("MC-C", 20_000 * 86_400 + 1800, "0.5", "3.7.0")], replace=True
        )
    model[("MC-C", 20_000 * 86_400 + 1800)] = ("0.5", "3.7.0")
    with store.transaction() as tx:
        assert interval_days.read(tx, "MC-C", 0, 2**40).rows() == model_read(
            model, "MC-C", 0, 2**40
        )
