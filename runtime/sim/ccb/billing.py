"""The reference CCB's billing: bill segments made from MDM's bill determinants.

A billing run for a bill cycle's window creates, per service agreement that needs bill
determinants, a segment awaiting usage and its batch usage request (docs/flows.md §11, PD-F11);
online billing does the same for one account at once (§12). When the determinants are processed the
segment gets one service quantity per usage period and UOM/TOU/SQI (docs/determinants.md PD-D15),
priced with the rate in force at the period's start, and becomes Freezable. Completing a bill
freezes its segments and tells MDM they were used on a bill; cancelling a frozen segment tells
MDM they no longer are (flow 16, PD-F17); freezing alone sends nothing.

Decisions:
- The reference rates (``RATES``): ``RES-TOU`` has a fixed charge and an energy charge per TOU
  period; ``COM-DEM`` a fixed charge, a flat energy charge and a charge per billed kW. A segment's
  fixed charge is prorated by its days over 30.
- A segment runs from the end of the SA's last segment that was not cancelled (its start when it
  has none) to the end MDM chose inside the cutoff window (PD-D04).
- Bill and segment ids are the store's row ids, ten digits with leading zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from ccbmdm.runtime.lifecycles.usage import UsageRequest, request_usage
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.header import message_header
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import Outbox
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.base import Row
from ccbmdm.runtime.store.schema import migrate

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE ccb_bill_segment (
         id {id}, sa_id text NOT NULL, account_id text NOT NULL, bill_id bigint,
         start_date_time text NOT NULL, end_date_time text, status text NOT NULL,
         end_from text NOT NULL, end_to text NOT NULL, bill_cycle text, window_start text,
         usage_request_id bigint, usage_id text, rebill_of bigint, reason text,
         amount text, created_at {ts} NOT NULL,
         CHECK (status IN ('PENDING','FREEZABLE','FROZEN','PENDING_CANCEL','CANCELED','ERROR')))""",
        "CREATE INDEX ccb_bill_segment_sa ON ccb_bill_segment (sa_id, id)",
        """CREATE TABLE ccb_service_quantity (
         segment_id bigint NOT NULL, seq integer NOT NULL, period_start text NOT NULL,
         period_end text NOT NULL, uom text NOT NULL, tou text, sqi text, quantity text NOT NULL,
         quality text NOT NULL, value_count integer NOT NULL, estimated_count integer NOT NULL,
         edited_count integer NOT NULL, PRIMARY KEY (segment_id, seq))""",
        """CREATE TABLE ccb_bill_line (
         segment_id bigint NOT NULL, seq integer NOT NULL, description text NOT NULL,
         quantity text NOT NULL, rate text NOT NULL, amount text NOT NULL,
         PRIMARY KEY (segment_id, seq))""",
        """CREATE TABLE ccb_bill (
         id {id}, account_id text NOT NULL, status text NOT NULL, amount text NOT NULL,
         completed_at {ts}, CHECK (status IN ('PENDING','COMPLETE')))""",
        """CREATE TABLE ccb_sa_characteristic (
         sa_id text NOT NULL, type text NOT NULL, value text NOT NULL,
         PRIMARY KEY (sa_id, type))""",
    ),
)

NEXT_READ = "MDM Next Scheduled Read Date"  # the SA characteristic a skip answer sets
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Rate:
    fixed: Decimal  # per 30 days
    energy: Mapping[str | None, Decimal]  # per kWh, by CCB TOU code (None: untimed)
    demand: Decimal = Decimal(0)  # per billed kW


RATES: Mapping[str, Rate] = {
    "RES-TOU": Rate(Decimal("9.50"), {"ON-PEAK": Decimal("0.3120"), "OFF-PEAK": Decimal("0.1480")}),
    "COM-DEM": Rate(Decimal("35.00"), {None: Decimal("0.1090")}, Decimal("14.25")),
}


