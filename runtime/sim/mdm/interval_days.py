"""How MDM keeps interval values: one row per measuring component and UTC day in
``mdm_interval_day``, the day's ends and codes packed in text columns and its values in bytes
(docs/simulators.md, "How interval values are kept"). Every reader and writer of interval
values goes through this module; the rest of MDM sees values one interval at a time, as
``(mc, end, value text, codes text)``.

Decisions:

* The day is the UTC day of the interval's end, an end on midnight closing the day before
  (``day = (end - 1) // 86400``): every day has 86,400 seconds, a writer needs no zone, and
  a range ``(after, until]`` reads whole days and trims the first and last. An SP's DST day
  lies across two UTC days like any other local day; its 92 or 100 intervals are simply there.
* ``ends``: the ends' offsets in seconds from the day's start, as runs ``first:step:count``
  (a lone end as ``first``) joined by commas; a full day of 15-minute data is ``900:900:96``,
  a gap starts a new run.
* ``amounts``: the values, packed as bytes by ``interval_amounts``: each text reads back exactly
  as written, so the scale sent is the scale kept and any decimal reads back equal.
* ``quality_codes``: NULL when every interval carries the actual code ``1.0.0``; else the
  others as ``index=codes`` (codes space-separated, as PD-D09 lists them) joined by ``;``.
* A write merges into the days it touches: a replacing write (an import, an edit) overwrites
  the intervals it names, a keeping one (synthetic data) adds only those not stored. On
  PostgreSQL the days read for a merge are locked (``FOR UPDATE``) until the commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ccbmdm.runtime.sim.mdm import interval_amounts
from ccbmdm.runtime.store import Transaction
from ccbmdm.runtime.store.base import Row

TABLE = "mdm_interval_day"
DAY = 86_400
ACTUAL = "1.0.0"  # the code of an actual value, kept as NULL for a day of them (PD-D09)
_MCS_PER_READ = 200  # MCs whose days one merge query reads
_DAYS_PER_WRITE = 2_000  # day rows per bulk statement

CREATE = f"""CREATE TABLE {TABLE} (
  mc_id text NOT NULL, day bigint NOT NULL, ends text NOT NULL, amounts {{blob}} NOT NULL,
  quality_codes text, PRIMARY KEY (mc_id, day))"""

# One interval value as the rest of MDM writes it: MC, end (UTC epoch seconds), value text,
# quality codes text (space-separated).
Interval = tuple[str, int, str, str]


class Values(NamedTuple):
    """An MC's values in a range, column by column, ordered by end."""

    ends: list[int]
    values: list[str]
    codes: list[str]

    def rows(self) -> list[tuple[int, str, str]]:
        return list(zip(self.ends, self.values, self.codes, strict=True))


def day_of(end: int) -> int:
    """The UTC day an interval ending at ``end`` belongs to."""
    return (end - 1) // DAY


# -- the packed columns -------------------------------------------------------------------------


def pack_ends(day: int, ends: Sequence[int]) -> str:
    """Ascending ends of one day as runs of equal steps. A day of one run (a meter's whole
    day) is told by comparing its ends with the run's, in C."""
    base = day * DAY
    runs, i, count = [], 0, len(ends)
    if count > 2:
        step = ends[1] - ends[0]
        if step > 0 and list(ends) == list(range(ends[0], ends[0] + step * count, step)):
            return f"{ends[0] - base}:{step}:{count}"
    while i < count:
        first = ends[i] - base
        if i + 1 == count:
            runs.append(str(first))
            break
        step, j = ends[i + 1] - ends[i], i + 1
        while j + 1 < count and ends[j + 1] - ends[j] == step:
            j += 1
        runs.append(f"{first}:{step}:{j - i + 1}")
        i = j + 1
    return ",".join(runs)


def unpack_ends(day: int, text: str) -> list[int]:
    base = day * DAY
    ends: list[int] = []
    for run in text.split(","):
        if ":" in run:
            first, step, count = map(int, run.split(":"))
            ends += range(base + first, base + first + step * count, step)
        else:
            ends.append(base + int(run))
    return ends


def pack_codes(codes: Sequence[str]) -> str | None:
    if codes.count(ACTUAL) == len(codes):  # the common day, told in C
        return None
    others = [f"{i}={text}" for i, text in enumerate(codes) if text != ACTUAL]
    return ";".join(others) if others else None


def unpack_codes(count: int, text: str | None) -> list[str]:
    codes = [ACTUAL] * count
    if text:
        for entry in text.split(";"):
            index, found = entry.split("=", 1)
            codes[int(index)] = found
    return codes


def _columns(
    mc_id: str, day: int, intervals: dict[int, tuple[str, str]]
) -> tuple[str, list[str], str | None]:
    """A day's ends and codes packed, and its value texts in the order of the ends."""
    ends = sorted(intervals)
    values = [intervals[end] for end in ends]
    codes = [listed for _, listed in values]
    if any(";" in text or "=" in text for text in codes if text != ACTUAL):
        raise ValueError(
            f"MC {mc_id}: a quality code list of day {day} holds a separator (';' or '='); "
            "codes are system.category.index, separated by spaces"
        )
    return pack_ends(day, ends), [value for value, _ in values], pack_codes(codes)


class Day(NamedTuple):
    """One stored day: its row's columns."""

    mc_id: str
    day: int
    ends: str
    amounts: bytes
    quality_codes: str | None

    @classmethod
    def of(cls, mc_id: str, day: int, intervals: dict[int, tuple[str, str]]) -> Day:
        ends, values, codes = _columns(mc_id, day, intervals)
        return cls(mc_id, day, ends, interval_amounts.pack(values), codes)

    @classmethod
    def of_units(
        cls,
        mc_id: str,
        day: int,
        ends: Sequence[int],
        units: Sequence[int],
        scale: int,
        codes: Sequence[str],
    ) -> Day:
        """``of`` a day given in order as integers at ``scale`` (a generator's), whose texts
        are never made."""
        return cls(
            mc_id,
            day,
            pack_ends(day, ends),
            interval_amounts.pack_units(units, scale),
            pack_codes(codes),
        )

    def unpacked(self) -> Values:
        ends = unpack_ends(self.day, self.ends)
        try:
            values = interval_amounts.unpack(self.amounts)
        except interval_amounts.Damaged as error:
            raise ValueError(
                f"{TABLE} of MC {self.mc_id}, day {self.day}: {error}; the row is damaged"
            ) from None
        if len(values) != len(ends):
            raise ValueError(
                f"{TABLE} of MC {self.mc_id}, day {self.day}: {len(ends)} ends but "
                f"{len(values)} values; the row is damaged"
            )
        return Values(ends, values, unpack_codes(len(ends), self.quality_codes))

    def intervals(self) -> dict[int, tuple[str, str]]:
        ends, values, codes = self.unpacked()
        return dict(zip(ends, zip(values, codes, strict=True), strict=True))


# -- reading ------------------------------------------------------------------------------------


def read(tx: Transaction, mc_id: str, after: int, until: int) -> Values:
    """The MC's values ending in ``(after, until]`` (epoch seconds), ordered by end."""
    found = Values([], [], [])
    for day in _days_of(tx, mc_id, after, until):
        ends, values, codes = day.unpacked()
        if ends[0] <= after or ends[-1] > until:  # the range's first or last day: trimmed
            kept = [i for i, end in enumerate(ends) if after < end <= until]
            ends = [ends[i] for i in kept]
            values = [values[i] for i in kept]
            codes = [codes[i] for i in kept]
        found.ends.extend(ends)
        found.values.extend(values)
        found.codes.extend(codes)
    return found


class Scaled(NamedTuple):
    """An MC's values in a range as integers at one scale, column by column, ordered by end."""

    ends: npt.NDArray[np.int64]
    units: npt.NDArray[np.int64]  # each value x 10**scale
    scale: int
    codes: list[str]


