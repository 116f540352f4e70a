"""Which values of a message are personal data, and reasons that never quote them.

The contracts mark the elements that hold personal data (docs/contracts.md, "Personal data");
every generated model lists its personal fields in ``personal_fields``. A reason, a log line or
a fault built from a refused value asks here whether the value's field is personal and writes
``***`` in its place when it is: the knowledge is the contract's, nothing is guessed from text.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Sequence

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ccbmdm.runtime.lexical import WITHHELD, about
from ccbmdm.runtime.model import ContractModel

__all__ = ["WITHHELD", "is_personal", "validation_reasons"]


def is_personal(model: type[ContractModel], loc: Sequence[int | str]) -> bool:
    """Whether the value at ``loc`` (field names and list positions, as pydantic reports them)
    of ``model`` is personal data: a personal field or anything inside one."""
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


def validation_reasons(
    exc: ValidationError, models: Sequence[type[ContractModel]], limit: int = 5
) -> str:
    """The first ``limit`` errors of a validation as ``loc: message``, the value of a personal
    field withheld. ``models`` are those the caller may have validated; when the error is of
    none of them, every quoted value is withheld (nothing says which are safe)."""
    model = next((m for m in models if m.__name__ == exc.title), None)
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: "
        f"{_message(error, model is None or is_personal(model, error['loc']))}"
        for error in exc.errors()[:limit]
    )


def _message(error: ErrorDetails, personal: bool) -> str:
    """pydantic's message, which quotes the value only through our own checks' ValueErrors."""
    cause = (error.get("ctx") or {}).get("error")
    if personal and isinstance(cause, ValueError):
        return f"Value error, {about(cause, True)}"
    return error["msg"]