@dataclass(frozen=True)
class Segment:
    id: int
    sa_id: str
    account_id: str
    status: str
    start: str
    end: str | None
    usage_request_id: int | None
    usage_id: str | None
    amount: str | None
    reason: str | None
    end_from: datetime
    end_to: datetime
    bill_cycle: str | None
    window_start: str | None
    rebill_of: int | None

    @property
    def external_id(self) -> str:
        return str(self.id).zfill(10)


class Rebills(Protocol):
    """Told when a rebill's determinants were processed or it failed (the corrected reads)."""

    def rebilled(self, tx: Transaction, old_segment: int, new_segment: int) -> None: ...

    def rebill_failed(self, tx: Transaction, old_segment: int, reason: str) -> None: ...


class MasterData(Protocol):
    """What billing reads of CCB's master data (``simulator.CcbSimulator``)."""

    @property
    def store(self) -> Store: ...
    def record(self, tx: Transaction, mo: str, key: Sequence[str]) -> dict[str, Any] | None: ...
    def records(self, tx: Transaction, mo: str, ref: str | None = None) -> list[dict[str, Any]]: ...
    def records_each(
        self, tx: Transaction, asks: Sequence[tuple[str, str | None]]
    ) -> list[list[dict[str, Any]]]: ...
    def read(self, tx: Transaction, mo: str, key: tuple[str, ...]) -> Mapping[str, Any] | None: ...
    def snapshot(
        self, tx: Transaction, mo: str, record: dict[str, Any] | None
    ) -> Mapping[str, Any] | None: ...


