"""Python names for contract names: snake_case fields, PascalCase classes, safe identifiers."""

from __future__ import annotations

import keyword
import re

from pydantic import BaseModel

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_RESERVED = {name for name in dir(BaseModel) if not name.startswith("__")} | {"model_config"}


def field_name(xml_name: str) -> str:
    """The model attribute of an element: ``pkValue1`` -> ``pk_value1``, never a keyword or a
    name the model base class already uses."""
    name = _BOUNDARY.sub("_", xml_name).replace("-", "_").lower()
    if keyword.iskeyword(name) or name in _RESERVED or name.startswith("model_"):
        name += "_"
    return name


def class_name(*parts: str) -> str:
    """A class name from XML names: ``("UsageRequest", "spLinks")`` -> ``UsageRequestSpLinks``."""
    return "".join(part[:1].upper() + part[1:] for part in parts)
