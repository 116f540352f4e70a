"""The end-to-end demo: a synthetic utility run through the runtime between the two simulators.

Phases run one after the other, each timed: the utility is generated in CCB (a conversion, so
nothing is captured yet, with its bills up to the billing month converted too), the initial load
captures every entity and the workers synchronize it into MDM; a meter is exchanged in the
middle of the month; MDM gets a month of 15-minute data (some intervals estimated, the spring
daylight-saving change inside); a billing run per bill cycle asks MDM for the determinants and
prices the segments; the bills are completed (MDM told the usage was used); a read behind one
bill is corrected, which cancels and rebills its segment; and a rate check asks MDM what one
customer's month would have been on the other rate. The report says what ran: messages per flow,
requests per state, bills, the time per phase, and every request in Error with its reason.
"""

from __future__ import annotations

import threading
import time as clock
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from ccbmdm.codegen.project import Project
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.config import DeliverySetting, reference_config
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.synthetic import CYCLES, ZONE, Customer, Plan, exchange_meter, generate
from ccbmdm.runtime.store import Store
from ccbmdm.runtime.store.base import StoreError
from ccbmdm.runtime.store.counts import COUNTED
from ccbmdm.runtime.store.dsn import is_postgres

# A phase's progress: (description, total items) -> a function advancing it by some items.
Progress = Callable[[str, int], Callable[[int], None]]

# In the demo every node is in process: a lease or a retry need not wait minutes.
DEMO_DELIVERY = DeliverySetting(
    lease_s=30, backoff_base_s=0.05, backoff_factor=2, backoff_cap_s=1, poll_interval_s=0.01
)


@dataclass
class Report:
    customers: int
    workers: int = 1
    phases: list[tuple[str, float]] = field(default_factory=list)
    messages: dict[tuple[str, str], int] = field(default_factory=dict)  # (flow, part) -> sent
    requests: dict[tuple[str, str], int] = field(default_factory=dict)  # (machine, state) -> rows
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # machine, key, reason
    bills: dict[str, int] = field(default_factory=dict)  # segments per status, bills
    rate_check: str | None = None

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = clock.perf_counter()
        yield
        self.phases.append((name, clock.perf_counter() - started))


def run_demo(
    project: Project,
    store: str,
    customers: int = 1000,
    progress: Progress | None = None,
    *,
    billing: bool = True,
    workers: int = 1,
) -> Report:
    """Run every phase on a fresh store (a SQLite path or a postgresql:// DSN); ``billing``
    False stops after the initial sync. ``workers`` above 1: the initial sync, the billing
    run and the bills' completion are drained by this process and ``workers - 1`` worker
    processes sharing the store."""
    advance = progress or (lambda _name, _total: lambda _n: None)
    runtime = Runtime(reference_config(store, DEMO_DELIVERY), project)
    report = Report(customers, workers=workers)
    try:
        ccb = runtime.systems["ccb"]
        assert isinstance(ccb, CcbSimulator)
        plan = Plan(customers=customers, month=billing_month(date.today()))
        with report.phase("generate the utility"):
            made = generate(ccb, plan, advance("generating", customers), converted=True)
            convert_bills(ccb, made, plan.month)
        with report.phase("initial load"):
            with runtime.store.transaction() as tx:
                entities = sum(n for mo, n in ccb.counts(tx).items() if mo != "ACCOUNT")
            ccb.initial_load(progress=advance("capturing", entities))
            refresh_statistics(runtime.store)
        with report.phase("initial sync"):
            drain(runtime, "sync_request", entities, advance("synchronizing", entities), workers)
        if billing:
            bill(runtime, ccb, made, plan, report, advance)
        summarize(runtime.store, report)
    finally:
        runtime.close()
    return report


def billing_month(today: date) -> date:
    """The first March whose billing windows are still ahead: a month with the spring
    daylight-saving change, billed before its usage requests' deadlines pass."""
    year = today.year if today < date(today.year, 3, 1) else today.year + 1
    return date(year, 3, 1)


def convert_bills(ccb: CcbSimulator, customers: list[Customer], month: date) -> None:
    """Each SA's bills before the billing month, converted: its first run starts at the
    month."""
    end = _midnight(month)
    with ccb.store.transaction() as tx:
        ccb.billing.convert_histories(
            tx,
            [(customer.sa_id, customer.account_id) for customer in customers],
            _midnight(month - timedelta(days=28)),
            end,
        )


