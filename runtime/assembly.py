"""A runtime put together from its configuration: the store, the hosted nodes with their
handlers, the systems plugged in behind them, the transports, the HTTP servers and the worker.

A system behind a hosted ``ccb`` or ``mdm`` node (a reference simulator, or an adapter to the
real system) is named in the configuration as ``module:factory``; the factory receives the
runtime and the node's name and returns the system.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from ccbmdm.codegen.catalogue import Flow, load_catalogue
from ccbmdm.codegen.loader import load_contracts, load_package
from ccbmdm.codegen.project import Project
from ccbmdm.runtime.config import ConfigError, RuntimeConfig
from ccbmdm.runtime.console.app import PREFIX, Console
from ccbmdm.runtime.health import PATHS, HealthApp, WorkerWatch
from ccbmdm.runtime.lifecycles.sync import (
    CCB_SYNC_FLOWS,
    Acknowledgements,
    SnapshotReader,
    SyncRequestMonitor,
)
from ccbmdm.runtime.lifecycles.usage import USAGE_FLOWS, Billing, UsageRequestMonitor
from ccbmdm.runtime.messages.mapping import CodeTables, Context
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messaging.delivery import Received
from ccbmdm.runtime.messaging.http import Credential, HttpTransport, ReceiverApp, Server
from ccbmdm.runtime.messaging.inline import InlineBridge
from ccbmdm.runtime.messaging.node import Bridge, Node
from ccbmdm.runtime.messaging.transport import Answer, InProcessTransport, Posting, Response
from ccbmdm.runtime.store import Store, Transaction, open_store
from ccbmdm.runtime.store.counts import fold
from ccbmdm.runtime.worker import Step, Worker

log = logging.getLogger("ccbmdm.runtime")


class CcbHandler:
    """The ``ccb`` node's handler (a ``BatchHandler``): acknowledgements of sync requests a run
    at a time (``Acknowledgements.handle_batch``), usage responses and whatever else CCB
    receives one at a time, in the batch's order."""

    def __init__(
        self,
        acknowledgements: Acknowledgements,
        usage: UsageRequestMonitor | None,
        system: HostedSystem,
    ) -> None:
        self.acknowledgements = acknowledgements
        self.usage = usage
        self.system = system
        self.sync_flows = frozenset(CCB_SYNC_FLOWS.values())

    def handle_batch(self, tx: Transaction, messages: Sequence[Received]) -> list[str | None]:
        outcomes: list[str | None] = []
        for acknowledging, run in itertools.groupby(messages, key=self._acknowledges):
            if acknowledging:
                outcomes += self.acknowledgements.handle_batch(tx, list(run))
            else:
                outcomes += [self._one(tx, received) for received in run]
        return outcomes

    def _acknowledges(self, received: Received) -> bool:
        return received.flow in self.sync_flows and received.part == "ack"

    def _one(self, tx: Transaction, received: Received) -> str | None:
        if self.usage is not None and received.flow in USAGE_FLOWS:
            return self.usage.responded(tx, received)
        return self.system.handle(tx, received)


class HostedSystem(Protocol):
    """What sits behind a hosted ``ccb`` or ``mdm`` node."""

    def handle(self, tx: Transaction, received: Received) -> str | None:
        """Process a received message in the node's transaction; the id of the message it
        produced (a reply, an acknowledgement), if any."""
        ...

    def answer(self, sender: str, flow: Flow, request: ContractModel) -> Response:
        """Answer a synchronous, read-only request at once."""
        ...

    def steps(self) -> Sequence[Step]:
        """The system's own monitors, which the runtime's workers run with its steps."""
        ...


@runtime_checkable
class SourceSystem(HostedSystem, SnapshotReader, Protocol):
    """CCB: also the source of master-data snapshots for its sync requests."""


SystemFactory = Callable[["Runtime", str], HostedSystem]


class RoutedTransport:
    """In process to the nodes hosted here, over HTTP to the others."""

    def __init__(self, local: InProcessTransport, remote: HttpTransport | None) -> None:
        self.local = local
        self.remote = remote
        self.timeout_s = remote.timeout_s if remote is not None else local.timeout_s

    def in_transaction(self, partner: str, store: Store) -> bool:
        """Whether a sender on ``store`` may deliver to ``partner`` in its own transaction
        (``InProcessTransport.in_transaction``): never over HTTP."""
        local = partner in self.local.endpoints or self.remote is None
        return local and self.local.in_transaction(partner, store)

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        if partner in self.local.endpoints or self.remote is None:
            return self.local.post_many(sender, partner, postings)
        return self.remote.post_many(sender, partner, postings)


