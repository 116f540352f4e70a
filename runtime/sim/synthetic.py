"""A synthetic utility for the demo and the end-to-end tests: customers with their accounts,
premises and service points, service agreements, meters installed with a configuration, and
the bill cycles, written into the reference CCB (and so captured).

Residential customers are on a time-of-use rate (``RES-TOU``), commercial ones on a demand rate
(``COM-DEM``); both have a meter with one 15-minute kWh channel. The data is drawn from a seeded
generator, so a given size and seed always make the same utility.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ccbmdm.runtime.sim.ccb.records import Account
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator

ZONE = "America/New_York"
DIVISION = "MA"
TOWNS = (
    ("Quincy", "02169"),
    ("Braintree", "02184"),
    ("Milton", "02186"),
    ("Weymouth", "02188"),
    ("Dedham", "02026"),
    ("Needham", "02492"),
)
STREETS = ("Harbor View Rd", "Elm St", "Hancock St", "Adams St", "Beale St", "Granite St")
LAST_NAMES = ("Okafor", "Nguyen", "Silva", "Murphy", "Kowalski", "Haddad", "Chen", "Rossi")
FIRST_NAMES = ("Adaeze", "Minh", "Joana", "Liam", "Ewa", "Karim", "Wei", "Giulia")
BUSINESSES = ("Granite Bakery", "Harbor Marine Supply", "Adams Dental", "Quincy Print Works")
# Bill cycles with the measurement cycle whose default they are (docs/lifecycles.md §6).
CYCLES = (("M01", "MC01"), ("M02", "MC02"), ("M03", "MC03"), ("M04", "MC04"))


@dataclass(frozen=True)
class Plan:
    """What to generate: the number of customers, the commercial share, the billing month."""

    customers: int = 1000
    commercial_share: float = 0.15
    month: date = date(2025, 3, 1)  # a month with the spring DST change inside it
    seed: int = 2025


@dataclass(frozen=True)
class Customer:
    """The keys of one generated customer, for tests and the demo's summary."""

    person_id: str
    account_id: str
    sp_id: str
    sa_id: str
    meter_id: str
    meter_config_id: str
    register_id: str
    commercial: bool


