"""The runtime's configuration file: the store, the nodes this runtime hosts and how to reach the
others, credentials (read from environment variables, never written in the file), the systems
that plug in behind the hosted nodes, and the delivery settings.

```yaml
store: target/runtime.db            # a SQLite file (relative to the file) or a postgresql:// DSN
nodes:
  ccb: {system: mypackage.ccb:connect}                # hosted, in process
  bridge: {listen: "127.0.0.1:8400", accept: {ccb: {user: ccb, password_env: CCB_PASSWORD}}}
  mdm: {url: "https://mdm.example.com", credential: {token_env: MDM_TOKEN}}   # remote
delivery: {lease_s: 60, max_attempts: 4, batch: 50, poll_interval_s: 1}
supervision: {stop_grace_s: 30, restart_delay_s: 1, restart_delay_cap_s: 60}
```
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ccbmdm.errors import CcbmdmError
from ccbmdm.runtime.messaging.authorization import partners
from ccbmdm.runtime.messaging.delivery import DeliverySettings
from ccbmdm.runtime.messaging.http import Credential
from ccbmdm.runtime.store.dsn import is_postgres, redacted

NodeName = Literal["ccb", "bridge", "mdm"]
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
# what os.path.expandvars leaves of a variable that is not set
_VARIABLE = re.compile(r"\$\{?(?P<name>[A-Za-z_]\w*)")
_LISTEN = re.compile(r"^(?P<host>[^:\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


class ConfigError(CcbmdmError):
    """The configuration cannot be used; the message names the file and the setting."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CredentialSetting(_Strict):
    """A bearer token or a user and password, each secret from an environment variable."""

    token_env: str | None = None
    user: str | None = None
    password_env: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CredentialSetting:
        bearer, basic = self.token_env is not None, self.user is not None
        if bearer == basic or (basic and self.password_env is None):
            raise ValueError("give token_env, or user with password_env")
        return self

    def resolve(self, where: str) -> Credential:
        """The credential, with its secret read from the environment now."""
        name = self.token_env or self.password_env or ""
        secret = os.environ.get(name)
        if not secret:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        if self.token_env is not None:
            return Credential(token=secret)
        return Credential(user=self.user, password=secret)


class NodeSetting(_Strict):
    """A node hosted here (``system``/``listen``/``accept``) or elsewhere (``url``)."""

    system: str | None = Field(
        default=None, description="module:factory of the system behind a hosted ccb or mdm node"
    )
    listen: str | None = Field(default=None, description="host:port of this node's HTTP endpoint")
    accept: dict[NodeName, CredentialSetting] = Field(default_factory=dict)
    viewers: dict[str, CredentialSetting] = Field(
        default_factory=dict,
        description="who may read a simulator's pages besides the partners (operators, Basic)",
    )
    url: str | None = Field(default=None, description="base URL of a node hosted elsewhere")
    credential: CredentialSetting | None = None

    @field_validator("system")
    @classmethod
    def _moved(cls, system: str | None) -> str | None:
        """A reference simulator named by its former module still loads."""
        return MOVED_SYSTEMS.get(system, system) if system is not None else None

    @model_validator(mode="after")
    def _hosted_or_remote(self) -> NodeSetting:
        if self.url is not None:
            if self.system or self.listen or self.accept or self.viewers:
                raise ValueError("a remote node (url) takes only credential")
            if not self.url.startswith(("http://", "https://")):
                raise ValueError(f"url must start with http:// or https://, not {self.url!r}")
        elif self.credential is not None:
            raise ValueError("credential is what we present to a remote node; give its url")
        if self.system is not None and not _ENTRY_POINT.match(self.system):
            raise ValueError(f"system must be module:factory, not {self.system!r}")
        if self.listen is not None and not _LISTEN.match(self.listen):
            raise ValueError(f"listen must be host:port, not {self.listen!r}")
        secrets = [c.token_env or c.user for c in self.accept.values()]
        if len(set(secrets)) != len(secrets):
            raise ValueError("accept: each partner needs a credential of its own (it names them)")
        return self

    @property
    def hosted(self) -> bool:
        return self.url is None

    def address(self) -> tuple[str, int]:
        match = _LISTEN.match(self.listen or "")
        assert match is not None
        return match["host"].strip("[]"), int(match["port"])