def bill(
    runtime: Runtime,
    ccb: CcbSimulator,
    customers: list[Customer],
    plan: Plan,
    report: Report,
    advance: Progress,
) -> None:
    """The billing phases: exchange, data, runs, bills, a correction and a rate check."""
    from ccbmdm.runtime.sim.mdm.measurements import generate_interval_data
    from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator

    mdm = runtime.systems["mdm"]
    assert isinstance(mdm, MdmSimulator)
    with report.phase("meter exchange"):
        with runtime.store.transaction() as tx:
            exchange_meter(ccb, tx, customers[0], _midnight(plan.month + timedelta(days=14), 10))
        runtime.worker(batch=200).drain()
    with report.phase("interval data"):
        generate_interval_data(
            runtime.store, plan.month, plan.seed, advance("metering", len(customers))
        )
    with report.phase("billing run"):
        with runtime.store.transaction() as tx:
            segments = []
            for cycle, _ in CYCLES:
                entry = ccb.record(tx, "BILL CYCLE", (cycle,))
                assert entry is not None
                window = date.fromisoformat(entry["schedule"][0]["window_start_date"])
                segments += ccb.billing.billing_run(tx, cycle, window)
        refresh_statistics(runtime.store)
        billed = advance("billing", len(segments))
        drain(runtime, "usage_request", len(segments), billed, report.workers)
    with report.phase("complete bills"):
        with runtime.store.transaction() as tx:
            bills = ccb.billing.complete_bills(tx)
        # a bill's update has ended when MDM's response to it is processed at CCB
        ended = {"node": "ccb", "flow": "UT_INFO_UPDATE", "part": "response"}
        drain(runtime, "inbox", bills, advance("completing", bills), report.workers, ended)
    with report.phase("read correction and rebill"):
        corrected = customers[-1]
        mdm.usage.correct_read(
            sp_id=corrected.sp_id, at=_midnight(plan.month + timedelta(days=9), 18), value="1.234"
        )
        runtime.worker(batch=200).drain()
    with report.phase("rate check"):
        report.rate_check = rate_check(runtime, customers[-1], plan)


def refresh_statistics(store: Store, *, changed_only: bool = False) -> None:
    """On PostgreSQL, the planner's statistics of the demo's tables: all of them after a bulk
    load, or (``changed_only``) those changed by more than autovacuum's analyse threshold since
    their last analysis (50 rows and a tenth of the table), as autovacuum would refresh them.

    The demo cannot count on autovacuum, which a server may run with off or reach late: until a
    table filled in one go is analysed the planner takes it for nearly empty. The sync monitor's
    claim then joined and sorted every Pending request for each batch (0.9 s a batch at 60,000
    requests, 3 ms with statistics), and a worker's prepared statements kept the plans made when
    MDM's tables were empty, a whole-table read for each look-up, until an analysis replaced
    them. SQLite's claims name their index and need none."""
    if store.dialect != "postgres":
        return
    changed = " AND s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)"
    tables = _tables(store, changed if changed_only else "")
    with store.transaction() as tx:
        for table in tables:
            tx.execute(f'ANALYZE "{table}"')


def vacuum_dead(store: Store) -> None:
    """On PostgreSQL, the demo's tables whose dead rows passed autovacuum's vacuum threshold
    (50 rows and a fifth of the table) vacuumed, as autovacuum would. Every state change leaves
    a dead row, and its entry in the partial index of open requests, until a vacuum: with
    autovacuum off, MDM's claim read some 6,800 index entries a batch after 500,000 requests had
    been synchronized, and the store's counts (``state_count``, a few hundred live rows) lay
    among 680,000 dead ones."""
    if store.dialect != "postgres":
        return
    import psycopg

    from ccbmdm.runtime.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    tables = _tables(store, " AND s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)")
    connection = store.connection()  # outside a transaction: VACUUM cannot run in one
    for table in tables:
        try:
            connection.execute(f'VACUUM "{table}"')
        except psycopg.Error as exc:
            reason = store.described(exc)
            raise StoreError(f"cannot vacuum {table} in {store.where}: {reason}") from None


def _tables(store: Store, condition: str) -> list[str]:
    """The names of the demo schema's tables whose statistics meet ``condition`` (SQL over
    ``pg_stat_user_tables s`` and ``pg_class c``), by name."""
    with store.transaction() as tx:
        return [
            str(row["relname"])
            for row in tx.fetch(
                f"""SELECT s.relname FROM pg_stat_user_tables s
                    JOIN pg_class c ON c.oid = s.relid
                    WHERE s.schemaname = current_schema(){condition} ORDER BY s.relname"""
            )
        ]


