"""The query API: read-only HTTP over the read models, with an OpenAPI document at ``/docs``.

Every answer is JSON. Bad input gets a 4xx with ``{"error": code, "detail": …}``, never
a 500: 422 for a parameter of the wrong type or range, 400 for a cursor this API did not
issue, a NUL in any parameter or an impossible date range; limits are capped at
``max_limit``. A database that is away (or a read model not created yet) answers 503
with ``Retry-After``. Each operation's OpenAPI entry documents exactly these answers.

**Read-your-writes.** A client that just issued a command passes the position it got
back: ``min_version`` for a post, ``event_id`` for the orders views. The request then
waits, at most ``wait_s`` (capped by the server's ``wait_timeout_s``), until the
projection has applied it, and answers 200 with the fresh row, or 503
``{"error": "not_yet_applied"}`` with ``Retry-After`` when the time is up. Answers to
such requests, 200 and 503 alike, carry ``X-Waited-Ms``: how long the request waited
for the projection.

**Status.** ``GET /status`` serves the ``projectionist status --json`` document when the
composition root hands one in (``status=``; this package cannot build it: it needs the
broker's watermarks).
"""

# No `from __future__ import annotations`: FastAPI reads the route annotations at runtime.

import asyncio
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from projections.query.read_models import BadCursor, ReadModels
from schemas.errors import ProjectionistError

__all__ = ["ApiError", "create_app"]

MAX_DAYS = 366  # /sales/daily answers at most a year per request

IdPath = Annotated[str, Path(min_length=1, max_length=200)]
WaitQuery = Annotated[
    float | None,
    Query(gt=0, description="longest wait for read-your-writes, seconds (capped by the server)"),
]
EventIdQuery = Annotated[
    UUID | None,
    Query(description="read-your-writes: wait until the orders projection applied this event"),
]


class Invalid(BaseModel):
    where: str
    problem: str


class Problem(BaseModel):
    """Every answer other than 200: a code, and a sentence (or, for 422, what was wrong where)."""

    error: str
    detail: str | list[Invalid]


_WHAT = {
    400: "a NUL in the path or a parameter, a cursor this API did not issue, a bad range",
    404: "no such row (or projection)",
    410: "the post was deleted",
    422: "a parameter of the wrong type or out of range",
    503: "the database is away, or the projection has not applied the event yet",
}


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": Problem, "description": _WHAT[status]}
        if status == 503:
            entry["headers"] = {
                "Retry-After": {"description": "seconds", "schema": {"type": "string"}}
            }
        out[status] = entry
    return out


