"""Usage group files (docs/determinants.md PD-D14, §15): the reference groups as defined, and every way a
file can be wrong reported with its file, key and problem."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccbmdm.runtime.sim.usage_groups import (
    DayType,
    HighLowFactors,
    Ratchet,
    SqKey,
    UsageGroupError,
    load_usage_group,
    parse_usage_group,
    read_usage_group,
    usage_group_names,
)

TOU_S = """
touMap:
  seasons:
    - {season: SUMMER, monthFrom: 6, monthTo: 9}
    - {season: WINTER, monthFrom: 10, monthTo: 5}
  windows:
    - {season: SUMMER, dayType: WEEKDAY, from: "00:00", to: "13:00", tou: "OFF"}
    - {season: SUMMER, dayType: WEEKDAY, from: "13:00", to: "18:00", tou: "ON"}
    - {season: SUMMER, dayType: WEEKDAY, from: "18:00", to: "24:00", tou: "OFF"}
    - {season: SUMMER, dayType: WEEKEND, from: "00:00", to: "24:00", tou: "OFF"}
    - {season: WINTER, dayType: WEEKDAY, from: "00:00", to: "24:00", tou: "OFF"}
    - {season: WINTER, dayType: WEEKEND, from: "00:00", to: "24:00", tou: "OFF"}