class Runtime:
    """Everything one configuration describes, ready to run."""

    def __init__(
        self, config: RuntimeConfig, project: Project, *, frozen_at: datetime | None = None
    ) -> None:
        """``frozen_at`` (a conformance case's clock): what the mappings and the simulators
        read as now; the store's clock starts there and runs on, so that leases, retries and
        deadlines behave as they do on the real one."""
        self.config = config
        self.project = project
        self.clock: Callable[[], datetime] = (
            (lambda: frozen_at) if frozen_at is not None else (lambda: datetime.now(UTC))
        )
        offset = (frozen_at - datetime.now(UTC)).total_seconds() if frozen_at else 0.0
        self.store = open_store(config.store, clock_offset_s=offset)
        self.store.migrate()
        self.contracts = load_contracts(project)
        self.flows = load_catalogue(project.contracts / "flows.yaml")
        self.settings = config.delivery.settings()
        # a round that lasts longer than a lease loses its claims: past that, not ready
        self.workers = WorkerWatch(stale_after_s=self.settings.lease_s)
        self.context = Context(CodeTables.load(project.mappings / "tables"), clock=self.clock)
        transformers = load_package(project).TRANSFORMERS
        local = InProcessTransport()
        self.transport = RoutedTransport(local, self._http_transport())
        self.nodes: dict[str, Node] = {}
        for name in config.hosted():
            node = Node(name, self.store, self.contracts, self.flows, self.transport, self.settings)
            self.nodes[name] = node
            local.register(name, node.receiver)
        if "bridge" in self.nodes:
            bridge = self.nodes["bridge"]
            bridge.handler = Bridge(bridge, transformers, self.context)
            bridge.receiver.answerer = InlineBridge(bridge, transformers, self.context)
        self.systems: dict[str, HostedSystem] = {}
        self.usage_monitor: UsageRequestMonitor | None = None
        for name in ("ccb", "mdm"):
            if name in self.nodes:
                self.systems[name] = self._plug_in(name)
        self.monitor = self._sync_monitor() if "ccb" in self.systems else None

    def _http_transport(self) -> HttpTransport | None:
        remote = {n: s for n, s in self.config.nodes.items() if not s.hosted}
        if not remote:
            return None
        credentials: dict[str, Credential] = {}
        for name, setting in remote.items():
            if setting.credential is not None:
                credentials[name] = setting.credential.resolve(f"nodes.{name}.credential")
        addresses: dict[str, str] = {name: str(s.url) for name, s in remote.items()}
        return HttpTransport(addresses, credentials, self.config.delivery.http_timeout_s)

    def _plug_in(self, name: str) -> HostedSystem:
        entry = self.config.nodes[name].system  # type: ignore[index]
        assert entry is not None  # the configuration checks a hosted system has one
        module_name, _, attribute = entry.partition(":")
        try:
            factory: SystemFactory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"nodes.{name}.system: cannot load {entry}: {exc}") from None
        system = factory(self, name)
        node = self.nodes[name]
        if name == "ccb":
            if not isinstance(system, SourceSystem):
                raise ConfigError(
                    f"nodes.ccb.system: {entry} gives no snapshot reader (read(tx, mo, key))"
                )
            usage = (
                UsageRequestMonitor(self.store, self.contracts, system, node.outbox)
                if isinstance(system, Billing)
                else None
            )
            self.usage_monitor = usage
            node.handler = CcbHandler(Acknowledgements(self.contracts, node.outbox), usage, system)
        else:
            node.handler = system.handle
        node.receiver.answerer = system.answer
        return system

    def _sync_monitor(self) -> SyncRequestMonitor:
        system = self.systems["ccb"]
        assert isinstance(system, SourceSystem)
        by_code = {flow.code: flow for flow in self.flows}
        codes = [code for code in CCB_SYNC_FLOWS.values() if code in by_code]
        return SyncRequestMonitor(
            self.store,
            self.contracts,
            system,
            {code: by_code[code].part("request").sender for code in codes},
            error_policies={code: by_code[code].error_policy for code in codes},
            clock=self.clock,
        )

    def steps(self, batch: int | None = None) -> list[Step]:
        """Every step a worker runs each round: the sync monitor, each node's sends and
        processing, and the hosted systems' own monitors."""
        size = batch or self.settings.batch
        steps: list[Step] = []
        if self.monitor is not None:
            monitor = self.monitor
            steps.append(lambda: sum(vars(monitor.step(size)).values()))
        if self.usage_monitor is not None:
            usage = self.usage_monitor
            steps.append(lambda: usage.step(size))
        for node in self.nodes.values():
            steps += [node.send_due, node.process_due]
        for system in self.systems.values():
            steps += list(system.steps())
        return steps

    def worker(self, batch: int | None = None) -> Worker:
        """The worker of every step, each node's contracts and mappings loaded before its first
        round (``Node.load_ahead``)."""
        for node in self.nodes.values():
            node.load_ahead()
        return Worker(
            self.steps(batch),
            sweeps=[*(node.rescue_due for node in self.nodes.values()), lambda: fold(self.store)],
            poll_interval_s=self.config.delivery.poll_interval_s,
            sweep_interval_s=max(self.settings.lease_s / 4, self.config.delivery.poll_interval_s),
            on_round=self.workers.beat,
        )

    def serve(self, stack: ExitStack) -> list[str]:
        """Start the HTTP endpoint of every hosted node that listens; their URLs."""
        urls = []
        for name, node in self.nodes.items():
            setting = self.config.nodes[name]  # type: ignore[index]
            if setting.listen is None:
                continue
            accepted: dict[str, Credential] = {
                partner: credential.resolve(f"nodes.{name}.accept.{partner}")
                for partner, credential in setting.accept.items()
            }
            host, port = setting.address()
            viewers = {
                viewer: credential.resolve(f"nodes.{name}.viewers.{viewer}")
                for viewer, credential in setting.viewers.items()
            }
            pages = getattr(self.systems.get(name), "page", None)  # a simulator's entity pages
            console = Console(
                name,
                self.store,
                [*accepted.values(), *viewers.values()],  # the node's own credentials
                nodes=list(self.nodes),
                monitor=self.monitor,
                contracts=self.contracts,
            )
            app = ReceiverApp(node.receiver, accepted, pages=pages, viewers=viewers)
            health = HealthApp(self.store, self.workers, app.may_view, setting.metrics_open)
            for path in PATHS:
                app.mount(path, health)
            app.mount(PREFIX, console)
            server = stack.enter_context(Server(app, host, port))
            urls.append(f"{name}: {server.url}")
        return urls

    def close(self) -> None:
        if self.transport.remote is not None:
            self.transport.remote.close()
        self.store.close()