class Ids:
    """Ten-digit CCB ids, one series per kind so that they never collide."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def next(self, series: int) -> str:
        value = self._next.get(series, 0) + 1
        self._next[series] = value
        return f"{series}{value:09d}"


def generate(
    ccb: CcbSimulator,
    plan: Plan,
    progress: Callable[[int], None] | None = None,
    *,
    converted: bool = False,
) -> list[Customer]:
    """Write the utility into CCB, one transaction per 200 customers; the customers made.
    ``converted``: loaded as a conversion before go-live (nothing captured; an initial load
    sends it), else entered as changes, each captured."""
    rng = random.Random(plan.seed)
    ids = Ids()
    customers: list[Customer] = []
    writer = _Writer(ccb, captured=not converted)
    with ccb.store.transaction() as tx:
        for cycle, _ in CYCLES:
            writer.save(tx, "BILL CYCLE", bill_cycle(cycle, plan.month))
        writer.flush(tx)
    for chunk in _chunks(range(plan.customers), 200):
        with ccb.store.transaction() as tx:
            for _ in chunk:
                commercial = rng.random() < plan.commercial_share
                customers.append(_customer(writer, tx, rng, ids, plan, commercial))
            writer.flush(tx)
        if progress is not None:
            progress(len(chunk))
    return customers


def _chunks(values: range, size: int) -> Iterator[range]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class _Writer:
    """Saves into CCB, captured (each save at once), or converted: a transaction's records
    and accounts kept until ``flush`` writes them with a statement each."""

    def __init__(self, ccb: CcbSimulator, captured: bool) -> None:
        self.ccb, self.captured = ccb, captured
        self.records: list[tuple[str, dict[str, Any]]] = []
        self.accounts: list[Account] = []

    def save(self, tx: Any, mo: str, record: dict[str, Any]) -> None:
        if self.captured:
            self.ccb.save(tx, mo, record)
        else:
            self.records.append((mo, record))

    def save_account(self, tx: Any, account: Account) -> None:
        if self.captured:
            self.ccb.save_account(tx, account)
        else:
            self.accounts.append(account)

    def flush(self, tx: Any) -> None:
        """Write what was kept, before ``tx`` commits."""
        self.ccb.convert(tx, self.records)
        self.ccb.save_accounts(tx, self.accounts)
        self.records, self.accounts = [], []


def _customer(
    ccb: _Writer, tx: Any, rng: random.Random, ids: Ids, plan: Plan, commercial: bool
) -> Customer:
    person_id, account_id, premise_id = ids.next(1), ids.next(2), ids.next(3)
    sp_id, sa_id = ids.next(4), ids.next(5)
    meter_id, config_id, register_id, history_id = (
        ids.next(6),
        ids.next(7),
        ids.next(8),
        ids.next(9),
    )
    town, postal = rng.choice(TOWNS)
    address = {
        "address1": f"{rng.randint(1, 400)} {rng.choice(STREETS)}",
        "city": town,
        "state": "MA",
        "postal": postal,
        "country": "USA",
    }
    name = (
        rng.choice(BUSINESSES) + f" {person_id[-4:]}"
        if commercial
        else f"{rng.choice(LAST_NAMES)},{rng.choice(FIRST_NAMES)}"
    )
    ccb.save(
        tx,
        "PERSON",
        {
            "person_id": person_id,
            "person_or_business": "B" if commercial else "P",
            "entity_name": name,
            "phone_number": f"617-555-{rng.randint(0, 9999):04d}",
            "language": "ENG",
            "address": address,
        },
    )
    cycle, measurement_cycle = rng.choice(CYCLES)
    ccb.save_account(tx, Account(account_id, person_id, cycle, DIVISION))
    start = plan.month.replace(year=plan.month.year - 1)
    installed = _midnight(start)
    ccb.save(
        tx,
        "SP",
        {
            "sp_id": sp_id,
            "sp_type": "E-COM" if commercial else "E-RES",
            "disconnect_location": "METER",
            "premise_id": premise_id,
            "address": address,
            "time_zone": ZONE,
            "measurement_cycle": measurement_cycle,
            "route": f"R{measurement_cycle[2:]}{rng.randint(1, 20):02d}",
            "route_sequence": rng.randint(10, 9990),
            "install_date": start.isoformat(),
            "externally_managed": False,
        },
    )
    ccb.save(
        tx,
        "SA",
        {
            "sa_id": sa_id,
            "account_id": account_id,
            "sa_type": "E-COM-DMD" if commercial else "E-RES",
            "cis_division": DIVISION,
            "start_date": start.isoformat(),
            "sa_status": "ACTIVE",
            "rate_history": [
                {
                    "rate_schedule": "COM-DEM" if commercial else "RES-TOU",
                    "effective_date": start.isoformat(),
                }
            ],
            "sp_links": [{"sp_id": sp_id, "start_date_time": installed}],
            "summary_billed": False,
        },
    )
    ccb.save(
        tx,
        "METER",
        {
            "meter_id": meter_id,
            "meter_type": "ELEC-3PH-COM" if commercial else "ELEC-1PH-RES",
            "manufacturer": "ITRON",
            "model": "SENTINEL" if commercial else "CENTRON-C1S",
            "badge_number": f"E{meter_id[-8:]}",
        },
    )
    ccb.save(
        tx,
        "MTR CONFIG",
        {
            "meter_config_id": config_id,
            "meter_id": meter_id,
            "effective_date_time": installed,
            "meter_config_type": "INT15" if commercial else "TOU-INT15",
            "registers": [interval_register(register_id)],
        },
    )
    ccb.save(
        tx,
        "SP MTR HIST",
        {
            "sp_meter_history_id": history_id,
            "sp_id": sp_id,
            "meter_config_id": config_id,
            "install_event": {
                "event_date_time": installed,
                "reads": [{"register_id": register_id, "reading": "0.000", "read_type": "REGULAR"}],
            },
        },
    )
    return Customer(
        person_id, account_id, sp_id, sa_id, meter_id, config_id, register_id, commercial
    )


def interval_register(register_id: str) -> dict[str, Any]:
    """A 15-minute kWh channel (PD-F28: an interval MC)."""
    return {
        "register_id": register_id,
        "uom": "KWH",
        "read_out_type": "INTV",
        "service_type": "E",
        "digits_left": 6,
        "digits_right": 3,
        "register_constant": "1",
        "consumptive_subtractive": "C",
        "how_to_use": "ADD",
        "interval_minutes": 15,
    }


def bill_cycle(code: str, month: date) -> dict[str, Any]:
    """A bill cycle with the billing window that closes ``month`` and the next one."""
    offset = int(code[1:])  # M01 reads first, M04 last
    schedule = []
    for first in (month, _next_month(month)):
        end_of_month = _next_month(first) - timedelta(days=1)
        window_start = end_of_month + timedelta(days=offset)
        schedule.append(
            {
                "window_start_date": window_start.isoformat(),
                "window_end_date": (window_start + timedelta(days=4)).isoformat(),
                "accounting_date": (window_start + timedelta(days=4)).isoformat(),
                "estimate_date": (window_start + timedelta(days=3)).isoformat(),
                "freeze_complete": False,
            }
        )
    return {
        "bill_cycle": code,
        "description": f"Monthly cycle {code[1:]}",
        "cis_division": DIVISION,
        "schedule": schedule,
    }


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _midnight(day: date) -> str:
    """00:00 of a day in the utility's zone, with its offset (docs/flows.md PD-C05)."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(ZONE)).isoformat()