def rate_check(runtime: Runtime, customer: Customer, plan: Plan) -> str:
    """What the customer's billing month would have been on the other rate (flow 15, answered
    inline through the bridge)."""
    from ccbmdm.runtime.sim.ccb.calls import CallFailed, CcbCalls

    other = "RES-TOU" if customer.commercial else "COM-DEM"
    start, end = _midnight(plan.month), _midnight(plan.month + timedelta(days=31))
    try:
        reply = CcbCalls(runtime.nodes["ccb"]).rate_check(customer.sa_id, other, start, end)
    except CallFailed as exc:
        return f"no answer: {exc}"
    (item,) = reply.response  # type: ignore[attr-defined]
    if item.result.has_error:
        return f"SA {customer.sa_id} on {other}: " + "; ".join(
            f"{i.message_category}/{i.message_number} {i.comments or ''}".strip()
            for i in item.result.exception_info
        )
    quantities = [
        " ".join(str(part) for part in (sq.quantity, sq.uom, sq.tou, sq.sqi) if part is not None)
        for period in item.periods
        for sq in period.service_quantities
    ]
    return f"SA {customer.sa_id} on {other}: " + (", ".join(quantities) or "no usage")


def drain(
    runtime: Runtime,
    table: str,
    total: int,
    advance: Callable[[int], None],
    workers: int = 1,
    keys: Mapping[str, str] | None = None,
    patience_s: float = DEMO_DELIVERY.lease_s,
) -> None:
    """Run the workers' rounds until nothing is due, advancing as the ``total`` requests of
    ``table`` end (its rows of ``keys``' node, flow and part, when given). With ``workers``
    above 1, ``workers - 1`` worker processes share the work until all of them have ended, or
    until for ``patience_s`` none has ended and this process's rounds found nothing to move
    (what is left waits for something else); this process's rounds then move what is left.

    Rounds that move work count as progress even when no request ends: a billing run sends all
    its requests before the first determinants come back, which at 100,000 customers took longer
    than a lease, and the helpers were stopped while every request was still on its way."""
    worker = runtime.worker(batch=200)
    progress = _Progress(runtime.store, table, advance, keys or {})
    with _Upkeep(runtime.store):
        if workers > 1:
            with helpers(runtime, workers - 1):
                last_move = clock.monotonic()
                while progress.done < total and clock.monotonic() - last_move < patience_s:
                    moved = worker.round()
                    ended = progress.counted()
                    if moved or ended:
                        last_move = clock.monotonic()
                    if moved == 0:
                        clock.sleep(DEMO_DELIVERY.poll_interval_s)
        while True:
            moved = worker.round()
            progress.counted()
            if moved == 0:
                return


class _Upkeep:
    """Autovacuum's work on the tables a phase changes, done while it drains, once a second:
    their dead rows vacuumed and their statistics refreshed (the tables the phase fills, MDM's
    and the outboxes, grow from nothing as it runs). It runs in a thread of its own, on its own
    connection, beside this process's rounds, as autovacuum runs beside a server's sessions: in
    the rounds' thread, the rounds stopped for as long as a vacuum ran (12% of the initial
    sync's time at 2,000 customers, in one process). A failure stops it, and is raised when the
    phase ends."""

    INTERVAL_S = 1.0

    def __init__(self, store: Store) -> None:
        self.store = store
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: Exception | None = None

    def __enter__(self) -> _Upkeep:
        if self.store.dialect == "postgres":
            self._thread = threading.Thread(target=self._run, name="demo-upkeep", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._failure is not None and kind is None:
            raise self._failure

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.INTERVAL_S):
                vacuum_dead(self.store)
                refresh_statistics(self.store, changed_only=True)
        except Exception as failure:  # raised in the phase's thread when it ends
            self._failure = failure
        finally:
            self.store.close()  # this thread's connection


