"""What the conformance kit's tests share: running the CLI in process, editing a copied
project's files, reading one case's report."""

from __future__ import annotations

from pathlib import Path

import pytest

from ccbmdm.cli import app, run


def ccbmdm(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(lambda: app(list(args)))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def report_of(output: str, case: str) -> list[str]:
    """The lines printed under one case's progress line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(f" {case} FAILED"))
    found = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        found.append(line.strip())
    return found
