"""Who is signed in to a node's console: the node's own credentials (its partners' and viewers'
users and passwords), a signed session cookie, and the token every form carries.

The cookie holds the operator's name, the node, when it was issued and the session's CSRF token,
signed with HMAC-SHA256 under a key made when the process starts: nothing is kept on the server,
a restart signs everyone out, and a cookie is good on its own node only. It is HttpOnly and
SameSite=Strict, so neither a script nor another site's form can use it; every form also carries
the session's token, checked on every POST, so that a request forged elsewhere changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ccbmdm.runtime.messaging.http import Credential

LIFETIME_S = 8 * 3600  # an operator's shift; then they sign in again


@dataclass(frozen=True)
class Session:
    operator: str  # the user of the credential signed in with
    csrf: str  # the token this session's forms carry

    def carries(self, token: str | None) -> bool:
        """Whether a form's token is this session's."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    """Signs operators in with the node's users and passwords, and reads their cookies back."""

    def __init__(
        self,
        node: str,
        credentials: Iterable[Credential],
        key: bytes | None = None,
        lifetime_s: float = LIFETIME_S,
    ) -> None:
        self.node = node
        # bearer tokens are for systems; an operator signs in with a user and password
        self.credentials = [c for c in credentials if c.user is not None]
        self.key = key or secrets.token_bytes(32)
        self.lifetime_s = lifetime_s
        self.cookie = f"ccbmdm_console_{node}"

    @property
    def open(self) -> bool:
        """Whether anyone can sign in at all (the node has a user with a password)."""
        return bool(self.credentials)

    def sign_in(self, user: str, password: str) -> str | None:
        """A new session's cookie value for a user and password of this node, else None."""
        known = [
            hmac.compare_digest(user.encode(), (c.user or "").encode())
            & hmac.compare_digest(password.encode(), (c.password or "").encode())
            for c in self.credentials
        ]
        if not any(known):  # every credential compared, so that timing tells nothing
            return None
        payload = {"u": user, "n": self.node, "t": time.time(), "c": secrets.token_urlsafe(32)}
        body = _encode(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body}.{self._signature(body)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie stands for: signed here, for this node, not expired, for a user
        the node still knows; else None."""
        if not cookie or "." not in cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._signature(body).encode()):
            return None
        try:
            payload = json.loads(_decode(body))
        except ValueError:
            return None
        if payload.get("n") != self.node or time.time() - payload.get("t", 0) > self.lifetime_s:
            return None
        if not any(c.user == payload.get("u") for c in self.credentials):
            return None
        return Session(str(payload["u"]), str(payload["c"]))

    def _signature(self, body: str) -> str:
        return _encode(hmac.new(self.key, body.encode(), hashlib.sha256).digest())


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