def read_scaled(tx: Transaction, mc_id: str, after: int, until: int) -> Scaled | None:
    """``read`` as integers, for a reader that computes on them: the days' values decoded
    together and no text made for them. None when a day's values are not all plain decimals
    of one scale, the same for every day (``read`` gives those)."""
    days = _days_of(tx, mc_id, after, until)
    decoded = interval_amounts.scaled_days([day.amounts for day in days])
    if decoded is None:
        return None
    units, scale, counts = decoded
    ends: list[int] = []
    codes: list[str] = []
    for day, count in zip(days, counts, strict=True):
        day_ends = unpack_ends(day.day, day.ends)
        if len(day_ends) != count:
            return None  # damaged: ``read`` says how
        ends += day_ends
        codes += unpack_codes(count, day.quality_codes)
    stamped = np.array(ends, dtype=np.int64)
    if len(stamped) and (stamped[0] <= after or stamped[-1] > until):
        kept = (stamped > after) & (stamped <= until)
        stamped, units = stamped[kept], units[kept]
        codes = [code for code, keep in zip(codes, kept.tolist(), strict=True) if keep]
    return Scaled(stamped, units, scale, codes)


def _days_of(tx: Transaction, mc_id: str, after: int, until: int) -> list[Day]:
    """The stored days holding the MC's values ending in ``(after, until]``, in order."""
    if until <= after:
        return []
    rows = tx.fetch(
        f"""SELECT day, ends, amounts, quality_codes FROM {TABLE}
            WHERE mc_id = :mc AND day >= :first AND day <= :last ORDER BY day""",
        {"mc": mc_id, "first": day_of(after + 1), "last": day_of(until)},
    )
    return [
        Day(mc_id, int(row["day"]), row["ends"], row["amounts"], row["quality_codes"])
        for row in rows
    ]


def read_one(tx: Transaction, mc_id: str, end: int) -> tuple[str, str] | None:
    """The value text and codes text stored for the MC's interval ending at ``end``."""
    found = read(tx, mc_id, end - 1, end)
    return (found.values[0], found.codes[0]) if found.ends else None


# -- writing ------------------------------------------------------------------------------------


def write(tx: Transaction, dialect: str, intervals: Iterable[Interval], *, replace: bool) -> int:
    """Store interval values, merged into the days they fall on; ``replace``: a value already
    stored for an end is overwritten (the last given wins), else kept (the first given wins).
    Returns the number of days written."""
    touched: dict[tuple[str, int], dict[int, tuple[str, str]]] = {}
    for mc_id, end, value, codes in intervals:
        day = touched.setdefault((mc_id, day_of(end)), {})
        if replace or end not in day:
            day[end] = (value, codes)
    return write_days(tx, dialect, touched, replace=replace)


def write_days(
    tx: Transaction,
    dialect: str,
    touched: dict[tuple[str, int], dict[int, tuple[str, str]]],
    *,
    replace: bool,
) -> int:
    """``write`` of values already grouped by (MC, day): end -> (value text, codes text), each
    end on its key's day (a generator of whole days need not pass every value one by one)."""
    keys = sorted(touched)
    stored = _stored(tx, dialect, keys)
    days: list[Day] = []
    for key in keys:
        new, old = touched[key], stored.get(key)
        if old is None:
            merged = new
        elif replace:
            merged = old | new
        else:
            merged = new | old
            if len(merged) == len(old):
                continue  # nothing new: the day stays as it is
        days.append(Day.of(*key, merged))
    _upsert(tx, dialect, days)
    return len(days)


