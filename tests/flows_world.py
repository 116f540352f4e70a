"""Every flow of the catalogue between the two reference simulators, through the runtime.

One scenario: a small utility entered in CCB before go-live and sent by the initial load, then
changed in the course of business (a name, a service relationship, a contract option and its
event, a site with a scalar meter and its read); a month of 15-minute data in MDM; one account
billed online, every cycle billed in batch, the bills completed; a read behind one bill corrected
(cancel and rebill); an externally managed SP moved to another measurement cycle by MDM; and
CCB's synchronous calls. It runs on ``Systems``: the two simulators as the test sees them and a
way to wait until every node is quiet. The test modules build them with every node in one
process, or with three HTTP services on loopback, and read what each flow did in the receiving
simulator.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.sim.ccb.billing import Segment
from ccbmdm.runtime.sim.ccb.calls import CcbCalls
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.demo import billing_month
from ccbmdm.runtime.sim.mdm import interval_days
from ccbmdm.runtime.sim.mdm.bill_cycle_change import change_measurement_cycle
from ccbmdm.runtime.sim.mdm.measurements import generate_interval_data
from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator
from ccbmdm.runtime.sim.mdm.usage import CorrectionResult
from ccbmdm.runtime.sim.synthetic import CYCLES, ZONE, Customer, Plan, generate
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.base import Row

NEW_YORK = ZoneInfo(ZONE)
SEED = 77
# Ids of the entities added after go-live (a series of their own, apart from the synthetic ones).
SA_RELATIONSHIP, OPTION, OPTION_EVENT = "0090000001", "0090000002", "0090000003"
SCALAR_SP, SCALAR_METER, SCALAR_CONFIG = "0090000004", "0090000005", "0090000006"
SCALAR_REGISTER, SCALAR_HISTORY, SCALAR_READ = "0090000007", "0090000008", "0090000009"
RENAMED = "Okonkwo-Baptiste,Chidinma"
MOVED_TO = ("MC09", "M09")  # the measurement cycle MDM moves the managed SP to, its bill cycle
ERROR_TABLES = ("sync_request", "usage_request", "mdm_sync_request", "outbox", "ccb_ocbg")
OPEN_STATES = {
    "sync_request": ("PENDING", "AWAITING_ACK"),
    "usage_request": (
        "PENDING",
        "AWAITING_DATA_SYNC",
        "AWAITING_BILL_DETERMINANTS",
        "BILL_DETERMINANTS_RECEIVED",
    ),
    "mdm_sync_request": ("PENDING", "ERROR_RETRYABLE"),
    "outbox": ("PENDING", "SENDING", "AWAITING_REPLY", "RETRY_WAIT"),
    "inbox": ("RECEIVED", "PROCESSING"),
    "ccb_ocbg": ("PENDING", "PROCESSING_REQUEST"),
    "mdm_usage_transaction": ("PENDING",),
}


@dataclass
class Systems:
    """The simulators as the test reaches them, and a wait until every node is quiet."""

    ccb: CcbSimulator
    mdm: MdmSimulator
    calls: CcbCalls
    stores: list[Store]  # every node's store (one, when they share it)
    settle: Callable[[], None]

    def errors(self) -> list[dict[str, Any]]:
        """Every request and message in Error, in any store."""
        queries = {table: f"SELECT * FROM {table} WHERE state = 'ERROR'" for table in ERROR_TABLES}
        return [
            {"table": table, **row}
            for store in self.stores
            for table, rows in rows_of(store, queries).items()
            for row in rows
        ]


@dataclass
class Scenario:
    """What the scenario did, for the tests to look its outcome up."""

    systems: Systems
    month: date
    customers: list[Customer]
    online: list[int] = field(default_factory=list)  # segment ids billed online
    batch: list[int] = field(default_factory=list)  # segment ids of the billing runs
    correction: CorrectionResult | None = None
    answers: dict[str, ContractModel] = field(default_factory=dict)  # flow code -> reply

    @property
    def ccb(self) -> CcbSimulator:
        return self.systems.ccb

    @property
    def mdm(self) -> MdmSimulator:
        return self.systems.mdm

    @property
    def billed(self) -> Customer:
        """Billed in batch alone; its read is corrected."""
        return self.customers[0]

    @property
    def online_customer(self) -> Customer:
        """Billed online first, then in batch; MDM manages its SP's cycle."""
        return self.customers[1]

    def segments(self, sa_id: str) -> list[Segment]:
        with self.ccb.store.transaction() as tx:
            rows = tx.fetch(
                "SELECT id FROM ccb_bill_segment WHERE sa_id = :sa ORDER BY id", {"sa": sa_id}
            )
            found = [self.ccb.billing.segment(tx, int(r["id"])) for r in rows]
        return [segment for segment in found if segment is not None]

    def quantities(self, segment_id: int) -> list[dict[str, Any]]:
        with self.ccb.store.transaction() as tx:
            return [
                dict(row)
                for row in tx.fetch(
                    "SELECT period_start, period_end, uom, tou, sqi, quantity "
                    "FROM ccb_service_quantity WHERE segment_id = :id ORDER BY seq",
                    {"id": segment_id},
                )
            ]

    def interval_total(self, customer: Customer, start: datetime, end: datetime) -> Decimal:
        """The kWh MDM holds for the customer's channel over ``(start, end]``, summed here from
        the stored values (independently of the determinant engine)."""
        with self.mdm.store.transaction() as tx:
            configuration = self.mdm.device_configuration(tx, customer.meter_config_id)
            assert configuration is not None
            (channel,) = [
                mc for mc in configuration.measuring_components if mc.seconds_per_interval
            ]
            found = interval_days.read(
                tx, channel.production_id, int(start.timestamp()), int(end.timestamp())
            )
        return sum(map(Decimal, found.values), Decimal(0))


