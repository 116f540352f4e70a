"""The console's ASGI app, mounted at ``/console`` on a node's HTTP endpoint: the overview, the
lists of requests, a request's page, and the operator's resubmit and discard, each kept in the
audit trail.

Starlette does the web's plumbing (routing, query strings, forms, cookies, templates); the
store work runs in its thread pool, as the receiver's does, so that no page holds up the
messages the same server receives.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from functools import partial
from importlib.resources import files
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ccbmdm.runtime import audit, history, operations
from ccbmdm.runtime.console.attempts import Attempts
from ccbmdm.runtime.console.reading import (
    CHART_MINUTES,
    KINDS,
    Filters,
    Refused,
    listing,
    overview,
    request_row,
)
from ccbmdm.runtime.console.sessions import Session, Sessions
from ccbmdm.runtime.lifecycles.sync import SyncRequestMonitor
from ccbmdm.runtime.messages.contracts import ContractRegistry
from ccbmdm.runtime.messaging.http import Credential
from ccbmdm.runtime.store import Store

PREFIX = "/console"
_HEADERS = {
    # nothing but this console's own stylesheet; no script, no frame, no form posted elsewhere
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
Handler = Callable[[Request, Session], Awaitable[Response]]
# what a row's page is called, for each kind ``runtime.history`` reads
TITLES = {
    "sync_request": "CCB sync request",
    "usage_request": "CCB usage request",
    "mdm_sync_request": "MDM inbound sync request",
    "usage_transaction": "MDM usage transaction",
    "outbox": "Outbox message",
    "inbox": "Inbox message",
}


class Console:
    """One node's console over the store its runtime works on."""

    def __init__(
        self,
        node: str,
        store: Store,
        credentials: Iterable[Credential],
        nodes: list[str],
        monitor: SyncRequestMonitor | None = None,
        contracts: ContractRegistry | None = None,
        key: bytes | None = None,
    ) -> None:
        self.node = node
        self.store = store
        self.nodes = nodes  # the nodes whose rows the overview shows
        self.monitor = monitor  # resubmits re-take snapshots: only a runtime hosting CCB can
        # what decodes the messages a request page shows, personal values masked (never
        # unmasked here: that is for an operator's terminal, ``ccbmdm show --unmask``)
        self.contracts = contracts
        self.sessions = Sessions(node, credentials, key)
        self.attempts = Attempts()
        environment = jinja2.Environment(
            loader=jinja2.PackageLoader("ccbmdm.runtime.console", "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        environment.filters["instant"] = _instant
        environment.filters["age"] = _age
        environment.filters["reads_as"] = lambda state, kind: history.reads_as(kind, state)
        # the package's own folder (an editable install links its files from the source tree)
        static = StaticFiles(
            directory=str(files("ccbmdm.runtime.console") / "static"), follow_symlink=True
        )
        self.app = Starlette(
            routes=[
                Mount(
                    PREFIX,
                    routes=[
                        Route("/", self.signed_in(self.overview_page), name="overview"),
                        Route("/login", self.login_page, methods=["GET"], name="login"),
                        Route("/login", self.login, methods=["POST"]),
                        Route(
                            "/logout", self.signed_in(self.logout), methods=["POST"], name="logout"
                        ),
                        Route("/requests", self.signed_in(self.list_page), name="requests"),
                        Route(
                            "/requests/{kind}/{id:int}",
                            self.signed_in(self.request_page),
                            name="request",
                        ),
                        Route(
                            "/requests/sync_request/{id:int}/resubmit",
                            self.signed_in(self.resubmit),
                            methods=["POST"],
                            name="resubmit",
                        ),
                        Route(
                            "/requests/sync_request/{id:int}/discard",
                            self.signed_in(self.discard),
                            methods=["POST"],
                            name="discard",
                        ),
                        Mount("/static", static, name="static"),
                    ],
                )
            ],
        )

        # links as paths, not absolute URLs: right behind a proxy that rewrites the host too
        environment.globals["url_for"] = lambda name, **params: self.app.url_path_for(
            name, **params
        )
        self.templates = Jinja2Templates(env=environment)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    # -- pages and their plumbing -------------------------------------------------------------

    def page(
        self,
        request: Request,
        template: str,
        status: int = 200,
        session: Session | None = None,
        **context: Any,
    ) -> Response:
        response = self.templates.TemplateResponse(
            request,
            template,
            {"node": self.node, "session": session, "kinds": KINDS, **context},
            status_code=status,
        )
        response.headers.update(_HEADERS)
        return response

    def refused(self, request: Request, session: Session | None, problem: Refused) -> Response:
        return self.page(request, "refused.html", problem.status, session, message=str(problem))

    def signed_in(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page or action for a signed-in operator. Without a session, a page leads to the
        login page, and an action is answered by it (401) with nothing done; a POST without
        the session's token, or from another site, is 403 with nothing done."""

        async def guarded(request: Request) -> Response:
            session = self.sessions.read(request.cookies.get(self.sessions.cookie))
            if session is None:
                if request.method == "GET":  # back to this page once signed in
                    after = urlencode({"next": request.url.path})
                    return RedirectResponse(f"{PREFIX}/login?{after}", 303)
                return self.login_form(request, 401, f"{PREFIX}/")
            if request.method == "POST":
                form = await request.form()
                token = form.get("csrf")
                carried = session.carries(token if isinstance(token, str) else None)
                if not carried or not _same_host(request):
                    return self.refused(
                        request,
                        session,
                        Refused(
                            "this form was not sent from this console's own page (its token "
                            "is missing or wrong); nothing was changed. Open the page again "
                            "and repeat the action",
                            403,
                        ),
                    )
            try:
                return await handler(request, session)
            except Refused as problem:
                return self.refused(request, session, problem)

        return guarded

    def login_form(
        self, request: Request, status: int, after: str, problem: str | None = None
    ) -> Response:
        return self.page(
            request,
            "login.html",
            status,
            after=after if after.startswith(PREFIX) else f"{PREFIX}/",
            problem=problem,
            possible=self.sessions.open,
        )

    async def login_page(self, request: Request) -> Response:
        return self.login_form(request, 200, request.query_params.get("next", f"{PREFIX}/"))

    async def login(self, request: Request) -> Response:
        form = await request.form()
        user, password, after = (str(form.get(k) or "") for k in ("user", "password", "next"))
        address = request.client.host if request.client else "unknown"
        wait_s = self.attempts.wait_s(user, address)
        if wait_s > 0:
            minutes = math.ceil(wait_s / 60)
            response = self.login_form(
                request,
                429,
                after,
                f"too many failed sign-ins for this user or from this address; "
                f"try again in {minutes} minute{'s' if minutes > 1 else ''}",
            )
            response.headers["retry-after"] = str(math.ceil(wait_s))
            return response
        cookie = self.sessions.sign_in(user, password)
        if cookie is None:
            self.attempts.failed(user, address)
            return self.login_form(
                request, 401, after, "that user and password do not sign in to this node"
            )
        self.attempts.succeeded(user, address)
        response = RedirectResponse(after if after.startswith(PREFIX) else f"{PREFIX}/", 303)
        response.set_cookie(
            self.sessions.cookie,
            cookie,
            max_age=int(self.sessions.lifetime_s),
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request, session: Session) -> Response:
        response = RedirectResponse(f"{PREFIX}/login", 303)
        response.delete_cookie(self.sessions.cookie, path=PREFIX)
        return response

    async def overview_page(self, request: Request, session: Session) -> Response:
        found = await run_in_threadpool(overview, self.store, self.nodes)
        trail = await run_in_threadpool(audit.latest, self.store)
        return self.page(
            request,
            "overview.html",
            session=session,
            overviews=found.nodes,
            errors=found.errors,
            more_errors=found.more_errors,
            trail=trail,
            minutes=CHART_MINUTES,
            now=datetime.now(UTC),
        )

    async def list_page(self, request: Request, session: Session) -> Response:
        filters = Filters.parse(request.query_params)
        found = await run_in_threadpool(listing, self.store, filters)
        following = (
            f"?{urlencode(filters.query(found.next_after))}"
            if found.next_after is not None
            else None
        )
        first = f"?{urlencode(filters.query())}" if filters.after is not None else None
        return self.page(
            request,
            "requests.html",
            session=session,
            filters=filters,
            found=found,
            following=following,
            first=first,
        )

    async def request_page(self, request: Request, session: Session) -> Response:
        kind, row_id = request.path_params["kind"], request.path_params["id"]
        if kind not in history.KINDS:
            raise Refused(f"no such kind of row: {kind!r}; one of {', '.join(history.KINDS)}", 404)
        try:
            found = await run_in_threadpool(
                history.life, self.store, f"{kind}:{row_id}", self.contracts
            )
        except history.NotFound as exc:
            raise Refused(str(exc), 404) from None
        trail = await run_in_threadpool(audit.trail, self.store, (kind, row_id))
        return self.page(
            request,
            "request.html",
            session=session,
            title=TITLES[kind],
            life=found,
            trail=trail,
            actions=any(a.name in ("resubmit", "discard") for a in found.actions),
            can_resubmit=self.monitor is not None,
            done=request.query_params.get("done"),
        )

    async def resubmit(self, request: Request, session: Session) -> Response:
        request_id: int = request.path_params["id"]
        if self.monitor is None:
            raise Refused(
                "this runtime hosts no ccb node, so it cannot re-take the request's snapshot; "
                "resubmit it from the runtime that hosts CCB",
                409,
            )
        outcome = await run_in_threadpool(
            self.resubmitted, self.monitor, request_id, session.operator
        )
        return self.done(request_id, outcome)

    def resubmitted(self, monitor: SyncRequestMonitor, request_id: int, operator: str) -> str:
        state = self.state_of(request_id)
        if state != "ERROR":
            raise Refused(
                f"sync request {request_id} is {state}; only a request in ERROR can be "
                "resubmitted. Nothing was changed",
                409,
            )
        result = operations.resubmit(monitor, [request_id])
        if result.sent + result.discarded + result.errors == 0:  # taken meanwhile
            raise Refused(
                f"sync request {request_id} is no longer in ERROR; nothing was changed", 409
            )
        outcome = (
            "sent again under a new message id"
            if result.sent
            else "no difference to send: discarded"
            if result.discarded
            else f"in ERROR again: {self.reason_of(request_id)}"
        )
        with self.store.transaction() as tx:
            audit.record(
                tx, self.node, operator, "resubmit", ("sync_request", request_id), None, outcome
            )
        return outcome

    async def discard(self, request: Request, session: Session) -> Response:
        request_id: int = request.path_params["id"]
        form = await request.form()
        reason = str(form.get("reason") or "").strip()
        if not reason:
            raise Refused(
                f"a discard needs a reason: say why sync request {request_id} will not reach "
                "MDM. Nothing was changed",
                400,
            )
        record = partial(
            audit.record,
            node=self.node,
            operator=session.operator,
            action="discard",
            target=("sync_request", request_id),
            reason=reason,
            outcome="discarded",
        )
        try:
            await run_in_threadpool(operations.discard, self.store, request_id, reason, record)
        except operations.NotInError as exc:
            raise Refused(f"{exc}. Nothing was changed", 409) from None
        return self.done(request_id, "discarded")

    def done(self, request_id: int, outcome: str) -> Response:
        """After an action, its request's page (a reload repeats nothing)."""
        query = urlencode({"done": outcome})
        return RedirectResponse(f"{PREFIX}/requests/sync_request/{request_id}?{query}", 303)

    def state_of(self, request_id: int) -> str:
        return str(request_row(self.store, KINDS["sync_request"], request_id)["state"])

    def reason_of(self, request_id: int) -> str:
        return str(request_row(self.store, KINDS["sync_request"], request_id)["reason"] or "")


def _same_host(request: Request) -> bool:
    """Whether the page a POST came from is this host's, when the browser says (``Origin``).
    The scheme is left out: behind a proxy that ends HTTPS, the browser's is not the node's."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


def _instant(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest unit that reads well (42 s, 7 min, 3 h 5 min, 2 d 4 h)."""
    if value is None:
        return "none"
    seconds = int(((now or datetime.now(UTC)) - value).total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"
