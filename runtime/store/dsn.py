"""A store's address as people may see it: the password of a PostgreSQL DSN never shown.

A DSN carries its password in the URI's user information (``postgresql://user:secret@host/db``),
as a URI query parameter (``?password=secret``) or, in the key/value form, as
``password=secret``. Everything the project prints, logs, raises or stores names a database
through ``redacted``; a message from the driver, which may quote the DSN it was given (libpq
does for a DSN it cannot parse), goes through ``scrubbed``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"
# libpq's connection parameters that hold a secret
_SECRET_KEYS = r"(?:password|sslpassword)"
_URI = re.compile(r"^postgres(?:ql)?://", re.IGNORECASE)
# the key/value form starts with one of libpq's parameters
_PAIRS = re.compile(
    r"^\s*(?:host|hostaddr|port|dbname|user|password|passfile|service|sslmode|options)\s*="
)
# a secret in a URI's query: ?password=secret&…
_QUERY_SECRET = re.compile(rf"(?P<key>[?&]{_SECRET_KEYS}=)(?P<value>[^&#]*)", re.IGNORECASE)
# a secret in the key/value form: password=secret, password = 'with spaces\' and quotes'
_PAIR_SECRET = re.compile(
    rf"(?P<key>\b{_SECRET_KEYS}\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'?|[^\s']\S*)", re.IGNORECASE
)


def is_postgres(dsn: str) -> bool:
    """A PostgreSQL DSN (either form); anything else names a SQLite file."""
    return bool(_URI.match(dsn) or _PAIRS.match(dsn))


def redacted(dsn: str) -> str:
    """The DSN with every password replaced by ``***``; a SQLite path as it is."""
    if not is_postgres(dsn):
        return dsn
    shown = _without_user_password(dsn) if _URI.match(dsn) else dsn
    pattern = _QUERY_SECRET if _URI.match(dsn) else _PAIR_SECRET
    shown = pattern.sub(lambda m: m["key"] + MASK, shown)
    # a password libpq reads where the patterns do not look (a malformed DSN) is masked as text
    written = _written_secrets(dsn)
    elsewhere = {s for s in _libpq_secrets(dsn) if not any(s in w for w in written)}
    return _masked(shown, elsewhere)


def scrubbed(text: str, dsn: str) -> str:
    """``text`` (a driver's message, say) with ``dsn`` shown redacted and its passwords masked
    wherever they appear."""
    if not is_postgres(dsn):
        return text
    secrets = _written_secrets(dsn) | _libpq_secrets(dsn)
    shown = redacted(dsn)
    return shown.join(_masked(part, secrets) for part in text.split(dsn))


def _without_user_password(uri: str) -> str:
    """``scheme://user:***@hosts…``: the user information ends at the last ``@`` before the
    path or the query (an unencoded ``@`` in a password included)."""
    scheme = _URI.match(uri)
    assert scheme is not None
    start = scheme.end()
    head = re.split(r"[?#]", uri[start:], maxsplit=1)[0]
    at = head.rfind("@")
    if at < 0 or ":" not in head[:at]:
        return uri
    colon = start + head.index(":")
    return f"{uri[: colon + 1]}{MASK}{uri[start + at :]}"


def _written_secrets(dsn: str) -> set[str]:
    """Every password the DSN holds where the patterns find it, as written and decoded."""
    found: set[str] = set()
    scheme = _URI.match(dsn)
    if scheme:
        head = re.split(r"[?#]", dsn[scheme.end() :], maxsplit=1)[0]
        at = head.rfind("@")
        if at >= 0 and ":" in head[:at]:
            found.add(head[head.index(":") + 1 : at])
        found |= {m["value"] for m in _QUERY_SECRET.finditer(dsn)}
    else:
        found |= {m["value"] for m in _PAIR_SECRET.finditer(dsn)}
        found |= {v[1:-1] for v in found if len(v) >= 2 and v[0] == v[-1] == "'"}
    found |= {unquote(secret) for secret in found}
    return {secret for secret in found if secret}


def _libpq_secrets(dsn: str) -> set[str]:
    """The passwords as libpq itself parses the DSN (it may read a malformed one otherwise)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parsed = conninfo_to_dict(dsn)
    except Exception:  # a DSN libpq cannot parse: the patterns above are all there is
        return set()
    return {str(parsed[key]) for key in ("password", "sslpassword") if parsed.get(key)}


def _masked(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):  # the longest first: no part left
        text = text.replace(secret, MASK)
    return text