def run_scenario(systems: Systems) -> Scenario:
    """Every flow, phase after phase, each phase waited out before the next."""
    ccb, mdm = systems.ccb, systems.mdm
    month = billing_month(date.today())
    customers = generate(ccb, Plan(customers=3, month=month, seed=SEED), converted=True)
    scenario = Scenario(systems, month, customers)
    _go_live(scenario)
    _business_changes(scenario)
    generate_interval_data(mdm.store, month, SEED)
    _bill(scenario)
    corrected_at = _midnight(month + timedelta(days=9), 18)
    scenario.correction = mdm.usage.correct_read(
        sp_id=scenario.billed.sp_id, at=corrected_at, value="1.234"
    )
    systems.settle()
    _calls(scenario)
    with mdm.store.transaction() as tx:
        change_measurement_cycle(
            mdm, tx, scenario.online_customer.sp_id, *MOVED_TO, month + timedelta(days=40)
        )
    systems.settle()
    return scenario


def _go_live(scenario: Scenario) -> None:
    """The converted utility: its history billed up to the month, one SP managed by MDM, all
    of it sent by the initial load."""
    ccb = scenario.ccb
    start, end = _midnight(scenario.month - timedelta(days=28)), _midnight(scenario.month)
    with ccb.store.transaction() as tx:
        for customer in scenario.customers:
            ccb.billing.convert_history(tx, customer.sa_id, customer.account_id, start, end)
        sp = ccb.record(tx, "SP", (scenario.online_customer.sp_id,))
        assert sp is not None
        ccb.save(tx, "SP", {**sp, "externally_managed": True}, captured=False)
    ccb.initial_load()
    scenario.systems.settle()