class ApiError(Exception):
    """An answer other than 200, with a machine-readable code and a human sentence."""

    def __init__(
        self, status: int, code: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers


#: the ``status --json`` document for some projections (None: all of them); raises
#: ``LookupError`` for an unknown projection, ``ProjectionistError`` when it cannot be built
StatusSource = Callable[[list[str] | None], dict[str, Any]]


def create_app(
    reads: ReadModels,
    *,
    wait_timeout_s: float = 5.0,
    max_limit: int = 500,
    status: StatusSource | None = None,
) -> FastAPI:
    """The FastAPI application over ``reads`` (no I/O until a request arrives)."""
    app = FastAPI(
        title="Projectionist query API",
        version="1",
        description=(
            "Read-only views over Projectionist's read models: the tag cloud, posts, "
            "orders, customers and daily sales. Money is exact: `*_minor` integers in "
            "the currency's minor unit, plus a decimal string."
        ),
        responses=_documented(400),
    )
    _install_error_handlers(app)

    def limit_of(limit: int) -> int:
        return min(limit, max_limit)

    async def wait_until(
        check: Callable[[], bool], wait_s: float | None, what: str, response: Response
    ) -> None:
        budget = min(wait_s if wait_s is not None else wait_timeout_s, wait_timeout_s)
        waited = await _wait_until(check, budget, what, app.state.waiting)
        response.headers["X-Waited-Ms"] = str(round(waited * 1000))

    async def wait_for_orders_event(
        event_id: UUID | None, wait_s: float | None, response: Response
    ) -> None:
        if event_id is not None:
            eid = str(event_id)
            await wait_until(lambda: reads.orders_applied(eid), wait_s, f"event {eid}", response)

    app.state.waiting = _Gauge()

    @app.get("/healthz", tags=["service"], summary="Liveness, and requests waiting right now")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "waiting_for_projection": app.state.waiting.value}

    if status is not None:
        _add_status_route(app, status)

    @app.get(
        "/tags",
        tags=["blog"],
        summary="The tag cloud, most posts first",
        responses=_documented(422, 503),
    )
    async def tags(
        limit: Annotated[int, Query(ge=1, description=f"at most {max_limit}")] = 20,
    ) -> list[dict[str, Any]]:
        return await run_in_threadpool(reads.tags, limit_of(limit))

    @app.get(
        "/posts/{post_id}",
        tags=["blog"],
        summary="One post",
        responses=_documented(404, 410, 422, 503),
    )
    async def post(
        post_id: IdPath,
        response: Response,
        min_version: Annotated[
            int | None, Query(ge=1, description="read-your-writes: wait for this version")
        ] = None,
        wait_s: WaitQuery = None,
    ) -> dict[str, Any]:
        if min_version is not None:

            def applied() -> bool:
                stored = reads.post_version(post_id)
                # a delete is terminal: no later version will ever be applied
                return stored is not None and (stored[1] or stored[0] >= min_version)

            what = f"post {post_id!r} version {min_version}"
            await wait_until(applied, wait_s, what, response)
        row = await run_in_threadpool(reads.post, post_id)
        if row is None:
            raise ApiError(404, "not_found", f"no post {post_id!r}")
        if row["deleted"]:
            raise ApiError(410, "gone", f"post {post_id!r} was deleted")
        return row

    @app.get(
        "/posts",
        tags=["blog"],
        summary="Live posts, newest first (keyset pagination)",
        responses=_documented(422, 503),
    )
    async def posts(
        tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, description=f"at most {max_limit}")] = 20,
        cursor: Annotated[
            str | None, Query(max_length=1_000, description="next_cursor of the previous page")
        ] = None,
    ) -> dict[str, Any]:
        try:
            page = await run_in_threadpool(
                lambda: reads.posts(tag=tag, limit=limit_of(limit), cursor=cursor)
            )
        except BadCursor as exc:
            raise ApiError(400, "bad_cursor", str(exc)) from None
        return {"items": page.items, "next_cursor": page.next_cursor}

    @app.get(
        "/orders/{order_id}",
        tags=["orders"],
        summary="One order's summary",
        responses=_documented(404, 422, 503),
    )
    async def order(
        order_id: IdPath,
        response: Response,
        event_id: EventIdQuery = None,
        wait_s: WaitQuery = None,
    ) -> dict[str, Any]:
        await wait_for_orders_event(event_id, wait_s, response)
        row = await run_in_threadpool(reads.order, order_id)
        if row is None:
            raise ApiError(404, "not_found", f"no order {order_id!r}")
        return row

    @app.get(
        "/customers/{customer_id}",
        tags=["orders"],
        summary="A customer's statistics",
        responses=_documented(404, 422, 503),
    )
    async def customer(
        customer_id: IdPath,
        response: Response,
        event_id: EventIdQuery = None,
        wait_s: WaitQuery = None,
    ) -> dict[str, Any]:
        await wait_for_orders_event(event_id, wait_s, response)
        row = await run_in_threadpool(reads.customer, customer_id)
        if row is None:
            raise ApiError(404, "not_found", f"no orders for customer {customer_id!r}")
        return row

    @app.get(
        "/sales/daily",
        tags=["orders"],
        summary="Orders and revenue per day and currency",
        responses=_documented(400, 422, 503),
    )
    async def daily_sales(
        response: Response,
        start: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD")],
        end: Annotated[date, Query(alias="to", description="last day (inclusive), YYYY-MM-DD")],
        currency: Annotated[str | None, Query(pattern="^[A-Z]{3}$")] = None,
        event_id: EventIdQuery = None,
        wait_s: WaitQuery = None,
    ) -> list[dict[str, Any]]:
        if end < start:
            raise ApiError(400, "bad_range", f"'to' ({end}) is before 'from' ({start})")
        if end - start >= timedelta(days=MAX_DAYS):
            raise ApiError(400, "bad_range", f"at most {MAX_DAYS} days per request")
        await wait_for_orders_event(event_id, wait_s, response)
        return await run_in_threadpool(
            lambda: reads.daily_sales(start=start, end=end, currency=currency)
        )

    @app.get(
        "/notifications",
        tags=["notifications"],
        summary="Order e-mails by status (failed: permanently rejected, needs a human)",
        responses=_documented(422, 503),
    )
    async def notifications(
        status: Annotated[Literal["pending", "sent", "failed", "suppressed"], Query()] = "failed",
        limit: Annotated[int, Query(ge=1, description=f"at most {max_limit}")] = 20,
    ) -> list[dict[str, Any]]:
        return await run_in_threadpool(
            lambda: reads.notification_outbox(status=status, limit=limit_of(limit))
        )

    return app


