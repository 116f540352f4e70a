"""The business events a flow case is written in, each a call of a reference simulator's own API.

A flow case's ``given`` and ``when`` are lists of steps, one action each, written
``- <action>: {arguments}``. The actions are the simulators' operations a user of CCB or MDM
would perform (save a record, run billing, correct a read, move a measurement cycle, ask MDM
something); each step is followed by the workers' rounds until nothing moves, so the next step
sees everything the last one caused. Adding an action is adding a function here and a line in
``ACTIONS``; docs/conformance.md lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ccbmdm.conformance.interval_profile import profile_values
from ccbmdm.runtime.assembly import Runtime
from ccbmdm.runtime.lifecycles.sync import KEY_SEPARATOR
from ccbmdm.runtime.messages.lexical import configured_datetime
from ccbmdm.runtime.messaging.transport import Posting, TransportError
from ccbmdm.runtime.operations import resubmit
from ccbmdm.runtime.sim.ccb.records import Account
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.demo import convert_bills
from ccbmdm.runtime.sim.mdm.bill_cycle_change import change_measurement_cycle
from ccbmdm.runtime.sim.mdm.measurements import (
    codes_text,
    epoch,
    generate_interval_data,
)
from ccbmdm.runtime.sim.mdm.records import production_id
from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator
from ccbmdm.runtime.sim.synthetic import Plan, generate
from ccbmdm.runtime.store import Transaction


class StepFailed(Exception):
    """A step could not be carried out: its arguments are wrong, or the simulator refused."""


class Unsettled(Exception):
    """The nodes were still busy when the case's time ran out."""


@dataclass
class World:
    """The runtime of one flow case and the two simulators in it."""

    runtime: Runtime
    folder: Path  # the case's folder: a step's message files are read from it

    @property
    def ccb(self) -> CcbSimulator:
        system = self.runtime.systems["ccb"]
        assert isinstance(system, CcbSimulator)
        return system

    @property
    def mdm(self) -> MdmSimulator:
        system = self.runtime.systems["mdm"]
        assert isinstance(system, MdmSimulator)
        return system

    def settle(self, deadline: float) -> None:
        """The workers' rounds until two in a row move nothing (one round can wake work the
        next picks up), or ``Unsettled`` at ``deadline`` (time.monotonic)."""
        worker = self.runtime.worker()
        quiet = 0
        while quiet < 2:
            quiet = quiet + 1 if worker.round() == 0 else 0
            if time.monotonic() > deadline:
                raise Unsettled("the nodes were still busy when the case's time limit passed")


# -- the actions -----------------------------------------------------------------------------


def ccb_generate(
    world: World, customers: int, seed: int, month: date, converted: bool = True
) -> None:
    """A synthetic utility in CCB (the generator the demo uses): ``customers`` customers with
    their premises, SPs, SAs, meters and bill cycles; ``converted``: entered before go-live,
    so nothing is captured, and billed up to ``month``."""
    made = generate(
        world.ccb, Plan(customers=customers, month=month, seed=seed), converted=converted
    )
    if converted:
        convert_bills(world.ccb, made, month)


def ccb_initial_load(world: World) -> None:
    """Go-live: every entity CCB holds is captured as an add, in load order."""
    world.ccb.initial_load()


def ccb_save(world: World, mo: str, record: Mapping[str, Any], captured: bool = True) -> None:
    """Add or replace one record of a maintenance object; ``captured``: the change is captured
    for synchronization, as CCB's audit does for a user's change."""
    with world.ccb.store.transaction() as tx:
        world.ccb.save(tx, mo, dict(record), captured=captured)


def ccb_change(world: World, mo: str, key: str | list[str], fields: Mapping[str, Any]) -> None:
    """Change fields of a record CCB holds (a user's edit), captured."""
    with world.ccb.store.transaction() as tx:
        _change(world, tx, mo, key, fields)


def ccb_changes(world: World, changes: list[Mapping[str, Any]]) -> None:
    """Several edits saved in one CCB transaction, each ``{mo, key, fields}`` as ``ccb.change``
    takes them: the changes of one entity join one Pending sync request before any monitor
    can send it."""
    with world.ccb.store.transaction() as tx:
        for number, change in enumerate(changes, 1):
            try:
                _change(world, tx, change["mo"], change["key"], change["fields"])
            except (KeyError, TypeError):
                raise StepFailed(
                    f"ccb.changes: change {number} must be {{mo, key, fields}}, not {change!r}"
                ) from None