def _business_changes(scenario: Scenario) -> None:
    """Changes made in CCB after go-live, each captured with the change."""
    ccb, customer = scenario.ccb, scenario.billed
    # installed within the year before the month, so the read after it gives high-low a history
    installed = _midnight(scenario.month - timedelta(days=200)).isoformat()
    with ccb.store.transaction() as tx:
        person = ccb.record(tx, "PERSON", (customer.person_id,))
        assert person is not None
        ccb.save(tx, "PERSON", {**person, "entity_name": RENAMED})
        sa = ccb.record(tx, "SA", (customer.sa_id,))
        assert sa is not None
        ccb.save(
            tx,
            "SA REL",
            {
                "sa_relationship_id": SA_RELATIONSHIP,
                "sa_id": customer.sa_id,
                "sa_relationship_type": "ESP-RR",
                "service_provider_id": "GREENMTN-ESP",
                "time_zone": ZONE,
                "start_date": sa["start_date"],
                "end_date": None,
            },
        )
        ccb.save(
            tx,
            "CONTRACT OPT",
            {
                "contract_option_id": OPTION,
                "option_type": "CPP-SUMMER",
                "time_zone": ZONE,
                "start_date": sa["start_date"],
                "end_date": None,
                "sa_links": [{"sa_id": customer.sa_id, "start_date": sa["start_date"]}],
                "characteristics": [
                    {"characteristic_type": "CPPTIER", "characteristic_value": "TIER2"}
                ],
            },
        )
        event_day = scenario.month + timedelta(days=130)
        ccb.save(
            tx,
            "CONTR OPT EVT",
            {
                "contract_option_event_id": OPTION_EVENT,
                "contract_option_id": OPTION,
                "event_type": "CPP-EVENT",
                "start_date_time": _midnight(event_day, 14).isoformat(),
                "end_date_time": _midnight(event_day, 19).isoformat(),
                "characteristics": [
                    {"characteristic_type": "CPPREASN", "characteristic_value": "HEAT-WAVE"}
                ],
            },
        )
        _scalar_site(ccb, tx, scenario.customers[2], installed)
    scenario.systems.settle()
    with ccb.store.transaction() as tx:
        ccb.save(
            tx,
            "METER READ",
            {
                "meter_read_id": SCALAR_READ,
                "meter_config_id": SCALAR_CONFIG,
                "read_date_time": _midnight(scenario.month - timedelta(days=10), 9).isoformat(),
                "read_type": "REGULAR",
                "register_reads": [{"register_id": SCALAR_REGISTER, "reading": "5210"}],
            },
        )
    scenario.systems.settle()


def _scalar_site(ccb: CcbSimulator, tx: Any, like: Customer, installed: str) -> None:
    """A new SP with a meter read by hand: one cumulative kWh register."""
    sp = ccb.record(tx, "SP", (like.sp_id,))
    assert sp is not None
    ccb.save(
        tx,
        "SP",
        {**sp, "sp_id": SCALAR_SP, "premise_id": "0090000010", "externally_managed": False},
    )
    ccb.save(
        tx,
        "METER",
        {
            "meter_id": SCALAR_METER,
            "meter_type": "ELEC-1PH-RES",
            "manufacturer": "ITRON",
            "model": "CENTRON-C1S",
            "badge_number": "E90000005",
        },
    )
    ccb.save(
        tx,
        "MTR CONFIG",
        {
            "meter_config_id": SCALAR_CONFIG,
            "meter_id": SCALAR_METER,
            "effective_date_time": installed,
            "meter_config_type": "SCALAR-KWH",
            "registers": [
                {
                    "register_id": SCALAR_REGISTER,
                    "uom": "KWH",
                    "read_out_type": "DSP",
                    "service_type": "E",
                    "digits_left": 6,
                    "digits_right": 0,
                    "register_constant": "1",
                    "consumptive_subtractive": "S",
                    "how_to_use": "ADD",
                }
            ],
        },
    )
    ccb.save(
        tx,
        "SP MTR HIST",
        {
            "sp_meter_history_id": SCALAR_HISTORY,
            "sp_id": SCALAR_SP,
            "meter_config_id": SCALAR_CONFIG,
            "install_event": {
                "event_date_time": installed,
                "reads": [
                    {"register_id": SCALAR_REGISTER, "reading": "1000", "read_type": "REGULAR"}
                ],
            },
        },
    )


