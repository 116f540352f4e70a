"""Helpers the tests share (importable as ``support``: pytest puts tests/ on the path)."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "contracts" / "samples").glob("*/*.xml"))
# The outbox with each message's bytes, which live in a table of their own: select b.payload.
OUTBOX = "outbox o JOIN outbox_body b ON b.id = o.id"
# The PostgreSQL server of the store tests, unless CCBMDM_TEST_PG_DSN names another.
LOCAL_PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def choose_postgres(
    environ: Mapping[str, str], local: str = LOCAL_PG_DSN
) -> tuple[str, str | None]:
    """The DSN of the PostgreSQL tests (CCBMDM_TEST_PG_DSN, else the local server), and why
    they cannot run there (no server answers), or None when they can."""
    from psycopg import pq
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    override = environ.get("CCBMDM_TEST_PG_DSN")
    dsn = override or local
    # libpq's ping, as pg_isready: does a server accept connections, whatever the credentials
    if pq.PGconn.ping(make_conninfo(dsn, connect_timeout=2).encode()) == pq.Ping.OK:
        return dsn, None
    parts = conninfo_to_dict(dsn)
    where = f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}"
    if override:
        return dsn, f"no PostgreSQL answers at {where}, which CCBMDM_TEST_PG_DSN names"
    return dsn, f"no PostgreSQL answers at {where}; set CCBMDM_TEST_PG_DSN"


@functools.cache
def _postgres() -> tuple[str, str | None]:
    return choose_postgres(os.environ)  # once per run: a server that answers stays up


def pg_dsn() -> str:
    """The DSN of the PostgreSQL server the calling test runs on; skips the test, saying why,
    when no server answers."""
    import pytest

    dsn, unavailable = _postgres()
    if unavailable:
        pytest.skip(unavailable)
    return dsn


@contextmanager
def postgres_schema(dsn: str, name: str = "t") -> Iterator[str]:
    """A schema of its own in the database ``dsn`` names, dropped afterwards: the DSN that
    works in it."""
    import psycopg

    schema = f"{name}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in dsn else "?"
    try:
        yield f"{dsn}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def contract_of(sample: Path) -> str:
    """The contract a sample is written for: samples/<system>/<Root>[--variant].xml."""
    return f"{sample.parent.name}/{sample.stem.split('--')[0]}"


def sample(contract: str, variant: str | None = None) -> bytes:
    """The bytes of a shipped sample message."""
    system, root = contract.split("/")
    name = f"{root}--{variant}.xml" if variant else f"{root}.xml"
    return (REPO / "contracts" / "samples" / system / name).read_bytes()


def with_header(message: bytes, **elements: str | None) -> bytes:
    """A message with elements of its header set (``flow="SA_SYNC"``, ``correlation_id=…``) or
    removed (None); an element the message lacks is added after its messageId."""
    for name, value in elements.items():
        tag = re.sub(r"_(.)", lambda m: m.group(1).upper(), name).encode()  # correlationId
        element = b"" if value is None else b"<%s>%s</%s>" % (tag, value.encode(), tag)
        pattern = rb"<%s>[^<]*</%s>" % (tag, tag)
        if re.search(pattern, message):
            message = re.sub(pattern, element, message, count=1)
        else:
            message = message.replace(b"</messageId>", b"</messageId>" + element, 1)
    return message


def run_python(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ...`` of this interpreter in ``cwd``, capturing its output."""
    environment = {**os.environ, **env} if env else None
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )
