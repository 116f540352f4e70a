"""Plain value labels in `--help`: PATH, TEXT, INTEGER, text|json|sarif, nothing for a flag,
and FILES... for an argument that takes several.

Typer labels a value by its Python annotation (`<bool>`, `<list[Path]>`, `{directory}`), which
says how the command is written rather than what to type. `use_plain_labels` makes its help
label values the way the usage lines of Unix tools do.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from typer.core import TyperArgument, TyperOption

_NAMES: dict[Any, str] = {str: "TEXT", int: "INTEGER", float: "NUMBER", Path: "PATH"}


def label(param: TyperOption | TyperArgument, ctx: Any = None) -> str | None:
    """What a parameter's value is, for help: none for a flag; one value's for a list (an
    argument's name ends in ``...``, an option's help says to repeat it)."""
    if isinstance(param, TyperOption) and (param.is_flag or param.count):
        return None
    if param.metavar is not None:
        return param.metavar
    descriptor = param.type_descriptor
    annotation = descriptor.annotation
    if descriptor.is_list:
        (annotation,) = typing.get_args(annotation) or (str,)
    if descriptor.is_choice:
        text = "|".join(str(choice) for choice in descriptor.choices or ())
    elif descriptor.is_path:
        text = {"file": "FILE", "dir": "DIRECTORY"}.get(descriptor.path_type, "PATH")
    else:
        text = _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)).upper())
    return text


def _usage_name(self: TyperArgument) -> str:
    name = self.metavar or (self.name or "").upper()
    dots = "..." if self.nargs != 1 else ""
    return f"{name}{dots}" if self.required else f"[{name}]{dots}"


def use_plain_labels() -> None:
    """Label values plainly in every command's help (typer's own labels otherwise)."""
    TyperOption.display_type_rich = label  # type: ignore[method-assign,assignment]
    TyperArgument.display_type_rich = label  # type: ignore[method-assign,assignment]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