def _add_status_route(app: FastAPI, source: StatusSource) -> None:
    @app.get(
        "/status",
        tags=["service"],
        summary="Per projection and partition: state, pause, lag, owner, dead letters",
        description=(
            "The `projectionist status --json` document: per projection its generations "
            "(active, previous, rebuilding), `paused` (since, by, reason; null when "
            "running), and per partition the checkpoint, high watermark, lag, ages, "
            "dead letters and the owning process. Built at most every 2 s."
        ),
        responses=_documented(404, 422, 503),
    )
    async def status_document(
        projection: Annotated[
            list[str] | None, Query(description="only these projections (repeatable)")
        ] = None,
    ) -> dict[str, Any]:
        try:
            return await run_in_threadpool(source, projection)
        except LookupError as exc:
            detail = str(exc.args[0]) if exc.args else str(exc)
            raise ApiError(404, "unknown_projection", detail) from None
        except ProjectionistError as exc:
            detail = f"status unavailable: {type(exc).__name__}: {exc}"
            raise ApiError(503, "unavailable", detail, headers={"Retry-After": "5"}) from None


class _Gauge:
    """Requests waiting for a projection right now (one event loop: no lock needed)."""

    value = 0


async def _wait_until(check: Callable[[], bool], budget: float, what: str, gauge: _Gauge) -> float:
    """Poll ``check`` (a blocking read, off the event loop) until true; return seconds waited."""
    if await run_in_threadpool(check):
        return 0.0
    started = time.monotonic()
    deadline = started + budget
    delay = 0.02
    gauge.value += 1
    try:
        while not await run_in_threadpool(check):
            left = deadline - time.monotonic()
            if left <= 0:
                waited_ms = round((time.monotonic() - started) * 1000)
                raise ApiError(
                    503,
                    "not_yet_applied",
                    f"{what} is not applied yet after {budget:g}s; retry later",
                    headers={"Retry-After": "1", "X-Waited-Ms": str(waited_ms)},
                )
            await asyncio.sleep(min(delay, left))
            delay = min(delay * 2, 0.25)
    finally:
        gauge.value -= 1
    return time.monotonic() - started


def _body(
    status: int, code: str, detail: object, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.middleware("http")
    async def _no_nul(request: Request, call_next: Callable[[Request], Any]) -> Any:
        # A NUL names no row, and PostgreSQL cannot even compare one: bad input, not an
        # outage. One check for the path and every parameter, before any route runs.
        if "\x00" in request.url.path or any("\x00" in v for v in request.query_params.values()):
            return _body(400, "bad_request", "the path or a parameter contains NUL")
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return _body(exc.status, exc.code, exc.detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in err.get("loc", ())), "problem": err.get("msg")}
            for err in exc.errors()
        ]
        return _body(422, "invalid_request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _body(exc.status_code, code, exc.detail)

    @app.exception_handler(SQLAlchemyError)
    async def _database(_request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # The database is away, or the projection has not created its tables yet.
        detail = f"read models unavailable: {type(exc).__name__}"
        return _body(503, "unavailable", detail, {"Retry-After": "5"})
