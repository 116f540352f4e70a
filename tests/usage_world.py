"""The world the MDM usage tests share (no tests here): the reference CCB, the bridge with the
reference mappings and its inline answerer, and MDM as the master-data simulator with the usage
side beside it, three nodes on one store moved on by their steps, as a runtime does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

from ccbmdm.runtime.lifecycles.sync import CCB_SYNC_FLOWS, Acknowledgements, SyncRequestMonitor
from ccbmdm.runtime.lifecycles.usage import USAGE_FLOWS, UsageRequestMonitor
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messages.mapping import CodeTables, Context
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.inline import InlineBridge
from ccbmdm.runtime.messaging.node import Bridge, Node, run_until_quiet
from ccbmdm.runtime.messaging.transport import InProcessTransport
from ccbmdm.runtime.sim.ccb.simulator import CcbSimulator
from ccbmdm.runtime.sim.mdm import interval_days
from ccbmdm.runtime.sim.mdm.simulator import MdmSimulator
from ccbmdm.runtime.sim.synthetic import Customer, Plan, generate
from ccbmdm.runtime.store import Store, Transaction
from ccbmdm.runtime.store.bodies import original
from runtime_world import FAST, FLOWS
from support import OUTBOX, REPO

TABLES = CodeTables.load(REPO / "mappings" / "tables")
SENDERS = {
    flow.code: flow.part("request").sender for flow in FLOWS if flow.code in CCB_SYNC_FLOWS.values()
}
ZONE = ZoneInfo("America/New_York")
MASTER_DATA_FLOWS = {"BILL_CYCLE_SYNC", *CCB_SYNC_FLOWS.values()}
HOURLY_FEED = (
    REPO
    / "tests"
    / "data"
    / "greenbutton"
    / "Coastal_Multi_Family_Jan_1_2011_to_Jan_1_2012_RetailCustomer_5.xml"
)


def hourly(ccb: CcbSimulator, tx: Transaction) -> None:
    """Every meter configuration of the utility with a 60-minute channel."""
    for config in ccb.records(tx, "MTR CONFIG"):
        config["registers"] = [{**r, "interval_minutes": 60} for r in config["registers"]]
        ccb.save(tx, "MTR CONFIG", config, captured=False)


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), ZONE)


class World:
    """CCB, the bridge and MDM on one store; ``usage`` makes MDM's usage side from the node."""

    def __init__(
        self,
        store: Store,
        registry: ContractRegistry,
        package: ModuleType,
        usage: Callable[[Store, Node, ContractRegistry], Any] | None = None,
    ) -> None:
        self.store, self.registry = store, registry
        transport = InProcessTransport()
        self.ccb_node = Node("ccb", store, registry, FLOWS, transport, FAST)
        self.bridge = Node("bridge", store, registry, FLOWS, transport, FAST)
        self.mdm_node = Node("mdm", store, registry, FLOWS, transport, FAST)
        for node in (self.ccb_node, self.bridge, self.mdm_node):
            transport.register(node.name, node.receiver)
        context = Context(TABLES)
        self.bridge.handler = Bridge(self.bridge, package.TRANSFORMERS, context)
        self.bridge.receiver.answerer = InlineBridge(self.bridge, package.TRANSFORMERS, context)
        self.ccb = CcbSimulator(store, self.ccb_node)
        acknowledgements = Acknowledgements(registry, self.ccb_node.outbox)
        self.usage_requests = UsageRequestMonitor(store, registry, self.ccb, self.ccb_node.outbox)
        sync_flows = set(CCB_SYNC_FLOWS.values())

        def ccb_handler(tx: Transaction, received: Received) -> str | None:
            if received.flow in sync_flows and received.part == "ack":
                return acknowledgements(tx, received)
            if received.flow in USAGE_FLOWS:
                return self.usage_requests.responded(tx, received)
            return self.ccb.handle(tx, received)

        self.ccb_node.handler = ccb_handler
        self.ccb_node.receiver.answerer = self.ccb.answer
        self.master = MdmSimulator(store, self.mdm_node, TABLES)
        if usage is not None:  # the test's own usage side (a clock of its own, say) replaces it
            self.master.usage = usage(store, self.mdm_node, registry)
        self.usage = self.master.usage
        self.mdm = self.master
        self.mdm_node.handler = self.mdm.handle
        self.mdm_node.receiver.answerer = self.mdm.answer
        self.monitor = SyncRequestMonitor(store, registry, self.ccb, SENDERS)
        self.customers: list[Customer] = []

    def run(self, rounds: int = 200) -> int:
        steps: list[Callable[[], int]] = [
            lambda: sum(vars(self.monitor.step()).values()),
            self.usage_requests.step,
        ]
        for node in (self.ccb_node, self.bridge, self.mdm_node):
            steps += [node.rescue_due, node.send_due, node.process_due]
        return run_until_quiet([*steps, *self.ccb.steps(), *self.mdm.steps()], rounds=rounds)

    def utility(
        self, plan: Plan, change: Callable[[CcbSimulator, Transaction], None] | None = None
    ) -> list[Customer]:
        """A synthetic utility converted into CCB (``change`` edits it before go-live), loaded
        initially and synchronized into MDM."""
        self.customers = generate(self.ccb, plan, converted=True)
        if change is not None:
            with self.store.transaction() as tx:
                change(self.ccb, tx)
        self.ccb.initial_load()
        self.run(rounds=100 + len(self.customers))
        with self.store.transaction() as tx:
            open_requests = tx.fetch(
                "SELECT mo, pk, state, reason FROM sync_request WHERE state <> 'SYNCHRONIZED'"
            )
        assert open_requests == [], open_requests
        return self.customers

    def billed_until(self, month: date) -> None:
        """Every SA's bills before ``month`` as converted history: a frozen segment ending at
        00:00 of its first day, so the first billing run covers the month alone."""
        with self.store.transaction() as tx:
            for customer in self.customers:
                self.ccb.billing.convert_history(
                    tx,
                    customer.sa_id,
                    customer.account_id,
                    midnight(month - timedelta(days=28)),
                    midnight(month),
                )

    def mc_id(self, register_id: str) -> str:
        with self.store.transaction() as tx:
            found = self.master.production_id(tx, "D1-MC", register_id)
        assert found is not None
        return found

    def sp_production_id(self, sp_id: str) -> str:
        with self.store.transaction() as tx:
            found = self.master.production_id(tx, "D1-SP", sp_id)
        assert found is not None
        return found

    def raw_values(
        self, mc_id: str, start: datetime, end: datetime
    ) -> list[tuple[int, Decimal, str]]:
        """The stored values of an MC stamped in ``(start, end]``, straight from the store."""
        with self.store.transaction() as tx:
            found = interval_days.read(tx, mc_id, int(start.timestamp()), int(end.timestamp()))
        return [(end, Decimal(value), codes) for end, value, codes in found.rows()]

    def outbox(self, node: str, flow: str) -> list[Any]:
        with self.store.transaction() as tx:
            rows = tx.fetch(
                f"SELECT b.payload FROM {OUTBOX} WHERE node = :node AND flow = :flow ORDER BY o.id",
                {"node": node, "flow": flow},
            )
        return [self.registry.decode(original(row["payload"]))[1] for row in rows]

    def call(self, flow: str, contract: str, message: ContractModel) -> tuple[int, Any]:
        """A synchronous call from CCB through the bridge; the status and the decoded reply."""
        payload = self.registry.encode(message, contract)
        answer = self.bridge.receiver.receive("ccb", flow, "request", payload)
        return answer.status, self.registry.decode(answer.body)[1]