_DEFAULT = DeliverySettings()


class DeliverySetting(_Strict):
    """The ``delivery:`` settings; the defaults are ``DeliverySettings``'s."""

    lease_s: float = Field(default=_DEFAULT.lease_s, gt=0)
    max_attempts: int = Field(default=_DEFAULT.max_attempts, ge=1)
    backoff_base_s: float = Field(default=_DEFAULT.backoff_base_s, ge=0)
    backoff_factor: float = Field(default=_DEFAULT.backoff_factor, ge=1)
    backoff_cap_s: float = Field(default=_DEFAULT.backoff_cap_s, ge=0)
    retry_window_s: float = Field(default=_DEFAULT.retry_window_s, ge=0)
    batch: int = Field(default=_DEFAULT.batch, ge=1, le=10_000)
    poll_interval_s: float = Field(default=1.0, gt=0)
    http_timeout_s: float = Field(default=30.0, gt=0)

    def settings(self) -> DeliverySettings:
        return DeliverySettings(
            lease_s=self.lease_s,
            max_attempts=self.max_attempts,
            backoff_base_s=self.backoff_base_s,
            backoff_factor=self.backoff_factor,
            backoff_cap_s=self.backoff_cap_s,
            batch=self.batch,
            retry_window_s=self.retry_window_s,
        )


# The simulators (``ccbmdm sim``) are partners on the same machine or network, restarted at
# will: a send that failed is tried again within seconds (half a minute at most), a lease held
# by a simulator killed is rescued after 30 s, and a message is given up after its attempts
# and ten minutes rather than an hour.
SIMULATOR_DELIVERY = DeliverySetting(
    lease_s=30, backoff_base_s=1, backoff_factor=2, backoff_cap_s=30, retry_window_s=600
)


class SupervisionSetting(_Strict):
    """How a runtime's processes stop and how its worker processes are restarted."""

    stop_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="after SIGTERM or SIGINT, how long the batches in hand may take; then "
        "whatever still runs is killed",
    )
    restart_delay_s: float = Field(
        default=1.0, gt=0, description="the wait before a dead worker process is restarted"
    )
    restart_delay_cap_s: float = Field(
        default=60.0,
        gt=0,
        description="the longest wait: the delay doubles while workers keep dying, and starts "
        "over once a worker has lived this long",
    )


class RuntimeConfig(_Strict):
    store: str
    nodes: dict[NodeName, NodeSetting]
    delivery: DeliverySetting = Field(default_factory=DeliverySetting)
    supervision: SupervisionSetting = Field(default_factory=SupervisionSetting)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _complete(self) -> RuntimeConfig:
        if set(self.nodes) != {"ccb", "bridge", "mdm"}:
            missing = sorted({"ccb", "bridge", "mdm"} - set(self.nodes))
            raise ValueError(f"every node needs an entry (hosted or url); missing: {missing}")
        if not any(node.hosted for node in self.nodes.values()):
            raise ValueError("no node is hosted here: give at least one node without url")
        for name in ("ccb", "mdm"):
            node = self.nodes[name]
            if node.hosted and node.system is None:
                raise ValueError(f"nodes.{name}: a hosted {name} node needs system: module:factory")
        for name, node in self.nodes.items():
            # a credential that may post nothing here would only ever be refused (403)
            for partner in sorted(set(node.accept) - set(partners(name))):
                raise ValueError(
                    f"nodes.{name}.accept.{partner}: {partner} posts nothing to {name}; "
                    f"only {' and '.join(partners(name))} may"
                )
        return self

    def hosted(self) -> list[str]:
        return [name for name, node in self.nodes.items() if node.hosted]

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """The store's password never shown, not even in a traceback."""
        for name, value in super().__repr_args__():
            yield name, redacted(value) if name == "store" else value


