"""The functions a mapping may call: the built-in library and the project's own.

A project names Python files (or folders of them) under `functions` in its project file. Each
file is imported on its own, by path; its public functions (defined there, not starting with
``_``) become callable from mappings under their Python name. Their type hints give the
signatures the compiler checks calls against, the same signatures the built-ins declare. The
files are imported when the project compiles and again when its generated package is loaded.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
import traceback
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ccbmdm.codegen.diagnostics import Finding, Pos
from ccbmdm.codegen.project import Project, display_path, function_files
from ccbmdm.runtime.messages.functions import FUNCTIONS, Signature

_PRIMITIVES: dict[object, str] = {
    str: "string",
    int: "integer",
    Decimal: "decimal",
    bool: "boolean",
    date: "date",
    datetime: "dateTime",
}
# How generated code names the Python type of a primitive (the transformer imports these).
PYTHON_TYPES = {
    "string": "str",
    "integer": "int",
    "decimal": "Decimal",
    "boolean": "bool",
    "date": "date",
    "dateTime": "datetime",
}
_HINT = (
    "use str, int, Decimal, bool, date or datetime, | None when it may be absent; "
    "a list parameter: tuple[str, ...]"
)


@dataclass(frozen=True)
class Function:
    """One callable function: built-in when ``pos`` is None, else where the project defines it."""

    name: str
    signature: Signature
    function: Callable[..., Any]
    pos: Pos | None = None

    @property
    def builtin(self) -> bool:
        return self.pos is None

    def params(self) -> list[tuple[str, str]]:
        """(parameter name, type) pairs, the context a built-in may read left out."""
        names = list(inspect.signature(self.function).parameters)
        return list(
            zip(names[1:] if self.signature.context else names, self.signature.params, strict=True)
        )

    def __str__(self) -> str:
        params = ", ".join(f"{name}: {kind}" for name, kind in self.params())
        return f"{self.name}({params}) -> {self.signature.result}"


BUILT_INS: dict[str, Function] = {
    name: Function(name, signature, function) for name, (function, signature) in FUNCTIONS.items()
}


@dataclass
class Library:
    """Every function a project's mappings may call, and the problems of its own."""

    functions: dict[str, Function] = field(default_factory=lambda: dict(BUILT_INS))
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def project_functions(self) -> dict[str, Callable[..., Any]]:
        """The project's functions by name, as the run time registers them."""
        return {n: f.function for n, f in self.functions.items() if not f.builtin}


def load_library(project: Project) -> Library:
    """The built-ins and the project's typed functions, each project function checked."""
    library = Library()
    for path in function_files(project):
        _load_file(library, path, display_path(path, project.root))
    return library


def _load_file(library: Library, path: Path, display: str) -> None:
    try:
        module = _import(path)
    except Exception as error:  # the project's code: any failure is a finding at its line
        library.findings.append(
            Finding(
                Pos(display, _error_line(error, path), 1),
                "function-import",
                f"cannot import {display}: {type(error).__name__}: {error}",
                "fix the file; project functions are imported when the project compiles",
            )
        )
        return
    definitions = {
        node.name: node
        for node in ast.parse(path.read_bytes(), str(path)).body
        if isinstance(node, ast.FunctionDef)
    }
    for name, value in sorted(vars(module).items()):
        if name.startswith("_") or not inspect.isfunction(value):
            continue
        if value.__module__ != module.__name__ or name not in definitions:
            continue  # imported, or defined in a way the file does not show
        node = definitions[name]
        pos = Pos(display, node.lineno, node.col_offset + 1)
        known = library.functions.get(name)
        if known is not None:
            where = "a built-in function" if known.builtin else f"the function at {known.pos}"
            library.findings.append(
                Finding(
                    pos,
                    "function-clash",
                    f"function {name} has the name of {where}",
                    "rename it, or make it private with a leading _",
                )
            )
            continue
        signature = _signature(library, value, node, display)
        if signature is not None:
            library.functions[name] = Function(name, signature, value, pos)


def _import(path: Path) -> types.ModuleType:
    """The module of one file, under a name made of its content: the same file is imported
    once per process, a changed one again."""
    digest = hashlib.sha256(str(path).encode() + b"\0" + path.read_bytes()).hexdigest()[:16]
    name = f"ccbmdm_functions_{path.stem}_{digest}"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _error_line(error: Exception, path: Path) -> int:
    if isinstance(error, SyntaxError) and error.lineno:
        return error.lineno
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == str(path)]
    return frames[-1].lineno or 1 if frames else 1


def _signature(
    library: Library, function: Callable[..., Any], node: ast.FunctionDef, display: str
) -> Signature | None:
    """The function's signature from its type hints; None (and findings) when it has none."""
    name = node.name
    found: list[Finding] = []

    def problem(at: ast.AST, message: str, hint: str = _HINT) -> None:
        found.append(
            Finding(
                Pos(display, getattr(at, "lineno", node.lineno), getattr(at, "col_offset", 0) + 1),
                "function-signature",
                message,
                hint,
            )
        )

    try:
        hints = typing.get_type_hints(function)
    except Exception as error:  # an annotation naming what the module does not define
        problem(node, f"the type hints of {name} cannot be read: {error}")
        library.findings.extend(found)
        return None
    params = _params(node, hints, problem)
    result = None
    if "return" not in hints:
        problem(node, f"{name} has no return type hint", "annotate its result, e.g. -> str")
    else:
        result = _kind(hints["return"], parameter=False)
        if result is None:
            problem(
                node.returns or node,
                f"the result of {name} has an unsupported type: {_shown(hints['return'])}",
            )
    library.findings.extend(found)
    if found or result is None:
        return None
    doc = (inspect.getdoc(function) or "").strip().splitlines()
    return Signature(tuple(params), result, doc[0] if doc else "")


def _params(
    node: ast.FunctionDef, hints: dict[str, Any], problem: Callable[..., None]
) -> list[str]:
    """The compiler's type of each positional parameter (``*`` after a variadic one); a keyword
    parameter, or one without a supported type hint, is a ``problem``."""
    name, arguments = node.name, node.args
    for arg in (*arguments.kwonlyargs, *([arguments.kwarg] if arguments.kwarg else [])):
        problem(
            arg, f"{name} has keyword parameter {arg.arg}", "mappings pass arguments by position"
        )
    params = []
    positional = [*arguments.posonlyargs, *arguments.args]
    if arguments.vararg is not None:
        positional.append(arguments.vararg)
    for arg in positional:
        variadic = arg is arguments.vararg
        if arg.arg not in hints:
            problem(arg, f"parameter {arg.arg} of {name} has no type hint")
            continue
        kind = _kind(hints[arg.arg], parameter=not variadic)
        if kind is None:
            problem(
                arg,
                f"parameter {arg.arg} of {name} has an unsupported type: {_shown(hints[arg.arg])}",
            )
            continue
        params.append(kind + ("*" if variadic else ""))
    return params


def _kind(hint: object, *, parameter: bool) -> str | None:
    """The compiler's type of an annotation: a primitive, ``?`` when it may be None, ``[]`` a
    list (parameters only); None when the compiler has none for it."""
    optional = False
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        hint = next(a for a in args if a is not type(None))
        optional = True
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if parameter and not optional:
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in _PRIMITIVES:
            return _PRIMITIVES[args[0]] + "[]"
        if origin is Sequence and len(args) == 1 and args[0] in _PRIMITIVES:
            return _PRIMITIVES[args[0]] + "[]"
    primitive = _PRIMITIVES.get(hint)
    if primitive is None:
        return None
    return primitive + ("?" if optional else "")


def _shown(hint: object) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint)


def unknown_hint(name: str, known: Sequence[str]) -> str:
    """What a call of an unknown function is told: the closest name and every name."""
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    listed = f"functions: {', '.join(sorted(known))}"
    return f"did you mean {close[0]}? {listed}" if close else listed


def described(library: Library) -> list[dict[str, Any]]:
    """Every function for `ccbmdm functions`: built-ins first, then the project's, by name."""
    ordered = sorted(library.functions.values(), key=lambda f: (not f.builtin, f.name))
    return [
        {
            "name": f.name,
            "params": [{"name": name, "type": kind} for name, kind in f.params()],
            "result": f.signature.result,
            "doc": f.signature.doc,
            "signature": str(f),
            "defined": "built-in" if f.pos is None else f"{f.pos.file}:{f.pos.line}",
        }
        for f in ordered
    ]