def exchange_meter(ccb: CcbSimulator, tx: Any, customer: Customer, at: datetime) -> Customer:
    """Exchange the customer's meter at ``at``: the old installation is removed with a read,
    a new meter with the same kind of configuration is installed at the same instant (PD-F09),
    each change captured. Returns the customer with its new meter."""
    new = Customer(
        customer.person_id,
        customer.account_id,
        customer.sp_id,
        customer.sa_id,
        meter_id=_successor(customer.meter_id),
        meter_config_id=_successor(customer.meter_config_id),
        register_id=_successor(customer.register_id),
        commercial=customer.commercial,
    )
    when = at.isoformat()
    old_meter = ccb.record(tx, "METER", (customer.meter_id,))
    old_config = ccb.record(tx, "MTR CONFIG", (customer.meter_config_id,))
    (history,) = ccb.records(tx, "SP MTR HIST", ref=customer.sp_id)[-1:]
    if old_meter is None or old_config is None:
        raise LookupError(f"customer {customer.person_id} has no meter to exchange")
    removal_read = {
        "register_id": customer.register_id,
        "reading": "1250.000",
        "read_type": "REGULAR",
    }
    ccb.save(
        tx,
        "SP MTR HIST",
        {**history, "removal_event": {"event_date_time": when, "reads": [removal_read]}},
    )
    ccb.save(
        tx,
        "METER",
        {**old_meter, "meter_id": new.meter_id, "badge_number": f"E{new.meter_id[-8:]}"},
    )
    ccb.save(
        tx,
        "MTR CONFIG",
        {
            **old_config,
            "meter_config_id": new.meter_config_id,
            "meter_id": new.meter_id,
            "effective_date_time": when,
            "registers": [interval_register(new.register_id)],
        },
    )
    ccb.save(
        tx,
        "SP MTR HIST",
        {
            "sp_meter_history_id": _successor(history["sp_meter_history_id"]),
            "sp_id": customer.sp_id,
            "meter_config_id": new.meter_config_id,
            "install_event": {
                "event_date_time": when,
                "reads": [
                    {"register_id": new.register_id, "reading": "0.000", "read_type": "REGULAR"}
                ],
            },
        },
    )
    return new


def _successor(ccb_id: str) -> str:
    """A new id in the same series: an exchange's meter, configuration and history."""
    return f"{int(ccb_id) + 500_000_000:010d}"
