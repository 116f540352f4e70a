"""The HTTP binding of docs/flows.md PD-C12: an ASGI app in front of a node's receiver (served by
uvicorn), and a transport that posts stored messages with httpx.

Authentication is HTTP Basic or a bearer token per partner: the credential names the partner,
which is who the inbox deduplicates by. A missing or wrong credential is 401, a technical
failure the sender retries; credentials are never logged. What the partner may post is the
receiver's to decide (403 for a part it does not send here), so that the in-process transport
keeps the same rules.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from ccbmdm.runtime.messaging.receiver import Receiver
from ccbmdm.runtime.messaging.transport import (
    Answer,
    Posting,
    Response,
    TransportError,
    TransportTimeout,
    TransportUnreachable,
)

log = logging.getLogger("ccbmdm.http")
_PATH = re.compile(r"^/ccbmdm/v1/([a-z0-9-]+)/(request|response|ack|notification)$")
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Application = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Credential:
    """How a partner proves who it is: a bearer token, or a user and password (Basic)."""

    token: str | None = None
    user: str | None = None
    password: str | None = None

    def header(self) -> str:
        if self.token is not None:
            return f"Bearer {self.token}"
        pair = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def __repr__(self) -> str:  # never show a secret, not even in a traceback
        return (
            "Credential(token=***)"
            if self.token is not None
            else f"Credential(user={self.user!r}, password=***)"
        )


class ReceiverApp:
    """ASGI application: ``POST /ccbmdm/v1/{flow}/{part}`` into a node's receiver."""

    def __init__(
        self,
        endpoint: Receiver,
        partners: Mapping[str, Credential],
        max_bytes: int = 16 * 1024 * 1024,
        pages: Callable[[str], str | None] | None = None,
        viewers: Mapping[str, Credential] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.partners = dict(partners)
        self.max_bytes = max_bytes
        self.pages = pages  # GET path -> an HTML page (a simulator's entity pages), or None
        # Who may read the pages besides the partners: operators, by HTTP Basic in a browser.
        self.viewers = dict(viewers or {})
        self.mounted: dict[str, Application] = {}  # path -> what answers under it (``mount``)
        seen: dict[str, str] = {}
        for partner, credential in self.partners.items():
            other = seen.setdefault(credential.header(), partner)
            if other != partner:  # the credential names the partner, so it must be its own
                raise ValueError(f"{other} and {partner} present the same credential")

    def mount(self, path: str, app: Application) -> None:
        """Hand the requests for ``path`` and below it to ``app`` (a node's health and metrics,
        its console): what the node serves besides the messages it receives."""
        self.mounted[path.rstrip("/")] = app

    def _mounted_at(self, path: str) -> Application | None:
        for prefix, app in self.mounted.items():
            if path == prefix or path.startswith(prefix + "/"):
                return app
        return None

    def partner_of(self, authorization: str | None) -> str | None:
        if not authorization:
            return None
        for partner, credential in self.partners.items():
            if hmac.compare_digest(authorization.encode(), credential.header().encode()):
                return partner
        return None

    def may_view(self, authorization: str | None) -> bool:
        """A page shows a person's data: only a partner or a viewer of this node may read it."""
        if self.partner_of(authorization) is not None:
            return True
        return authorization is not None and any(
            hmac.compare_digest(authorization.encode(), viewer.header().encode())
            for viewer in self.viewers.values()
        )

    async def _page(self, pages: Callable[[str], str | None], scope: Scope, send: Send) -> bool:
        """Answer a GET of a page: 401 (a Basic challenge a browser answers) before anything is
        looked up, then the page; False when there is no such page."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.may_view(headers.get("authorization")):
            challenge = [
                (b"www-authenticate", b'Basic realm="ccbmdm", charset="UTF-8"'),
                (b"www-authenticate", b'Bearer realm="ccbmdm"'),
            ]
            await _respond(send, 401, b"this page needs the node's credential", challenge)
            return True
        found = await asyncio.to_thread(pages, scope["path"])
        if found is None:
            return False
        await _respond(send, 200, found.encode(), [], "text/html; charset=utf-8")
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            return
        if scope["type"] != "http":
            return
        mounted = self._mounted_at(scope["path"])
        if mounted is not None:
            await mounted(scope, receive, send)
            return
        if (
            scope["method"] == "GET"
            and self.pages is not None
            and await self._page(self.pages, scope, send)
        ):
            return
        match = _PATH.match(scope["path"])
        if scope["method"] != "POST" or match is None:
            await _respond(
                send,
                404,
                b"POST /ccbmdm/v1/{flow}/{part}, part one of request, response, ack, notification",
            )
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        partner = self.partner_of(headers.get("authorization"))
        if partner is None:
            refused = self.endpoint.unauthenticated(match.group(1))
            await _respond(
                send,
                refused.status,
                refused.body,
                [(b"www-authenticate", b'Bearer realm="ccbmdm"')],
            )
            return
        # Whether this partner may post this part here is known before its body is read.
        forbidden = self.endpoint.refusal(partner, match.group(1), match.group(2))
        if forbidden is not None:
            await _respond(send, forbidden.status, forbidden.body)
            return
        declared = headers.get("content-length")
        too_large = self.endpoint.too_large(match.group(1))
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _respond(send, too_large.status, too_large.body)
            return
        body = bytearray()
        while True:  # the cap holds on what arrives too, whatever the header said
            message = await receive()
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await _respond(send, too_large.status, too_large.body)
                return
            if not message.get("more_body"):
                break
        # In a worker thread: storing commits to disk, and a synchronous flow waits for the
        # other system; neither may hold up the other requests this server is answering.
        response = await asyncio.to_thread(
            self.endpoint.receive, partner, match.group(1), match.group(2), bytes(body)
        )
        await _respond(send, response.status, response.body)


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
    media_type: str | None = None,
) -> None:
    content_type = (
        media_type.encode()
        if media_type
        else b"application/xml"
        if body.startswith(b"<?xml")
        else b"text/plain; charset=utf-8"
    )
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


respond = _respond  # for the apps mounted on a node's (``ReceiverApp.mount``)


class HttpTransport:
    """Posts messages to partners' base URLs with each partner's credential and a timeout."""

    def __init__(
        self,
        partners: Mapping[str, str],
        credentials: Mapping[str, Credential],
        timeout_s: float = 30.0,
    ) -> None:
        self.partners = dict(partners)  # partner -> base URL
        self.credentials = dict(credentials)  # partner -> the credential we present to it
        self.timeout_s = timeout_s
        self.client = httpx.Client(timeout=timeout_s)

    def post_many(self, sender: str, partner: str, postings: Sequence[Posting]) -> list[Answer]:
        """One request per message (the binding has no batch resource), over one connection."""
        answers: list[Answer] = []
        for posting in postings:
            try:
                answers.append(self.post(partner, posting.flow, posting.part, posting.body))
            except TransportError as exc:
                answers.append(exc)
        return answers

    def post(self, partner: str, flow: str, part: str, body: bytes) -> Response:
        base = self.partners.get(partner)
        if base is None:
            raise TransportError(f"no address configured for {partner}")
        headers = {"content-type": "application/xml"}
        credential = self.credentials.get(partner)
        if credential is not None:
            headers["authorization"] = credential.header()
        try:
            answer = self.client.post(
                f"{base.rstrip('/')}/ccbmdm/v1/{flow}/{part}", content=body, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # nothing was sent
            raise TransportUnreachable(
                f"cannot reach {partner}: {type(exc).__name__}: {exc}"
            ) from None
        except httpx.TimeoutException as exc:
            raise TransportTimeout(f"timeout posting to {partner}: {type(exc).__name__}") from None
        except httpx.TransportError as exc:
            raise TransportError(f"cannot reach {partner}: {type(exc).__name__}: {exc}") from None
        return Response(answer.status_code, answer.content)

    def close(self) -> None:
        self.client.close()


class Server:
    """A receiver app (or any ASGI app) served by uvicorn in a background thread, on loopback
    by default."""

    def __init__(self, app: Application, host: str = "127.0.0.1", port: int = 0) -> None:
        if port == 0:
            with socket.socket() as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
