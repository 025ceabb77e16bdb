"""The command HTTP API (FastAPI): blog posts and orders, writes only.

Responses carry what the query side needs for read-your-writes: the aggregate's new
``version`` (also as the ``ETag``) and the ``event_id`` of the event it emitted.
Concurrent edits use optimistic concurrency: send ``If-Match: "<version>"`` (or
``expected_version`` in the body); a stale version answers 409 with the current one.
Every refusal is a JSON body ``{"error": …, "detail": …}`` with a 4xx status; a
database outage is 503.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError

from producers.blog_service import BlogService
from producers.command_errors import AggregateNotFound, InvalidCommand, VersionConflict
from producers.order_service import OrderService
from producers.outbox import CommandResult
from schemas.errors import InvalidEventError

__all__ = ["create_command_app"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=20_000)


class NewPost(_Body):
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    author: str
    post_id: str | None = Field(default=None, min_length=1, max_length=200)


class PostEdit(_Body):
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    expected_version: int | None = Field(default=None, ge=1)


class OrderLine(_Body):
    sku: str
    quantity: int
    unit_price_minor: int


class NewOrder(_Body):
    customer_id: str
    customer_email: str
    currency: str
    lines: list[OrderLine]
    order_id: str | None = Field(default=None, min_length=1, max_length=200)


def _problem(status: int, error: str, detail: Any, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status)


def _expected(if_match: str | None, body_version: int | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return body_version
    raw = if_match.strip().removeprefix("W/").strip('"')
    if not raw.isdigit() or int(raw) < 1:
        raise InvalidCommand([f'If-Match: {if_match!r} is not a version like "3"'])
    if body_version is not None and body_version != int(raw):
        raise InvalidCommand(["If-Match and expected_version disagree"])
    return int(raw)


def _answer(result: CommandResult, *, status: int = 200, id_field: str) -> JSONResponse:
    body = {
        id_field: result.aggregate_id,
        "version": result.version,
        "event_id": result.event_id,
        "event_type": result.event_type,
    }
    return JSONResponse(body, status_code=status, headers={"ETag": f'"{result.version}"'})


def create_command_app(*, blog: BlogService, orders: OrderService) -> FastAPI:
    """The API over two command services (both built by the caller, e.g. the CLI)."""
    app = FastAPI(title="Projectionist commands", version="1")

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_req: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        return _problem(422, "invalid request", problems)

    @app.exception_handler(InvalidCommand)
    async def _invalid(_req: Request, exc: InvalidCommand) -> JSONResponse:
        return _problem(422, "invalid command", exc.problems)

    @app.exception_handler(InvalidEventError)
    async def _bad_event(_req: Request, exc: InvalidEventError) -> JSONResponse:
        # Input rules should catch everything first; the contract's own check is the net.
        return _problem(422, "invalid event", str(exc))

    @app.exception_handler(AggregateNotFound)
    async def _not_found(_req: Request, exc: AggregateNotFound) -> JSONResponse:
        return _problem(404, "not found", str(exc))

    @app.exception_handler(VersionConflict)
    async def _conflict(_req: Request, exc: VersionConflict) -> JSONResponse:
        return _problem(409, "version conflict", str(exc), current_version=exc.current)

    @app.exception_handler(OperationalError)
    async def _db_down(_req: Request, _exc: OperationalError) -> JSONResponse:
        return _problem(503, "database unavailable", "retry later")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/posts", status_code=201)
    def create_post(body: NewPost) -> JSONResponse:
        result = blog.create(
            title=body.title,
            description=body.description,
            tags=body.tags,
            author=body.author,
            post_id=body.post_id,
        )
        response = _answer(result, status=201, id_field="post_id")
        response.headers["Location"] = f"/posts/{result.aggregate_id}"
        return response

    @app.put("/posts/{post_id}")
    def update_post(
        post_id: str,
        body: PostEdit,
        if_match: Annotated[str | None, Header()] = None,
    ) -> JSONResponse:
        result = blog.update(
            post_id,
            title=body.title,
            description=body.description,
            tags=body.tags,
            expected_version=_expected(if_match, body.expected_version),
        )
        return _answer(result, id_field="post_id")

    @app.delete("/posts/{post_id}")
    def delete_post(post_id: str, if_match: Annotated[str | None, Header()] = None) -> JSONResponse:
        result = blog.delete(post_id, expected_version=_expected(if_match, None))
        return _answer(result, id_field="post_id")

    @app.post("/orders", status_code=201)
    def place_order(body: NewOrder) -> JSONResponse:
        result = orders.place(
            customer_id=body.customer_id,
            customer_email=body.customer_email,
            currency=body.currency,
            lines=[line.model_dump() for line in body.lines],
            order_id=body.order_id,
        )
        response = _answer(result, status=201, id_field="order_id")
        response.headers["Location"] = f"/orders/{result.aggregate_id}"
        return response

    @app.post("/orders/{order_id}/fulfill")
    def fulfill_order(
        order_id: str, if_match: Annotated[str | None, Header()] = None
    ) -> JSONResponse:
        result = orders.fulfill(order_id, expected_version=_expected(if_match, None))
        return _answer(result, id_field="order_id")

    return app