"""


def parse(text: str) -> Any:
    return parse_usage_group("TEST", yaml.safe_load(text), "TEST.yaml")


def with_map(extra: str) -> str:
    return TOU_S + extra


def test_the_reference_groups_are_shipped() -> None:
    assert {"RES-TOU", "COM-DEM"} <= set(usage_group_names())


def test_res_tou_is_tou_s_with_energy_per_tou_and_total() -> None:
    group = load_usage_group("RES-TOU")
    assert group.name == "RES-TOU"
    assert set(group.sqs) == {SqKey("KWH", "ON"), SqKey("KWH", "OFF"), SqKey("KWH")}
    assert (group.ratchet, group.exchange_is_date_break, group.tou_check_tolerance) == (
        None,
        False,
        Decimal(0),
    )
    assert group.precision_of("KWH") == group.precision_of("KW") == 3
    assert group.high_low == HighLowFactors(Decimal("0.6"), Decimal("1.4"), {})


def test_tou_s_windows_in_standard_time() -> None:
    tou_map = load_usage_group("RES-TOU").tou_map
    assert tou_map is not None and not tou_map.holidays
    wednesday, saturday, january = date(2025, 7, 16), date(2025, 7, 19), date(2025, 1, 15)
    assert tou_map.season_of(wednesday) == "SUMMER" and tou_map.season_of(january) == "WINTER"
    assert (
        tou_map.tou_at(datetime.combine(wednesday, datetime.min.time()).replace(hour=12, minute=59))
        == "OFF"
    )
    assert tou_map.tou_at(datetime(2025, 7, 16, 13, 0)) == "ON"
    assert tou_map.tou_at(datetime(2025, 7, 16, 17, 45)) == "ON"
    assert tou_map.tou_at(datetime(2025, 7, 16, 18, 0)) == "OFF"
    assert tou_map.tou_at(datetime(2025, 9, 30, 13, 0)) == "ON"
    assert tou_map.tou_at(datetime(2025, 10, 1, 13, 0)) == "OFF"
    assert tou_map.tou_at(datetime.combine(saturday, datetime.min.time()).replace(hour=14)) == "OFF"


def test_com_dem_has_demand_and_the_ratchet() -> None:
    group = load_usage_group("COM-DEM")
    assert group.sqs == (SqKey("KWH"), SqKey("KW"), SqKey("KW", "ON"), SqKey("KW", "", "BILLED"))
    assert group.ratchet == Ratchet(Decimal("0.80"), 11)
    assert group.tou_map == load_usage_group("RES-TOU").tou_map


def test_an_empty_file_takes_every_default() -> None:
    group = parse("")
    assert (group.tou_map, group.sqs, group.ratchet) == (None, (SqKey("KWH"),), None)


def test_holidays_use_the_weekend_windows_unless_the_map_has_holiday_windows() -> None:
    group = parse(TOU_S.replace("  windows:", "  holidays: [2025-07-04]\n  windows:"))
    assert group.tou_map is not None
    assert group.tou_map.day_type_of(date(2025, 7, 4)) is DayType.HOLIDAY
    assert group.tou_map.tou_at(datetime(2025, 7, 4, 14)) == "OFF"
    holiday_on = TOU_S.replace("  windows:", "  holidays: [2025-07-04]\n  windows:") + "\n".join(
        [
            '    - {season: SUMMER, dayType: HOLIDAY, from: "00:00", to: "24:00", tou: "ON"}',
            '    - {season: WINTER, dayType: HOLIDAY, from: "00:00", to: "24:00", tou: "OFF"}',
        ]
    )
    tou_map = parse(holiday_on).tou_map
    assert tou_map is not None and tou_map.tou_at(datetime(2025, 7, 4, 3)) == "ON"


def test_a_file_is_read_by_its_name(tmp_path: Path) -> None:
    path = tmp_path / "GEN-FLAT.yaml"
    path.write_text("sqs: [KWH]\nexchangeIsDateBreak: true\nprecision: {KWH: 2}\n")
    group = read_usage_group(path)
    assert (group.name, group.exchange_is_date_break, group.precision_of("KWH")) == (
        "GEN-FLAT",
        True,
        2,
    )


def test_high_low_defaults_by_sp_type() -> None:
    group = parse("highLow: {low: 0.5, high: 1.5, defaultAdcBySpType: {RES: 20, COM: '85.5'}}")
    assert group.high_low == HighLowFactors(
        Decimal("0.5"), Decimal("1.5"), {"RES": Decimal(20), "COM": Decimal("85.5")}
    )


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (
            TOU_S.replace('from: "13:00", to: "18:00"', 'from: "13:00", to: "17:00"'),
            "touMap.windows (SUMMER WEEKDAY)",
            "gap 17:00-18:00",
        ),
        (
            TOU_S.replace('from: "18:00", to: "24:00"', 'from: "17:30", to: "24:00"'),
            "touMap.windows (SUMMER WEEKDAY)",
            "overlap 17:30-18:00",
        ),
        (
            TOU_S.replace(
                'from: "18:00", to: "24:00", tou: "OFF"}', 'from: "18:00", to: "23:00", tou: "OFF"}'
            ),
            "touMap.windows (SUMMER WEEKDAY)",
            "gap 23:00-24:00",
        ),
        (
            "\n".join(
                line for line in TOU_S.splitlines() if "WINTER, dayType: WEEKEND" not in line
            ),
            "touMap.windows (WINTER WEEKEND)",
            "no windows",
        ),
        (TOU_S.replace('tou: "ON"', "tou: ON"), "touMap.windows[1].tou", "quote codes"),
        (
            TOU_S.replace('from: "13:00", to: "18:00"', 'from: 13:00, to: "18:00"'),
            "touMap.windows[1].from",
            'quoted time "HH:MM"',
        ),
        (
            TOU_S.replace('from: "13:00", to: "18:00"', 'from: "18:00", to: "13:00"'),
            "touMap.windows[1]",
            "not before",
        ),
        (TOU_S.replace('to: "18:00"', 'to: "25:00"'), "touMap.windows[1].to", '"24:00"'),
        (
            TOU_S.replace('dayType: WEEKDAY, from: "13:00"', 'dayType: WORKDAY, from: "13:00"'),
            "touMap.windows[1].dayType",
            "WORKDAY",
        ),
        (
            TOU_S.replace(
                "- {season: SUMMER, dayType: WEEKEND", "- {season: SPRING, dayType: WEEKEND"
            ),
            "touMap.windows[3].season",
            "SPRING is not one of",
        ),
        (
            TOU_S.replace("monthTo: 5}", "monthTo: 4}"),
            "touMap.seasons",
            "no season contain month 5",
        ),
        (
            TOU_S.replace("monthTo: 9}", "monthTo: 10}"),
            "touMap.seasons",
            "seasons SUMMER, WINTER all contain month 10",
        ),
        (
            TOU_S.replace("monthFrom: 6", "monthFrom: 13"),
            "touMap.seasons[0].monthFrom",
            "from 1 to 12",
        ),
        (
            TOU_S.replace("  windows:", "  holidays: [July 4]\n  windows:"),
            "touMap.holidays[0]",
            "YYYY-MM-DD",
        ),
        ("touMap: {seasons: []}", "touMap", "missing key(s) windows"),
        ("tariff: RES", "(top level)", "unknown key(s) tariff"),
        ("- KWH", "(top level)", "expected a mapping, got list"),
        ("sqs: KWH", "sqs", "expected a list"),
        ("sqs: [KWH/<tou>]", "sqs[0]", "needs a touMap"),
        (with_map("sqs: [KWH/PEAK]"), "sqs[0]", "'KWH/PEAK' is not one of"),
        ("sqs: [KW/ON]", "sqs[0]", "needs a touMap with an ON window"),
        ("sqs: [KWH, KWH]", "sqs", "listed more than once: KWH"),
        ("sqs: [KW, KW/BILLED]", "sqs", "KW/BILLED needs a ratchet"),
        ("sqs: [KW]\nratchet: {p: 0.8, n: 11}", "ratchet", "list KW/BILLED"),
        ("sqs: [KW, KW/BILLED]\nratchet: [0.8, 11]", "ratchet", "expected a mapping"),
        ("sqs: [KW, KW/BILLED]\nratchet: {p: 80, n: 11}", "ratchet.p", "share from 0 to 1"),
        ("sqs: [KW, KW/BILLED]\nratchet: {p: 0.8, n: 0}", "ratchet.n", "from 1 to 120"),
        ("exchangeIsDateBreak: yes please", "exchangeIsDateBreak", "true or false"),
        ("precision: {KWH: 7}", "precision.KWH", "from 0 to 6"),
        ("precision: {KWH: 2.5}", "precision.KWH", "whole number"),
        ("touCheckTolerance: -1", "touCheckTolerance", "at least 0"),
        ("touCheckTolerance: lots", "touCheckTolerance", "expected a number"),
        ("highLow: {low: 1.2}", "highLow", "low ≤ 1 ≤ high"),
        (
            "highLow: {defaultAdcBySpType: {RES: twenty}}",
            "highLow.defaultAdcBySpType.RES",
            "expected a number",
        ),
    ],
)
def test_a_broken_file_names_its_key_and_problem(text: str, key: str, problem: str) -> None:
    with pytest.raises(UsageGroupError) as raised:
        parse(text)
    assert (raised.value.source, raised.value.key) == ("TEST.yaml", key)
    assert problem in raised.value.problem
    assert str(raised.value).startswith(f"TEST.yaml: {key}: ")


def test_an_unknown_group_and_invalid_yaml_are_reported(tmp_path: Path) -> None:
    with pytest.raises(UsageGroupError, match=r"NOPE.yaml: \(file\): no such usage group"):
        load_usage_group("NOPE")
    with pytest.raises(UsageGroupError, match="no such usage group"):
        load_usage_group("../pyproject")
    path = tmp_path / "BAD.yaml"
    path.write_text("sqs: [KWH\n")
    with pytest.raises(UsageGroupError, match=r"BAD.yaml: \(file\): not valid YAML"):
        read_usage_group(path)