def keep_days(tx: Transaction, dialect: str, days: Sequence[Day]) -> int:
    """``write_days`` keeping what is stored, of days already packed (a generator's): a day
    with nothing stored is written as it is, one with values stored gets only the ends it
    lacks. Returns the number of days written."""
    stored = _stored(tx, dialect, sorted((day.mc_id, day.day) for day in days))
    fresh = [day for day in days if (day.mc_id, day.day) not in stored]
    _upsert(tx, dialect, fresh)
    merged = {
        (day.mc_id, day.day): day.intervals() for day in days if (day.mc_id, day.day) in stored
    }
    return len(fresh) + (write_days(tx, dialect, merged, replace=False) if merged else 0)


def delete(tx: Transaction, dialect: str, mc_id: str, after: int, until: int) -> int:
    """Remove the MC's values ending in ``(after, until]``; returns how many were removed."""
    if until <= after:
        return 0
    first, last = day_of(after + 1), day_of(until)
    removed, kept_days = 0, []
    for key, day in _stored(tx, dialect, [(mc_id, d) for d in (first, last)], span=True).items():
        kept = {end: v for end, v in day.items() if not after < end <= until}
        removed += len(day) - len(kept)
        if kept and len(kept) != len(day):
            kept_days.append(Day.of(*key, kept))
        elif not kept:
            tx.send(
                f"DELETE FROM {TABLE} WHERE mc_id = :mc AND day = :day",
                {"mc": key[0], "day": key[1]},
            )
    _upsert(tx, dialect, kept_days)
    return removed


def _stored(
    tx: Transaction, dialect: str, keys: Sequence[tuple[str, int]], *, span: bool = False
) -> dict[tuple[str, int], dict[int, tuple[str, str]]]:
    """The stored days of ``keys`` (with ``span``: every day from the least to the greatest of
    each MC's), unpacked; locked on PostgreSQL for the merge that follows."""
    bounds: dict[str, tuple[int, int]] = {}
    for mc_id, day in keys:
        low, high = bounds.get(mc_id, (day, day))
        bounds[mc_id] = (min(low, day), max(high, day))
    wanted = set(keys)
    lock = " FOR UPDATE" if dialect == "postgres" else ""
    found: dict[tuple[str, int], dict[int, tuple[str, str]]] = {}
    items = sorted(bounds.items())
    for first in range(0, len(items), _MCS_PER_READ):
        group = items[first : first + _MCS_PER_READ]
        params: dict[str, object] = {}
        ranges = []
        for n, (mc_id, (low, high)) in enumerate(group):
            params |= {f"m{n}": mc_id, f"l{n}": low, f"h{n}": high}
            ranges.append(f"(mc_id = :m{n} AND day >= :l{n} AND day <= :h{n})")
        rows = tx.fetch(
            f"""SELECT mc_id, day, ends, amounts, quality_codes FROM {TABLE}
                WHERE {" OR ".join(ranges)}{lock}""",
            params,
        )
        for row in rows:
            key = (str(row["mc_id"]), int(row["day"]))
            if span or key in wanted:
                stored = Day(*key, row["ends"], row["amounts"], row["quality_codes"])
                found[key] = stored.intervals()
    return found


def _upsert(tx: Transaction, dialect: str, days: Sequence[Day]) -> None:
    set_all = (
        "DO UPDATE SET ends = excluded.ends, amounts = excluded.amounts, "
        "quality_codes = excluded.quality_codes"
    )
    for first in range(0, len(days), _DAYS_PER_WRITE):
        chunk = days[first : first + _DAYS_PER_WRITE]
        if dialect == "postgres":
            mcs, numbers, ends, amounts, codes = (list(c) for c in zip(*chunk, strict=True))
            tx.send(
                f"""INSERT INTO {TABLE} (mc_id, day, ends, amounts, quality_codes)
                    SELECT * FROM unnest(CAST(:mcs AS text[]), CAST(:days AS bigint[]),
                                         CAST(:ends AS text[]), CAST(:amounts AS bytea[]),
                                         CAST(:codes AS text[]))
                    ON CONFLICT (mc_id, day) {set_all}""",
                {"mcs": mcs, "days": numbers, "ends": ends, "amounts": amounts, "codes": codes},
            )
        else:
            tx.execute_many(
                f"""INSERT INTO {TABLE} (mc_id, day, ends, amounts, quality_codes)
                    VALUES (:mc_id, :day, :ends, :amounts, :quality_codes)
                    ON CONFLICT (mc_id, day) {set_all}""",
                [day._asdict() for day in chunk],
            )