class _Progress:
    """The requests of a table that ended since it was made: those in the states the store
    keeps counted as rows settle (``state_count``, runtime.store.counts) and those in Error,
    so that a count costs the same however many requests are open or ended (a count of the
    open ones, once per round, read a large load's open requests once per batch)."""

    def __init__(
        self,
        store: Store,
        table: str,
        advance: Callable[[int], None],
        keys: Mapping[str, str],
    ) -> None:
        (counted,) = [c for c in COUNTED if c.table == table]
        self.store, self.table, self.advance, self.keys = store, table, advance, dict(keys)
        self.settled = counted.kept_sql()
        self.of_keys = "".join(f" AND {key} = :{key}" for key in self.keys)
        # Error counted where it is an open state, read through its partial index (a table
        # without one, the inbox, has no Error to count)
        self.errors = counted.holds_open("ERROR")
        self.start = self._ended()
        self.done = 0

    def counted(self) -> bool:
        """Count; whether more requests ended since the last count."""
        done = self._ended() - self.start
        if done <= self.done:
            return False
        self.advance(done - self.done)
        self.done = done
        return True

    def _ended(self) -> int:
        with self.store.transaction() as tx:
            settled = tx.fetch_one(
                f"""SELECT coalesce(sum(present), 0) AS n FROM state_count
                    WHERE lifecycle = :table AND state IN {self.settled}{self.of_keys}""",
                {"table": self.table, **self.keys},
            )
            errors = (
                tx.fetch_one(
                    f"SELECT count(*) AS n FROM {self.table} WHERE state = 'ERROR'{self.of_keys}",
                    self.keys,
                )
                if self.errors
                else None
            )
        return sum(int(row["n"]) for row in (settled, errors) if row is not None)


@contextmanager
def helpers(runtime: Runtime, count: int) -> Iterator[None]:
    """``count`` worker processes of ``runtime`` while the block runs, as ``monitor --workers``
    starts them; stopped (each finishing its batch) when it ends."""
    from ccbmdm.runtime.supervisor import Supervisor

    stop = threading.Event()
    supervisor = Supervisor(runtime.config, runtime.project.root, count, batch=200)
    supervisor.start(stop)
    try:
        yield
    finally:
        stop.set()
        supervisor.wait()


def summarize(store: Store, report: Report) -> None:
    """Messages per flow, requests per state and every Error, read from the store."""
    with store.transaction() as tx:
        for row in tx.fetch(
            "SELECT flow, part, count(*) AS n FROM outbox WHERE node = 'bridge' "
            "GROUP BY flow, part ORDER BY flow, part"
        ):
            report.messages[(str(row["flow"]), str(row["part"]))] = int(row["n"])
        for machine in ("sync_request", "usage_request"):
            for row in tx.fetch(f"SELECT state, count(*) AS n FROM {machine} GROUP BY state"):
                report.requests[(machine, str(row["state"]))] = int(row["n"])
        report.errors += [
            ("sync request", f"{r['mo']} {r['pk']}", str(r["reason"]))
            for r in tx.fetch(
                "SELECT mo, pk, reason FROM sync_request WHERE state = 'ERROR' ORDER BY id"
            )
        ]
        report.errors += [
            ("usage request", f"SA {r['sa_id']}", str(r["reason"]))
            for r in tx.fetch(
                "SELECT sa_id, reason FROM usage_request WHERE state = 'ERROR' ORDER BY id"
            )
        ]
        for row in tx.fetch(
            "SELECT status, count(*) AS n FROM ccb_bill_segment "
            "WHERE reason IS NULL OR reason <> 'converted' GROUP BY status"
        ):
            report.bills[f"segments {str(row['status']).lower()}"] = int(row["n"])
        bills = tx.fetch_one("SELECT count(*) AS n FROM ccb_bill")
        report.bills["bills completed"] = int(bills["n"]) if bills else 0


def _midnight(day: date, hour: int = 0) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=ZoneInfo(ZONE))


def fresh_store(dsn: str) -> str:
    """The demo starts from an empty store: an earlier run's SQLite file is removed first; in
    a PostgreSQL database it makes a schema of its own, named by the time. Returns the DSN of
    the store it will use."""
    if is_postgres(dsn):
        return _fresh_schema(dsn)
    path = Path(dsn.removeprefix("sqlite:///"))
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def _fresh_schema(dsn: str) -> str:
    import psycopg

    from ccbmdm.runtime.store.postgres import PostgresStore

    schema = f"ccbmdm_demo_{clock.strftime('%Y%m%d%H%M%S')}"
    admin = PostgresStore(dsn)
    try:
        with admin.transaction() as tx:
            tx.execute(f"CREATE SCHEMA {schema}")
    except psycopg.Error as exc:
        reason = admin.described(exc)
        raise StoreError(f"cannot create the demo's schema in {admin.where}: {reason}") from None
    finally:
        admin.close()
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options=-csearch_path%3D{schema}"
