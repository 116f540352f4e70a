"""Which values of a message are personal data, and errors that never quote them.

The contracts mark the elements that hold personal data (docs/contracts.md, "Personal data");
every generated model lists its personal fields in ``personal_fields`` and validates each of them
through ``withhold``, so that a refused value of such a field is never in the error's message
(nor, through ``hide_input_in_errors``, in its text): a reason, a log line or a fault built from
the error cannot quote it. The knowledge is the contract's; nothing is guessed from text.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError, ValidatorFunctionWrapHandler
from pydantic_core import PydanticCustomError, to_jsonable_python

from ccbmdm.runtime.messages.lexical import WITHHELD, about
from ccbmdm.runtime.messages.model import ContractModel

__all__ = ["WITHHELD", "is_personal", "masked", "withhold"]


def withhold(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Validate a personal field; when it fails, say why without the value."""
    try:
        return handler(value)
    except ValidationError as exc:
        reasons = []
        for error in exc.errors():
            cause = (error.get("ctx") or {}).get("error")
            said = about(cause, True) if isinstance(cause, ValueError) else error["msg"]
            where = ".".join(str(p) for p in error["loc"])
            reasons.append(f"{where}: {said}" if where else said)
        raise PydanticCustomError(
            "personal_value", "Value error, {reason}", {"reason": "; ".join(reasons)}
        ) from None


def is_personal(model: type[ContractModel], loc: Sequence[int | str]) -> bool:
    """Whether the value at ``loc`` (field names and list positions) of ``model`` is personal
    data: a personal field or anything inside one."""
    current: type[ContractModel] | None = model
    for step in loc:
        if isinstance(step, int):
            continue
        if current is None:
            return False
        if step in current.personal_fields:
            return True
        current = _inner_model(current, step)
    return False


def masked(message: ContractModel) -> dict[str, Any]:
    """A message as JSON data (its fields by name, absent ones left out) with the value of every
    personal field, and everything inside one, written ``***``: what an operator's screen shows
    of a stored message unless asked to unmask it."""
    shown: dict[str, Any] = {}
    for name in type(message).model_fields:
        value = getattr(message, name)
        if value is not None:
            shown[name] = WITHHELD if name in message.personal_fields else _masked_value(value)
    return shown


def _masked_value(value: Any) -> Any:
    if isinstance(value, ContractModel):
        return masked(value)
    if isinstance(value, list | tuple):
        return [_masked_value(item) for item in value]
    return to_jsonable_python(value)


@functools.cache
def _inner_model(model: type[ContractModel], name: str) -> type[ContractModel] | None:
    """The contract model a field holds (through optional, tuple and Annotated), if any."""
    if name not in model.model_fields:
        return None
    stack: list[object] = [typing.get_type_hints(model)[name]]
    while stack:
        hint = stack.pop()
        if isinstance(hint, type) and issubclass(hint, ContractModel):
            return hint
        stack.extend(typing.get_args(hint))
    return None