class Billing:
    """CCB's billing, the ``Billing`` side of usage requests (``runtime.lifecycles.usage``)."""

    def __init__(
        self,
        ccb: MasterData,
        contracts: ContractRegistry,
        outbox: Outbox,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ccb = ccb
        self.clock = clock or (lambda: datetime.now(UTC))
        self.contracts = contracts
        self.outbox = outbox
        migrate(ccb.store, MIGRATIONS, "ccb_billing_schema_version")
        self.rebills: Rebills | None = None  # told when a rebill ends (corrected reads)

    # -- billing runs --------------------------------------------------------------------

    def billing_run(self, tx: Transaction, bill_cycle: str, window_start: date) -> list[int]:
        """Create a segment and a batch usage request per SA that needs bill determinants in
        the accounts of ``bill_cycle``, for its window starting ``window_start``."""
        cycle = self.ccb.record(tx, "BILL CYCLE", (bill_cycle,))
        if cycle is None:
            raise LookupError(f"no bill cycle {bill_cycle}")
        entry = next(
            (e for e in cycle["schedule"] if e["window_start_date"] == window_start.isoformat()),
            None,
        )
        if entry is None:
            raise LookupError(f"bill cycle {bill_cycle} has no window starting {window_start}")
        window_end = date.fromisoformat(entry["window_end_date"])
        estimate = date.fromisoformat(entry["estimate_date"])
        segments = []
        accounts = tx.fetch(
            "SELECT account_id FROM ccb_account WHERE bill_cycle = :cycle ORDER BY account_id",
            {"cycle": bill_cycle},
        )
        for row in accounts:
            for sa in self._billable(tx, str(row["account_id"])):
                zone = str(sa["time_zone"])
                segment = self._segment(
                    tx,
                    sa,
                    "BATCH_BD",
                    end_from=_midnight(window_start, zone),
                    end_to=_midnight(window_end + timedelta(days=1), zone),
                    window_end=_midnight(window_end + timedelta(days=1), zone),
                    estimate=_midnight(estimate, zone),
                    window=(bill_cycle, window_start),
                )
                if segment is not None:
                    segments.append(segment)
        return segments

    def bill_online(self, tx: Transaction, account_id: str, end: date) -> list[int]:
        """Online billing of one account up to ``end`` (PD-F13): sent at once."""
        segments = []
        for sa in self._billable(tx, account_id):
            zone = str(sa["time_zone"])
            start, stop = _midnight(end, zone), _midnight(end + timedelta(days=1), zone)
            segment = self._segment(tx, sa, "ONLINE_BD", end_from=start, end_to=stop)
            if segment is not None:
                segments.append(segment)
        return segments

    def _billable(self, tx: Transaction, account_id: str) -> Iterable[Mapping[str, Any]]:
        """The account's active SAs that need bill determinants, as CCB sends them to MDM
        (with their time zone), from the records read once."""
        for sa in self.ccb.records(tx, "SA", ref=account_id):
            if sa["sa_status"] in ("ACTIVE", "PENDSTOP"):
                snapshot = self.ccb.snapshot(tx, "SA", sa)
                if snapshot is not None:
                    yield snapshot

    def _segment(
        self,
        tx: Transaction,
        sa: Mapping[str, Any],
        flow: str,
        *,
        end_from: datetime,
        end_to: datetime,
        window_end: datetime | None = None,
        estimate: datetime | None = None,
        window: tuple[str, date] | None = None,
    ) -> int | None:
        """A segment awaiting usage and its usage request; None when the SA is skipped (a
        segment still awaiting its usage, or a summary-billing skip date still ahead). What
        decides it, and where the segment starts, is read in one round trip."""
        key = {"sa": sa["sa_id"]}
        skip_date, pending, last = tx.fetch_each(
            [
                (
                    "SELECT value FROM ccb_sa_characteristic WHERE sa_id = :sa AND type = :type",
                    {**key, "type": NEXT_READ},
                ),
                ("SELECT id FROM ccb_bill_segment WHERE sa_id = :sa AND status = 'PENDING'", key),
                (
                    "SELECT end_date_time FROM ccb_bill_segment WHERE sa_id = :sa "
                    "AND status NOT IN ('CANCELED','ERROR') AND end_date_time IS NOT NULL "
                    "ORDER BY id DESC LIMIT 1",
                    key,
                ),
            ]
        )
        skipped = bool(skip_date) and date.fromisoformat(str(skip_date[0]["value"])) > end_to.date()
        if skipped or pending:
            return None
        # the end of the SA's last segment, else its start date's midnight in its zone
        start = (
            str(last[0]["end_date_time"])
            if last
            else _midnight(date.fromisoformat(sa["start_date"]), str(sa["time_zone"])).isoformat()
        )
        return self._open_segment(
            tx,
            sa,
            flow,
            start=start,
            end_from=end_from,
            end_to=end_to,
            window_end=window_end,
            estimate=estimate,
            window=window,
        )

    def rebill(self, tx: Transaction, old: Segment) -> int | None:
        """A new segment for the period of a frozen one, requested online with the old usage
        as ``previousUsageId`` (a cancel/rebill, lifecycles §5); the old one is Pending Cancel
        until the new one's determinants are processed."""
        sa = self.ccb.record(tx, "SA", (old.sa_id,))
        if sa is None or old.end is None:
            return None
        end = datetime.fromisoformat(old.end)
        new = self._open_segment(
            tx,
            sa,
            "ONLINE_BD",
            start=old.start,
            end_from=end,
            end_to=end,
            previous_usage_id=old.usage_id,
            rebill_of=old.id,
        )
        if new is not None:
            tx.send(
                "UPDATE ccb_bill_segment SET status = 'PENDING_CANCEL' WHERE id = :id",
                {"id": old.id},
            )
        return new

    def _open_segment(
        self,
        tx: Transaction,
        sa: Mapping[str, Any],
        flow: str,
        *,
        start: str,
        end_from: datetime,
        end_to: datetime,
        window_end: datetime | None = None,
        estimate: datetime | None = None,
        window: tuple[str, date] | None = None,
        previous_usage_id: str | None = None,
        rebill_of: int | None = None,
    ) -> int | None:
        row = tx.fetch_one(
            f"""INSERT INTO ccb_bill_segment (sa_id, account_id, start_date_time, status,
                  end_from, end_to, bill_cycle, window_start, rebill_of, created_at)
                VALUES (:sa, :account, :start, 'PENDING', :end_from, :end_to, :cycle, :window,
                  :rebill_of, {tx.now}) RETURNING id""",
            {
                "sa": sa["sa_id"],
                "account": sa["account_id"],
                "start": start,
                "end_from": end_from.isoformat(),
                "end_to": end_to.isoformat(),
                "cycle": window[0] if window else None,
                "window": window[1].isoformat() if window else None,
                "rebill_of": rebill_of,
            },
        )
        assert row is not None
        segment_id = int(row["id"])
        request_id = request_usage(
            tx,
            flow,
            sa["sa_id"],
            str(segment_id).zfill(10),
            window_end=window_end,
            end_date_time_to=end_to if flow == "BATCH_BD" else None,
            estimate_date=estimate,
            previous_usage_id=previous_usage_id,
        )
        if request_id is None:  # the duplicate guard
            tx.send("DELETE FROM ccb_bill_segment WHERE id = :id", {"id": segment_id})
            return None
        tx.send(
            "UPDATE ccb_bill_segment SET usage_request_id = :request WHERE id = :id",
            {"request": request_id, "id": segment_id},
        )
        return segment_id

    def convert_history(
        self, tx: Transaction, sa_id: str, account_id: str, start: datetime, end: datetime
    ) -> None:
        """An SA's billing before go-live, converted: one frozen segment ending at ``end``, so
        the first billing run starts there (docs/flows.md PD-F11: the previous segment's end)."""
        self.convert_histories(tx, [(sa_id, account_id)], start, end)

    def convert_histories(
        self, tx: Transaction, sas: Sequence[tuple[str, str]], start: datetime, end: datetime
    ) -> None:
        """``convert_history`` of each (SA id, account id), in one statement."""
        tx.execute_many(
            f"""INSERT INTO ccb_bill_segment (sa_id, account_id, start_date_time, end_date_time,
                  status, end_from, end_to, reason, created_at)
                VALUES (:sa, :account, :start, :end, 'FROZEN', :end, :end, 'converted',
                  {tx.now})""",
            [
                {"sa": sa, "account": account, "start": start.isoformat(), "end": end.isoformat()}
                for sa, account in sas
            ],
        )

    # -- the Billing protocol ------------------------------------------------------------

    def related_keys(self, tx: Transaction, sa_id: str) -> Iterable[tuple[str, tuple[str, ...]]]:
        """The SA, its SPs and their meter history, its SA relationships, its options and their
        events (PD-L07)."""
        sa = self.ccb.record(tx, "SA", (sa_id,))
        if sa is None:
            return []
        keys: list[tuple[str, tuple[str, ...]]] = [("SA", (sa_id,))]
        links = sa.get("sp_links") or ()
        *histories, relationships, options = self.ccb.records_each(
            tx,
            [
                *(("SP MTR HIST", link["sp_id"]) for link in links),
                ("SA REL", sa_id),
                ("CONTRACT OPT", None),
            ],
        )
        for link, meter_history in zip(links, histories, strict=True):
            keys.append(("SP", (link["sp_id"],)))
            for history in meter_history:
                keys.append(("SP MTR HIST", (history["sp_meter_history_id"],)))
        for relationship in relationships:
            keys.append(("SA REL", (relationship["sa_relationship_id"],)))
        for option in options:
            if any(link["sa_id"] == sa_id for link in option.get("sa_links") or ()):
                keys.append(("CONTRACT OPT", (option["contract_option_id"],)))
                for event in self.ccb.records(
                    tx, "CONTR OPT EVT", ref=option["contract_option_id"]
                ):
                    keys.append(("CONTR OPT EVT", (event["contract_option_event_id"],)))
        return keys

    def build_request(self, tx: Transaction, request: UsageRequest) -> ContractModel:
        segment_id = int(request.bill_segment_id)
        found, previous = tx.fetch_each(
            [
                (_SEGMENT, {"id": segment_id}),
                (
                    "SELECT count(*) AS n FROM ccb_bill_segment WHERE sa_id = :sa AND id < :id "
                    "AND status NOT IN ('CANCELED','ERROR')",
                    {"sa": request.sa_id, "id": segment_id},
                ),
            ]
        )
        if not found:
            raise ValueError(f"usage request {request.id}: no segment {request.bill_segment_id}")
        segment = _segment_from(found[0])
        record = self.ccb.record(tx, "SA", (request.sa_id,))
        if record is None:
            raise ValueError(f"SA {request.sa_id} no longer exists")
        sa = self.ccb.snapshot(tx, "SA", record)
        if sa is None:
            raise ValueError(f"SA {request.sa_id} needs no bill determinants")
        zone = str(sa["time_zone"])
        end_from, end_to = segment.end_from, segment.end_to
        first = int(previous[0]["n"]) == 0
        start = datetime.fromisoformat(segment.start)
        breaks = [
            {
                "date_time": _midnight(date.fromisoformat(r["effective_date"]), zone),
                "reason": "RATE",
            }
            for r in sa["rate_history"]
            if start < _midnight(date.fromisoformat(r["effective_date"]), zone) < end_to
        ]
        details: dict[str, Any] = {
            "usage_id": request.external_id,
            "previous_usage_id": request.previous_usage_id,
            "sa_id": request.sa_id,
            "start_date_time": start,
            "end_date_time_from": end_from,
            "end_date_time_to": end_to,
            "bill_condition": "D2IL" if first else "D2IM",
            "date_breaks": breaks,
            "include_interval_data": False,
        }
        if segment.bill_cycle is not None:
            details |= {"bill_cycle": segment.bill_cycle, "window_start_date": segment.window_start}
        return self.contracts["ccb/BillDeterminantsRequest"].model.model_validate(
            {"message_header": message_header(request.flow, "CCB", "MDM"), "send_details": details}
        )

    def apply(self, tx: Transaction, request: UsageRequest, response: ContractModel) -> None:
        """The determinants become the segment's service quantities and its bill lines."""
        segment = self._segment_of(tx, request)
        skip = getattr(response, "skip", None)
        if skip is not None and skip.skip_indicator:
            tx.send(
                """INSERT INTO ccb_sa_characteristic (sa_id, type, value)
                   VALUES (:sa, :type, :value)
                   ON CONFLICT (sa_id, type) DO UPDATE SET value = excluded.value""",
                {
                    "sa": request.sa_id,
                    "type": NEXT_READ,
                    "value": str(skip.next_scheduled_read_date),
                },
            )
            self._close(tx, segment.id, "CANCELED", f"skipped: {skip.skip_reason}")
            if segment.rebill_of is not None and self.rebills is not None:
                self.rebills.rebill_failed(tx, segment.rebill_of, "rebill skipped by MDM")
            return
        sa = self.ccb.record(tx, "SA", (request.sa_id,))
        assert sa is not None
        periods = list(response.periods)  # type: ignore[attr-defined]
        quantities, lines = [], []
        for period in periods:
            rate = RATES[_rate_at(sa, period.start_date_time.date())]
            for sq in period.service_quantities:
                quantities.append((period, sq))
                lines += _charges(rate, sq)
        days = Decimal(calendar_days(periods[0].start_date_time, periods[-1].end_date_time) or 1)
        first_rate = RATES[_rate_at(sa, periods[0].start_date_time.date())]
        per_day = (first_rate.fixed / 30).quantize(Decimal("0.0001"), ROUND_HALF_UP)
        lines.insert(0, ("fixed charge, days", days, per_day))
        for seq, (period, sq) in enumerate(quantities):
            tx.send(
                """INSERT INTO ccb_service_quantity (segment_id, seq, period_start, period_end, uom,
                     tou, sqi, quantity, quality, value_count, estimated_count, edited_count)
                   VALUES (:segment, :seq, :start, :end, :uom, :tou, :sqi, :quantity, :quality,
                     :values, :estimated, :edited)""",
                {
                    "segment": segment.id,
                    "seq": seq,
                    "start": period.start_date_time.isoformat(),
                    "end": period.end_date_time.isoformat(),
                    "uom": sq.uom,
                    "tou": sq.tou,
                    "sqi": sq.sqi,
                    "quantity": str(sq.quantity),
                    "quality": sq.quality,
                    "values": sq.value_count,
                    "estimated": sq.estimated_count,
                    "edited": sq.edited_count,
                },
            )
        total = Decimal(0)
        for seq, (description, quantity, price) in enumerate(lines):
            amount = (quantity * price).quantize(CENT, ROUND_HALF_UP)
            total += amount
            tx.send(
                """INSERT INTO ccb_bill_line (segment_id, seq, description, quantity, rate, amount)
                   VALUES (:segment, :seq, :description, :quantity, :rate, :amount)""",
                {
                    "segment": segment.id,
                    "seq": seq,
                    "description": description,
                    "quantity": str(quantity),
                    "rate": str(price),
                    "amount": str(amount),
                },
            )
        tx.send(
            """UPDATE ccb_bill_segment SET status = 'FREEZABLE', end_date_time = :end,
                 usage_id = :usage, amount = :amount WHERE id = :id""",
            {
                "end": periods[-1].end_date_time.isoformat(),
                "usage": request.external_id,
                "amount": str(total),
                "id": segment.id,
            },
        )
        if segment.rebill_of is not None and self.rebills is not None:
            self.rebills.rebilled(tx, segment.rebill_of, segment.id)

    def report_error(self, tx: Transaction, request: UsageRequest, reason: str) -> None:
        """The segment stays in Error with MDM's reason: a To Do for batch, the user online."""
        segment = self._segment_of(tx, request)
        self._close(tx, segment.id, "ERROR", reason)
        if segment.rebill_of is not None and self.rebills is not None:
            self.rebills.rebill_failed(tx, segment.rebill_of, reason)

    # -- bills -----------------------------------------------------------------------------

    def complete_bills(self, tx: Transaction, account_ids: Iterable[str] | None = None) -> int:
        """Freeze every freezable segment and complete a bill per account; MDM is told the
        segments' usage was used on a bill. Returns the bills completed."""
        rows = tx.fetch(
            "SELECT * FROM ccb_bill_segment WHERE status = 'FREEZABLE' ORDER BY account_id, id"
        )
        chosen = None if account_ids is None else set(account_ids)
        by_account: dict[str, list[Any]] = {}
        for row in rows:
            if chosen is None or row["account_id"] in chosen:
                by_account.setdefault(str(row["account_id"]), []).append(row)
        for account_id, segments in by_account.items():
            total = sum((Decimal(s["amount"]) for s in segments), Decimal(0))
            bill = tx.fetch_one(
                f"""INSERT INTO ccb_bill (account_id, status, amount, completed_at)
                    VALUES (:account, 'COMPLETE', :amount, {tx.now}) RETURNING id""",
                {"account": account_id, "amount": str(total)},
            )
            assert bill is not None
            tx.send(
                "UPDATE ccb_bill_segment SET status = 'FROZEN', bill_id = :bill WHERE id IN ("
                + ",".join(str(int(s["id"])) for s in segments)
                + ")",
                {"bill": bill["id"]},
            )
            self._used_on_bill(tx, str(bill["id"]).zfill(10), segments, True)
        return len(by_account)

    def cancel_segment(self, tx: Transaction, segment_id: int, reason: str) -> None:
        """Cancel a frozen segment: MDM is told its usage is no longer on a bill."""
        row = tx.fetch_one("SELECT * FROM ccb_bill_segment WHERE id = :id", {"id": segment_id})
        if row is None or row["status"] not in ("FROZEN", "PENDING_CANCEL"):
            raise ValueError(f"segment {segment_id} is not frozen")
        self._close(tx, segment_id, "CANCELED", reason)
        bill = str(row["bill_id"]).zfill(10) if row["bill_id"] is not None else "0000000000"
        self._used_on_bill(tx, bill, [row], False)

    def _used_on_bill(self, tx: Transaction, bill_id: str, segments: list[Any], used: bool) -> None:
        items = [
            {
                "bill_segment_id": str(s["id"]).zfill(10),
                "usage_id": s["usage_id"],
                "used_on_bill": used,
                "event_date_time": self.clock().replace(microsecond=0),
            }
            for s in segments
            if s["usage_id"] is not None
        ]
        if not items:
            return
        codec = self.contracts["ccb/UsageTransactionInfoUpdate"]
        header = message_header("UT_INFO_UPDATE", "CCB", "MDM")
        message = codec.model.model_validate(
            {"message_header": header, "bill_id": bill_id, "items": items}
        )
        self.outbox.enqueue(
            tx,
            "bridge",
            "UT_INFO_UPDATE",
            "request",
            header["message_id"],
            codec.encode(message),
            reply_timeout_s=86400.0,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _segment_of(self, tx: Transaction, request: UsageRequest) -> Segment:
        found = self.segment(tx, int(request.bill_segment_id))
        if found is None:
            raise ValueError(f"usage request {request.id}: no segment {request.bill_segment_id}")
        return found

    def segment(self, tx: Transaction, segment_id: int) -> Segment | None:
        row = tx.fetch_one(_SEGMENT, {"id": segment_id})
        return None if row is None else _segment_from(row)

    def _close(self, tx: Transaction, segment_id: int, status: str, reason: str) -> None:
        tx.send(
            "UPDATE ccb_bill_segment SET status = :status, reason = :reason WHERE id = :id",
            {"status": status, "reason": reason[:1000], "id": segment_id},
        )


_SEGMENT = "SELECT * FROM ccb_bill_segment WHERE id = :id"


def _segment_from(row: Row) -> Segment:
    """A segment as its row holds it."""
    return Segment(
        id=int(row["id"]),
        sa_id=row["sa_id"],
        account_id=row["account_id"],
        status=row["status"],
        start=row["start_date_time"],
        end=row["end_date_time"],
        usage_request_id=row["usage_request_id"],
        usage_id=row["usage_id"],
        amount=row["amount"],
        reason=row["reason"],
        end_from=datetime.fromisoformat(row["end_from"]),
        end_to=datetime.fromisoformat(row["end_to"]),
        bill_cycle=row["bill_cycle"],
        window_start=row["window_start"],
        rebill_of=row["rebill_of"],
    )


def _charges(rate: Rate, sq: Any) -> list[tuple[str, Decimal, Decimal]]:
    """The bill lines of one service quantity under a rate."""
    quantity = Decimal(str(sq.quantity))
    if sq.uom == "KWH" and sq.sqi in (None, "NET", "DEL"):
        price = rate.energy.get(sq.tou)
        if price is not None:
            return [(f"energy {sq.tou or 'all hours'}", quantity, price)]
    if sq.uom == "KW" and sq.sqi == "BILLDMD" and rate.demand:
        return [("demand charge", quantity, rate.demand)]
    return []


def calendar_days(start: datetime, end: datetime) -> int:
    """The calendar days of a period in legal time (docs/determinants.md §2): a month spanning the
    spring change is 31 days though it lasts 743 hours. ``start`` and ``end`` carry the SP's
    legal offsets, as MDM sends them."""
    return (end.date() - start.date()).days


def _rate_at(sa: Mapping[str, Any], day: date) -> str:
    """The rate schedule in force on ``day`` (the last one effective by then)."""
    history = sorted(sa["rate_history"], key=lambda r: r["effective_date"])
    current = history[0]["rate_schedule"]
    for entry in history:
        if date.fromisoformat(entry["effective_date"]) <= day:
            current = entry["rate_schedule"]
    return str(current)


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone))