REFERENCE_SYSTEMS = {
    "ccb": "ccbmdm.runtime.sim.ccb.simulator:connect",
    "mdm": "ccbmdm.runtime.sim.mdm.simulator:connect",
}
# The reference simulators' entry points before they became packages (docs/runtime.md).
MOVED_SYSTEMS = {
    "ccbmdm.runtime.sim.ccb:connect": REFERENCE_SYSTEMS["ccb"],
    "ccbmdm.runtime.sim.mdm:connect": REFERENCE_SYSTEMS["mdm"],
}


def reference_config(store: str, delivery: DeliverySetting | None = None) -> RuntimeConfig:
    """The configuration without a file: every node hosted here, in process, with the
    reference simulators behind CCB and MDM."""
    return RuntimeConfig(
        store=store,
        nodes={
            "ccb": NodeSetting(system=REFERENCE_SYSTEMS["ccb"]),
            "bridge": NodeSetting(),
            "mdm": NodeSetting(system=REFERENCE_SYSTEMS["mdm"]),
        },
        delivery=delivery or DeliverySetting(),
    )


def simulator_config(
    name: Literal["ccb", "mdm"],
    store: str,
    listen: str,
    bridge: str,
    token_env: str,
    viewer: tuple[str, str],
    delivery: DeliverySetting | None = None,
) -> RuntimeConfig:
    """One reference simulator as a service of its own: its node listens on ``listen`` and
    takes messages from the bridge by its bearer token; the bridge and the other system are
    reached over HTTP. Its pages show persons' data: they need the bridge's token, or the
    viewer's password when its variable is set."""
    token = CredentialSetting(token_env=token_env)
    user, password_env = viewer
    viewers = (
        {user: CredentialSetting(user=user, password_env=password_env)}
        if os.environ.get(password_env)
        else {}
    )
    other: NodeName = "mdm" if name == "ccb" else "ccb"
    return RuntimeConfig(
        store=store,
        delivery=delivery or SIMULATOR_DELIVERY,
        nodes={
            name: NodeSetting(
                system=REFERENCE_SYSTEMS[name],
                listen=listen,
                accept={"bridge": token},
                viewers=viewers,
            ),
            "bridge": NodeSetting(url=bridge, credential=token),
            other: NodeSetting(url=bridge, credential=token),  # reached only through it
        },
    )


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a configuration file, for an editor to check it as it is typed (the
    documentation site publishes it). ``source`` is the loader's, never written in a file."""
    schema = RuntimeConfig.model_json_schema()
    del schema["properties"]["source"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "ccbmdm runtime configuration",
        "description": "The runtime's configuration file (ccbmdm_runtime.yaml): the store, the "
        "nodes this runtime hosts and how to reach the others, credentials by environment "
        "variable, the delivery and supervision settings. See docs/runtime.md.",
    }


def _read_mapping(path: Path, expected: str) -> dict[str, Any]:
    """A YAML file holding a mapping; ``expected`` says what it should hold."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with {expected}")
    return data


def _problems(path: Path, exc: ValidationError, prefix: str = "") -> ConfigError:
    problems = "; ".join(
        f"{prefix}{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
        for error in exc.errors()
    )
    return ConfigError(f"{path}: {problems}")


def load_delivery(path: Path) -> DeliverySetting:
    """The ``delivery:`` settings of a file (a runtime configuration, or a file that holds only
    them), for a command that has no other use for the rest: a simulator."""
    data = _read_mapping(path, "delivery")
    try:
        return DeliverySetting.model_validate(data.get("delivery") or {})
    except ValidationError as exc:
        raise _problems(path, exc, "delivery.") from None


def load_config(path: Path) -> RuntimeConfig:
    """Read and check a configuration file; a relative SQLite store is relative to the file."""
    data = _read_mapping(path, "store and nodes")
    try:
        config = RuntimeConfig.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise _problems(path, exc) from None
    store = os.path.expandvars(config.store)
    unset = _VARIABLE.search(store)
    if unset:
        raise ConfigError(
            f"{path}: store: the environment variable {unset['name']} is not set; set it, "
            "or write the store without it"
        )
    if not is_postgres(store):
        store = str((path.parent / store).resolve())
    return config.model_copy(update={"store": store})