def _change(
    world: World, tx: Transaction, mo: str, key: str | list[str], fields: Mapping[str, Any]
) -> None:
    keys = (key,) if isinstance(key, str) else tuple(key)
    record = world.ccb.record(tx, mo, keys)
    if record is None:
        raise StepFailed(f"CCB holds no {mo} {'/'.join(keys)}")
    world.ccb.save(tx, mo, {**record, **fields})


def ccb_resubmit(world: World, mo: str, key: str | list[str]) -> None:
    """An operator resubmits the key's sync request in Error (``ccbmdm resubmit``): its final
    snapshot is taken again and sent under a new message id."""
    pk = KEY_SEPARATOR.join((key,) if isinstance(key, str) else key)
    with world.ccb.store.transaction() as tx:
        row = tx.fetch_one(
            "SELECT id FROM sync_request WHERE mo = :mo AND pk = :pk AND state = 'ERROR'",
            {"mo": mo, "pk": pk},
        )
    if row is None:
        raise StepFailed(f"CCB has no sync request of {mo} {pk} in Error to resubmit")
    monitor = world.runtime.monitor
    if monitor is None:
        raise StepFailed("this runtime has no CCB sync request monitor")
    resubmit(monitor, [int(row["id"])])


def ccb_account(
    world: World,
    account_id: str,
    person_id: str,
    bill_cycle: str,
    cis_division: str,
    bill_cycle_protected: bool = False,
) -> None:
    """Add or replace an account (accounts are not synchronized; SAs refer to them);
    ``bill_cycle_protected``: a bill cycle change from MDM leaves the account's cycle alone."""
    account = Account(account_id, person_id, bill_cycle, cis_division, bill_cycle_protected)
    with world.ccb.store.transaction() as tx:
        world.ccb.save_account(tx, account)


def ccb_billing_run(world: World, bill_cycle: str, window_start: date) -> None:
    """A batch billing run of one bill cycle's window: a segment and a usage request per SA."""
    with world.ccb.store.transaction() as tx:
        world.ccb.billing.billing_run(tx, bill_cycle, window_start)


def ccb_bill_online(world: World, account_id: str, end: date) -> None:
    """A user bills one account online, up to ``end``."""
    with world.ccb.store.transaction() as tx:
        world.ccb.billing.bill_online(tx, account_id, end)


def ccb_complete_bills(world: World, account_ids: list[str] | None = None) -> None:
    """Bill completion: the frozen segments' bills are completed and MDM is told which usage
    was used on a bill."""
    with world.ccb.store.transaction() as tx:
        world.ccb.billing.complete_bills(tx, account_ids)


def ccb_call(world: World, message: str) -> None:
    """CCB sends one synchronous request (a message file beside case.yaml) to the bridge and
    takes the answer (a reply or a fault; both are in the trail)."""
    path = world.folder / message
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise StepFailed(f"cannot read {message}: {exc.strerror}") from None
    node = world.runtime.nodes["ccb"]
    try:
        codec, _ = node.contracts.decode(body)
    except Exception as exc:  # a refusal of any kind is the case author's to fix
        raise StepFailed(f"{message} is not a valid message: {exc}") from None
    flow = next(
        (
            f
            for f in world.runtime.flows
            if any(p.name == "request" and p.sender == codec.name for p in f.parts)
        ),
        None,
    )
    if flow is None:
        raise StepFailed(f"{message}: {codec.name} is the request of no flow")
    (answer,) = node.transport.post_many("ccb", "bridge", [Posting(flow.kebab, "request", body)])
    if isinstance(answer, TransportError):
        raise StepFailed(f"{message}: the bridge could not be reached: {answer}")


def mdm_interval_data(world: World, month: date, seed: int) -> None:
    """Synthetic interval measurements in MDM for every interval channel installed during
    ``month`` and its billing windows (some estimated), as the demo loads them."""
    generate_interval_data(world.mdm.store, month, seed)


