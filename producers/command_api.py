"""The command HTTP API (FastAPI): blog posts and orders, writes only.

Responses carry what the query side needs for read-your-writes: the aggregate's new
``version`` (also as the ``ETag``) and the ``event_id`` of the event it emitted.
Concurrent edits use optimistic concurrency: send ``If-Match: "<version>"`` (or
``expected_version`` in the body); a stale version answers 409 with the current one.
Every refusal is a JSON body ``{"error": …, "detail": …}`` with a 4xx status, documented
per operation in the OpenAPI document; a database outage is 503.

Ids (``post_id``, ``order_id``, ``customer_id``) are 1-200 of ``A-Z a-z 0-9 . _ ~ -``
(:data:`producers._rules.ID_PATTERN`): an id is then a URL path segment and a header
value as it is. Every rule is checked before the transaction, so a command that commits
always gets its answer.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, Header, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers._rules import (
    ID_PATTERN,
    MAX_DESCRIPTION,
    MAX_LINES,
    MAX_NAME,
    MAX_QUANTITY,
    MAX_SKU,
    MAX_TAG,
    MAX_TAGS,
    MAX_TITLE,
    MAX_UNIT_PRICE,
    MAX_VERSION,
)
from producers.blog_service import BlogService
from producers.command_errors import AggregateNotFound, InvalidCommand, VersionConflict
from producers.order_service import OrderService
from producers.outbox import CommandResult
from schemas import MAX_EMAIL_LENGTH
from schemas.errors import InvalidEventError

__all__ = ["create_command_app"]

_Id = Annotated[str, Path(pattern=ID_PATTERN, description="1-200 of A-Z a-z 0-9 . _ ~ -")]
_IfMatch = Annotated[
    str | None,
    Header(max_length=40, description='the version you read, as its ETag: "3" (or *)'),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=20_000)


def _rule(**constraints: Any) -> dict[str, Any]:
    """JSON-schema constraints the input rules (``producers._rules``) enforce, documented
    here and checked there, so a refusal names the rule in its own words."""
    return constraints


class NewPost(_Body):
    title: str = Field(json_schema_extra=_rule(minLength=1, maxLength=MAX_TITLE, pattern=r"\S"))
    description: str = Field(default="", json_schema_extra=_rule(maxLength=MAX_DESCRIPTION))
    tags: list[str] = Field(
        default_factory=list,
        json_schema_extra=_rule(
            maxItems=MAX_TAGS, items={"type": "string", "minLength": 1, "maxLength": MAX_TAG}
        ),
    )
    author: str = Field(json_schema_extra=_rule(minLength=1, maxLength=MAX_NAME, pattern=r"\S"))
    post_id: str | None = Field(default=None, pattern=ID_PATTERN)


class PostEdit(_Body):
    title: str = Field(json_schema_extra=_rule(minLength=1, maxLength=MAX_TITLE, pattern=r"\S"))
    description: str = Field(default="", json_schema_extra=_rule(maxLength=MAX_DESCRIPTION))
    tags: list[str] = Field(
        default_factory=list,
        json_schema_extra=_rule(
            maxItems=MAX_TAGS, items={"type": "string", "minLength": 1, "maxLength": MAX_TAG}
        ),
    )
    expected_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)


class OrderLine(_Body):
    sku: str = Field(json_schema_extra=_rule(minLength=1, maxLength=MAX_SKU))
    quantity: int = Field(json_schema_extra=_rule(minimum=1, maximum=MAX_QUANTITY))
    unit_price_minor: int = Field(json_schema_extra=_rule(minimum=0, maximum=MAX_UNIT_PRICE))


class NewOrder(_Body):
    customer_id: str = Field(json_schema_extra=_rule(pattern=ID_PATTERN))
    customer_email: str = Field(json_schema_extra=_rule(maxLength=MAX_EMAIL_LENGTH, format="email"))
    currency: str = Field(json_schema_extra=_rule(pattern="^[A-Z]{3}$"))
    lines: list[OrderLine] = Field(json_schema_extra=_rule(minItems=1, maxItems=MAX_LINES))
    order_id: str | None = Field(default=None, pattern=ID_PATTERN)


class Accepted(BaseModel):
    """What a command that was carried out answers (the ETag header repeats ``version``)."""

    version: int
    event_id: str | None
    event_type: str | None


class PostAccepted(Accepted):
    post_id: str


class OrderAccepted(Accepted):
    order_id: str


class Problem(BaseModel):
    """Every refusal: a short code and what was wrong (one sentence or a list of them)."""

    error: str
    detail: str | list[str]
    current_version: int | None = Field(default=None, description="409 only")


def _documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    what = {
        404: "no such post or order, or it was deleted",
        409: "the expected version is not the current one",
        422: "the input breaks a rule (If-Match not a version too); nothing was written",
        503: "the database is unavailable; retry later",
    }
    return {s: {"model": Problem, "description": what[s]} for s in statuses}


def _problem(status: int, error: str, detail: Any, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status)


def _expected(if_match: str | None, body_version: int | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return body_version
    raw = if_match.strip().removeprefix("W/").strip('"')
    # isascii: str.isdigit() also holds for "²" and other digits int() refuses
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_VERSION:
        raise InvalidCommand([f'If-Match: {if_match[:40]!r} is not a version like "3"'])
    if body_version is not None and body_version != int(raw):
        raise InvalidCommand(["If-Match and expected_version disagree"])
    return int(raw)


def _answer(
    result: CommandResult, *, status: int = 200, id_field: str, location: str | None = None
) -> JSONResponse:
    body = {
        id_field: result.aggregate_id,
        "version": result.version,
        "event_id": result.event_id,
        "event_type": result.event_type,
    }
    headers = {"ETag": f'"{result.version}"'}
    if location is not None:
        headers["Location"] = location + quote(result.aggregate_id, safe="")
    return JSONResponse(body, status_code=status, headers=headers)


def create_command_app(*, blog: BlogService, orders: OrderService) -> FastAPI:
    """The API over two command services (both built by the caller, e.g. the CLI)."""
    app = FastAPI(title="Projectionist commands", version="1")

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_req: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            "body: not valid JSON"
            if e["type"] == "json_invalid"
            else f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in exc.errors()
        ]
        return _problem(422, "invalid request", problems)

    @app.exception_handler(InvalidCommand)
    async def _invalid(_req: Request, exc: InvalidCommand) -> JSONResponse:
        return _problem(422, "invalid command", exc.problems)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body that is not even text: like malformed JSON
            return _problem(422, "invalid request", [f"body: {exc.detail}"])
        return _problem(exc.status_code, "http error", str(exc.detail))

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

    @app.post(
        "/posts",
        status_code=201,
        response_model=PostAccepted,
        responses=_documented(422, 503),
    )
    def create_post(body: NewPost) -> JSONResponse:
        result = blog.create(
            title=body.title,
            description=body.description,
            tags=body.tags,
            author=body.author,
            post_id=body.post_id,
        )
        return _answer(result, status=201, id_field="post_id", location="/posts/")

    @app.put(
        "/posts/{post_id}",
        response_model=PostAccepted,
        responses=_documented(404, 409, 422, 503),
    )
    def update_post(post_id: _Id, body: PostEdit, if_match: _IfMatch = None) -> JSONResponse:
        result = blog.update(
            post_id,
            title=body.title,
            description=body.description,
            tags=body.tags,
            expected_version=_expected(if_match, body.expected_version),
        )
        return _answer(result, id_field="post_id")

    @app.delete(
        "/posts/{post_id}",
        response_model=PostAccepted,
        responses=_documented(404, 409, 422, 503),
    )
    def delete_post(post_id: _Id, if_match: _IfMatch = None) -> JSONResponse:
        result = blog.delete(post_id, expected_version=_expected(if_match, None))
        return _answer(result, id_field="post_id")

    @app.post(
        "/orders",
        status_code=201,
        response_model=OrderAccepted,
        responses=_documented(422, 503),
    )
    def place_order(body: NewOrder) -> JSONResponse:
        result = orders.place(
            customer_id=body.customer_id,
            customer_email=body.customer_email,
            currency=body.currency,
            lines=[line.model_dump() for line in body.lines],
            order_id=body.order_id,
        )
        return _answer(result, status=201, id_field="order_id", location="/orders/")

    @app.post(
        "/orders/{order_id}/fulfill",
        response_model=OrderAccepted,
        responses=_documented(404, 409, 422, 503),
    )
    def fulfill_order(order_id: _Id, if_match: _IfMatch = None) -> JSONResponse:
        result = orders.fulfill(order_id, expected_version=_expected(if_match, None))
        return _answer(result, id_field="order_id")

    return app