def _bill(scenario: Scenario) -> None:
    """One account billed online part of the month, then every cycle's run; bills completed."""
    ccb = scenario.ccb
    with ccb.store.transaction() as tx:
        scenario.online = ccb.billing.bill_online(
            tx, scenario.online_customer.account_id, scenario.month + timedelta(days=10)
        )
    scenario.systems.settle()
    with ccb.store.transaction() as tx:
        for cycle, _ in CYCLES:
            entry = ccb.record(tx, "BILL CYCLE", (cycle,))
            assert entry is not None
            window = date.fromisoformat(entry["schedule"][0]["window_start_date"])
            scenario.batch += ccb.billing.billing_run(tx, cycle, window)
    scenario.systems.settle()
    with ccb.store.transaction() as tx:
        ccb.billing.complete_bills(tx)
    scenario.systems.settle()


def _calls(scenario: Scenario) -> None:
    """CCB's synchronous calls, answered inline by MDM through the bridge."""
    calls, customer, month = scenario.systems.calls, scenario.billed, scenario.month
    start, end = _midnight(month), _midnight(month + timedelta(days=31))
    other = "RES-TOU" if customer.commercial else "COM-DEM"
    scenario.answers["GET_USAGE"] = calls.rate_check(customer.sa_id, other, start, end)
    scenario.answers["HIGH_LOW"] = calls.high_low(
        SCALAR_CONFIG, _midnight(month + timedelta(days=20), 9), [SCALAR_REGISTER]
    )
    reference = datetime.combine(month + timedelta(days=60), time(12), NEW_YORK)
    scenario.answers["USAGE_ADJUSTMENT"] = calls.usage_adjustments(
        customer.account_id, "e2e-user", reference, {customer.sa_id: ["RES-TOU"]}
    )
    scenario.answers["SA_ACTIVATION_BILL_CYCLE"] = calls.activation_bill_cycle(
        customer.sa_id, customer.account_id, [customer.sp_id], month
    )


def open_work(store: Store) -> dict[str, int]:
    """What is not final yet in a store, per table and state (tables it lacks are skipped)."""
    queries = {
        table: f"SELECT state, count(*) AS n FROM {table} WHERE state IN "
        f"({', '.join(repr(s) for s in states)}) GROUP BY state"
        for table, states in OPEN_STATES.items()
    }
    return {
        f"{table} {r['state']}": int(r["n"])
        for table, rows in rows_of(store, queries).items()
        for r in rows
    }


def rows_of(store: Store, queries: dict[str, str]) -> dict[str, list[Row]]:
    """Each table's query, in one transaction; a table this store does not have is left out
    (each node's store has the tables of what it hosts)."""
    found: dict[str, list[Row]] = {}
    with store.transaction() as tx:
        for table, query in queries.items():
            try:
                with tx.savepoint():
                    found[table] = tx.fetch(query)
            except Exception:
                continue
    return found


def settle(
    stores: list[Store], work: Callable[[], object] | None = None, seconds: float = 180
) -> None:
    """Until nothing is open in any of the stores, three looks in a row a moment apart: a
    message passing from one store to another while the stores are read one after the other
    can be missed by one look, not by three. ``work`` moves things on in process; without it,
    services do, and this only watches."""
    deadline = clock.monotonic() + seconds
    quiet_checks = 0
    while quiet_checks < 3:
        if work is not None:
            work()
        left = {name: n for store in stores for name, n in open_work(store).items()}
        quiet_checks = quiet_checks + 1 if not left else 0
        assert clock.monotonic() < deadline, (
            f"still open after {seconds} s: {left}"
            if left
            else f"nothing open at the last look, but not three quiet looks in a row in {seconds} s"
        )
        clock.sleep(0.02 if work is not None else 0.2)


def _midnight(day: date, hour: int = 0) -> datetime:
    return datetime.combine(day, time(hour), NEW_YORK)
