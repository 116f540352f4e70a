"""The contracts of a project at run time: find a message's contract, decode it, encode it."""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from lxml import etree

from ccbmdm.runtime.messages.codec import ContractViolation
from ccbmdm.runtime.messages.model import ContractModel
from ccbmdm.runtime.messages.xmlsafe import (
    DEFAULT_LIMITS,
    XmlLimits,
    XmlRejected,
    parse_partner_xml,
)

# What the memo of decoded messages may hold, in messages and in bytes of their XML.
_RECENT_ENTRIES = 4096
_RECENT_BYTES = 16 * 1024 * 1024
# A receipt answers a posting and is never itself received: remembering it would only crowd out
# the messages that are.
_NEVER_RECEIVED = frozenset({"common/Receipt"})


Decode = Callable[[etree._Element], ContractModel]
Encode = Callable[[Any], bytes]
Parts = tuple[type[ContractModel], Decode, Encode]  # a contract's model, decoder and encoder


@dataclass(frozen=True)
class ContractCodec:
    """One message contract with its generated model and codec, imported when first used
    (``load``): a command that reads one message loads one system's modules."""

    name: str
    namespace: str
    root: str
    load: Callable[[], Parts] = field(repr=False, compare=False)

    @cached_property
    def _parts(self) -> Parts:
        return self.load()

    @property
    def model(self) -> type[ContractModel]:
        return self._parts[0]

    @property
    def decode(self) -> Decode:
        return self._parts[1]

    @property
    def encode(self) -> Encode:
        return self._parts[2]

    @property
    def tag(self) -> str:
        return f"{{{self.namespace}}}{self.root}"


def imported_contract(
    package: str, models: str, model: str, codec: str, root: str
) -> Callable[[], Parts]:
    """What a generated package's contract entry imports when first used: the model class of
    its models module, and the decoder and encoder of its root in its codec module."""

    def load() -> Parts:
        found = importlib.import_module(f"{package}.{codec}")
        return (
            getattr(importlib.import_module(f"{package}.{models}"), model),
            getattr(found, f"decode_{root}"),
            getattr(found, f"encode_{root}"),
        )

    return load


class UnknownContract(LookupError):
    """No contract has the message's root element, or the name given is not a contract."""


class ContractRegistry:
    """Every contract of one compiled project, by name and by root element."""

    def __init__(
        self, contracts: Mapping[str, ContractCodec], limits: XmlLimits = DEFAULT_LIMITS
    ) -> None:
        # Messages decoded or encoded lately, by their bytes: a node checks a message when it
        # arrives and decodes it again to process it a moment later, and a message one node of
        # this process encodes is received by another one. A valid model survives the codec
        # unchanged (the round trip is a tested property) and models are immutable, so the
        # model itself stands for what decoding its bytes would give.
        self._recent: OrderedDict[bytes, tuple[ContractCodec, ContractModel]] = OrderedDict()
        self._recent_bytes = 0
        self._recent_lock = threading.Lock()
        self.by_name = {
            name: codec if name in _NEVER_RECEIVED else self._remembering(codec)
            for name, codec in contracts.items()
        }
        self.by_tag = {codec.tag: codec for codec in self.by_name.values()}
        self.limits = limits

    @cached_property
    def _by_model(self) -> dict[type[ContractModel], ContractCodec | None]:
        """A model class names its contract unless two contracts share one root type (every
        contract's model imported: only an encode that names no contract asks)."""
        by_model: dict[type[ContractModel], ContractCodec | None] = {}
        for codec in self.by_name.values():
            by_model[codec.model] = None if codec.model in by_model else codec
        return by_model

    def _remembering(self, codec: ContractCodec) -> ContractCodec:
        """The codec with an encoder that keeps what it wrote with the model it came from."""

        def load() -> Parts:
            model, decode, encode = codec.load()

            def remembering(message: Any) -> bytes:
                data = encode(message)
                self._remember(data, (remembered, message))
                return data

            return model, decode, remembering

        remembered = replace(codec, load=load)
        return remembered

    def __getitem__(self, name: str) -> ContractCodec:
        try:
            return self.by_name[name]
        except KeyError:
            known = ", ".join(sorted(self.by_name))
            raise UnknownContract(f"no contract named {name!r}; known contracts: {known}") from None

    def detect(self, root: etree._Element) -> ContractCodec:
        """The contract whose root element this is."""
        codec = self.by_tag.get(root.tag)  # type: ignore[arg-type]
        if codec is not None:
            return codec
        qname = etree.QName(root)
        same_name = [c for c in self.by_name.values() if c.root == qname.localname]
        if same_name:
            hint = " or ".join(f"{{{c.namespace}}}{c.root}" for c in same_name)
            raise UnknownContract(
                f"root element {{{qname.namespace}}}{qname.localname} is in the wrong namespace; "
                f"did you mean {hint}?"
            )
        raise UnknownContract(
            f"unknown root element {{{qname.namespace}}}{qname.localname}: no contract has it"
            if qname.namespace
            else f"unknown root element {qname.localname} (no namespace): no contract has it"
        )

    def parse(self, data: bytes) -> etree._Element:
        """Hardened parse of partner bytes (raises XmlRejected)."""
        return parse_partner_xml(data, self.limits)

    def decode(
        self, data: bytes, contract: str | None = None
    ) -> tuple[ContractCodec, ContractModel]:
        """Parse and decode a message; with ``contract`` given, its root must be that contract's.

        Raises XmlRejected, UnknownContract or ContractViolation.
        """
        recent = self._recent.get(data)
        if recent is not None and (contract is None or recent[0].name == contract):
            return recent
        decoded = self.decode_afresh(data, contract)
        self._remember(data, decoded)
        return decoded

    def _remember(self, data: bytes, decoded: tuple[ContractCodec, ContractModel]) -> None:
        with self._recent_lock:
            if data not in self._recent:
                self._recent[data] = decoded
                self._recent_bytes += len(data)
            while self._recent and (
                len(self._recent) > _RECENT_ENTRIES or self._recent_bytes > _RECENT_BYTES
            ):
                self._recent_bytes -= len(self._recent.popitem(last=False)[0])

    def decode_afresh(
        self, data: bytes, contract: str | None = None
    ) -> tuple[ContractCodec, ContractModel]:
        """``decode`` from the bytes themselves, never from the memo (what a codec test checks)."""
        root = self.parse(data)
        if contract is None:
            codec = self.detect(root)
        else:
            codec = self[contract]
            if root.tag != codec.tag:
                raise UnknownContract(
                    f"the message's root is {etree.QName(root).text}, "
                    f"but contract {codec.name} has {codec.tag}"
                )
        try:
            return codec, codec.decode(root)
        except ContractViolation as violation:
            raise violation.with_source(data) from None

    def encode(self, message: ContractModel, contract: str | None = None) -> bytes:
        """Serialize a message model with the codec of its contract."""
        if contract is not None:
            return self[contract].encode(message)
        if type(message) not in self._by_model:
            raise UnknownContract(
                f"{type(message).__name__} is not the model of a message contract"
            )
        codec = self._by_model[type(message)]
        if codec is None:
            raise UnknownContract(
                f"several contracts use {type(message).__name__}; name the contract"
            )
        return codec.encode(message)


__all__ = [
    "ContractCodec",
    "ContractRegistry",
    "UnknownContract",
    "XmlRejected",
    "imported_contract",
]