# -- the moves from former layouts (usage_schema migrations 4 and 5) ----------------------------

TEXT_TABLE = f"{TABLE}_text"  # migration 4's table, set aside while migration 5 packs its days


def from_interval_rows(tx: Transaction, dialect: str, table: str) -> int:
    """Migration 4: pack the rows of ``table`` (one per interval: ``mc_id, end_at, value,
    quality_codes``) into days, MC by MC, in that migration's form: the values' texts joined
    by spaces in a text ``amounts`` (which migration 5 packs as bytes). Returns the number of
    intervals moved."""
    moved = 0
    for row in tx.fetch(f"SELECT DISTINCT mc_id FROM {table} ORDER BY mc_id"):
        mc_id = str(row["mc_id"])
        rows = tx.fetch(
            f"""SELECT end_at, value, quality_codes FROM {table}
                WHERE mc_id = :mc ORDER BY end_at""",
            {"mc": mc_id},
        )
        moved += len(rows)
        days = []
        for day, intervals in _days(rows):
            ends, values, codes = _columns(mc_id, day, intervals)
            if any(" " in value for value in values):
                raise ValueError(
                    f"MC {mc_id}: a value of day {day} holds a space, which the text form of "
                    "usage migration 4 cannot keep; correct the value in mdm_interval_value"
                )
            days.append(
                {"mc": mc_id, "day": day, "ends": ends, "amounts": " ".join(values), "codes": codes}
            )
        tx.execute_many(
            f"""INSERT INTO {TABLE} (mc_id, day, ends, amounts, quality_codes)
                VALUES (:mc, :day, :ends, :amounts, :codes)""",
            days,
        )
    return moved


def _days(rows: Iterable[Row]) -> Iterator[tuple[int, dict[int, tuple[str, str]]]]:
    """Rows of one MC in the order of their ends, one per interval, grouped by day."""
    current: int | None = None
    intervals: dict[int, tuple[str, str]] = {}
    for row in rows:
        end = int(row["end_at"])
        day = day_of(end)
        if day != current:
            if current is not None:
                yield current, intervals
            current, intervals = day, {}
        intervals[end] = (str(row["value"]), str(row["quality_codes"]))
    if current is not None:
        yield current, intervals


def from_text_days(tx: Transaction, dialect: str, source: str) -> int:
    """Migration 5: the days of ``source`` (migration 4's form, the values' texts joined by
    spaces) written to ``TABLE`` with their values packed as bytes, a batch at a time in key
    order; returns the number of days moved."""
    moved, following, last = 0, "", dict[str, object]()
    while True:
        rows = tx.fetch(
            f"""SELECT mc_id, day, ends, amounts, quality_codes FROM {source}{following}
                ORDER BY mc_id, day LIMIT {_DAYS_PER_WRITE}""",
            last,
        )
        if not rows:
            return moved
        days = []
        for row in rows:
            mc_id, day, ends = str(row["mc_id"]), int(row["day"]), str(row["ends"])
            values, count = str(row["amounts"]).split(" "), len(unpack_ends(day, ends))
            if len(values) != count:
                raise ValueError(
                    f"{source} of MC {mc_id}, day {day}: {count} ends but "
                    f"{len(values)} values; the row is damaged: correct or remove it and migrate "
                    "again"
                )
            days.append(Day(mc_id, day, ends, interval_amounts.pack(values), row["quality_codes"]))
        _upsert(tx, dialect, days)
        moved += len(days)
        following = " WHERE (mc_id, day) > (:mc, :day)"
        last = {"mc": rows[-1]["mc_id"], "day": rows[-1]["day"]}