def mdm_intervals(
    world: World,
    sp_id: str,
    start: datetime,
    end: datetime,
    kwh: str | None = None,
    runs: list[Mapping[str, Any]] | None = None,
    register_id: str | None = None,
) -> None:
    """MDM receives interval measurements for the SP's interval channel (the channel of CCB
    register ``register_id`` when the SP has several) over ``[start, end)``: ``kwh`` in every
    interval, except where a run ``{from, to, kwh | quality | missing}`` says otherwise
    (``conformance.interval_profile``); stored values it covers are replaced."""
    measurements = world.mdm.usage.measurements
    with world.mdm.store.transaction() as tx:
        mc_id, seconds = _interval_channel(world, tx, sp_id, start, end, register_id)
        rows = profile_values(start, end, seconds, kwh, runs or ())
        measurements.write_values(
            tx,
            [(mc_id, epoch(r.end), str(r.kwh), codes_text(r.codes)) for r in rows],
            replace=True,
        )


def _interval_channel(
    world: World,
    tx: Transaction,
    sp_id: str,
    start: datetime,
    end: datetime,
    register_id: str | None,
) -> tuple[str, int]:
    """The production id and interval length of the SP's interval MC over the period."""
    sp = production_id(tx, "CCB", "D1-SP", (sp_id,))
    if sp is None:
        raise StepFailed(f"MDM has no SP for CCB SP {sp_id}")
    wanted = None if register_id is None else production_id(tx, "CCB", "D1-MC", (register_id,))
    if register_id is not None and wanted is None:
        raise StepFailed(f"MDM has no MC for CCB register {register_id}")
    channels = {
        c.mc: c.seconds_per_interval
        for i in world.mdm.usage.measurements.installations(tx, sp, start, end)
        for c in i.channels
        if wanted is None or c.mc == wanted
    }
    if len(channels) != 1:
        raise StepFailed(
            f"SP {sp_id} has {len(channels)} interval channels installed in the period"
            + ("; name the register" if channels else "")
        )
    ((mc_id, seconds),) = channels.items()
    return mc_id, seconds


def mdm_correct_read(world: World, sp_id: str, at: datetime, value: str) -> None:
    """An MDM user corrects the measurement at ``at`` on the SP's channel; MDM recalculates
    the usage transactions it touches and notifies CCB of each changed one."""
    world.mdm.usage.correct_read(sp_id=sp_id, at=at, value=value)


def mdm_schedule_reads(world: World, measurement_cycle: str, read_dates: list[date]) -> None:
    """An MDM user schedules reads of a measurement cycle: the dates a summary-billed SA's
    billing waits for (a window with none is skipped until the next)."""
    with world.mdm.store.transaction() as tx:
        world.mdm.usage.measurements.set_measurement_cycle(
            tx, measurement_cycle, read_dates=read_dates
        )


def mdm_change_measurement_cycle(
    world: World, sp_id: str, measurement_cycle: str, bill_cycle: str, effective: date
) -> None:
    """MDM moves an externally managed SP to another measurement cycle, which tells CCB the
    bill cycle of the SP's accounts."""
    with world.mdm.store.transaction() as tx:
        change_measurement_cycle(world.mdm, tx, sp_id, measurement_cycle, bill_cycle, effective)


Action = Callable[..., None]

ACTIONS: Mapping[str, Action] = {
    "ccb.generate": ccb_generate,
    "ccb.initial_load": ccb_initial_load,
    "ccb.save": ccb_save,
    "ccb.change": ccb_change,
    "ccb.changes": ccb_changes,
    "ccb.resubmit": ccb_resubmit,
    "ccb.account": ccb_account,
    "ccb.billing_run": ccb_billing_run,
    "ccb.bill_online": ccb_bill_online,
    "ccb.complete_bills": ccb_complete_bills,
    "ccb.call": ccb_call,
    "mdm.interval_data": mdm_interval_data,
    "mdm.intervals": mdm_intervals,
    "mdm.correct_read": mdm_correct_read,
    "mdm.change_measurement_cycle": mdm_change_measurement_cycle,
    "mdm.schedule_reads": mdm_schedule_reads,
}


def perform(world: World, action: str, arguments: Mapping[str, Any]) -> None:
    """Carry out one step; ``StepFailed`` says why it could not be."""
    function = ACTIONS[action]
    converted = {name: _argument(value) for name, value in arguments.items()}
    try:
        function(world, **converted)
    except TypeError as exc:
        raise StepFailed(f"{action}: {exc}".replace(f"{function.__name__}()", action)) from None
    except (LookupError, ValueError) as exc:
        raise StepFailed(f"{action}: {exc}") from None


def _argument(value: Any) -> Any:
    """A YAML value as the simulators take it: a date-time written with its offset becomes one."""
    if isinstance(value, str) and "T" in value and len(value) >= 19:
        try:
            return configured_datetime(value)
        except ValueError:
            return value
    return value
