"""The hostile requests of the report, one by one, against both APIs on SQLite and PostgreSQL.

Each answers a 4xx JSON body ``{"error", "detail"}`` (never a 500, never a dropped
connection); a refused command writes nothing, so a corrected retry succeeds.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from producers.command_api import create_command_app
from projections import BlogProjection, NotificationsProjection, OrdersProjection, make_engine
from projections.query.api import create_app
from projections.query.read_models import ReadModels
from tests.support.commands import command_side

LINE = {"sku": "S-1", "quantity": 1, "unit_price_minor": 100}
ORDER = {
    "customer_id": "c-1",
    "customer_email": "c1@example.test",
    "currency": "EUR",
    "lines": [LINE],
}
POST = {"title": "t", "author": "a"}


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def commands(database: str) -> Iterator[tuple[TestClient, sa.Engine]]:
    with (
        command_side(database) as side,
        TestClient(create_command_app(blog=side.blog, orders=side.orders)) as client,
    ):
        yield client, side.engine


@pytest.fixture(scope="module")
def queries(database: str) -> Iterator[TestClient]:
    blog, orders = BlogProjection(topic="b"), OrdersProjection(topic="o")
    notifications = NotificationsProjection(topic="o")
    engine = make_engine(database)
    for p in (blog, orders, notifications):
        p.metadata.create_all(engine)
    reads = ReadModels.over(engine=engine, blog=blog, orders=orders, notifications=notifications)
    with TestClient(create_app(reads, wait_timeout_s=0.05)) as client:
        yield client
    engine.dispose()


COMMAND_CASES: list[tuple[str, str, str, dict[str, Any], Any, str]] = [
    # label, method, path, headers, json body (or raw bytes), words in the detail
    ("non-ASCII post_id", "POST", "/posts", {}, {**POST, "post_id": "probe-é😀"}, "post_id"),
    ("CR LF in post_id", "POST", "/posts", {}, {**POST, "post_id": "a\r\nb"}, "post_id"),
    ("slash in post_id", "POST", "/posts", {}, {**POST, "post_id": "../x"}, "post_id"),
    ("NUL in title", "POST", "/posts", {}, {**POST, "title": "a\x00b"}, "NUL"),
    ("NUL in description", "POST", "/posts", {}, {**POST, "description": "\x00"}, "NUL"),
    ("NUL in author", "POST", "/posts", {}, {**POST, "author": "a\x00"}, "NUL"),
    ("NUL in a tag", "POST", "/posts", {}, {**POST, "tags": ["x\x00"]}, "NUL"),
    ("tag longer once lower-cased", "POST", "/posts", {}, {**POST, "tags": ["İ" * 64]}, "tags"),
    ("control char in author", "POST", "/posts", {}, {**POST, "author": "a\x1b[31m"}, "author"),
    (
        "malformed JSON",
        "POST",
        "/posts",
        {"content-type": "application/json"},
        b"{not json",
        "body",
    ),
    ("not UTF-8", "POST", "/posts", {"content-type": "application/json"}, b"\xff\xfe\x00", "body"),
    (
        "If-Match superscript",
        "PUT",
        "/posts/p-1",
        {"if-match": b'"\xb2"'},
        {"title": "t"},
        "If-Match",
    ),
    (
        "If-Match huge",
        "PUT",
        "/posts/p-1",
        {"if-match": '"' + "9" * 30 + '"'},
        {"title": "t"},
        "If-Match",
    ),
    (
        "version too big",
        "PUT",
        "/posts/p-1",
        {},
        {"title": "t", "expected_version": 2**63},
        "expected_version",
    ),
    ("NUL in path id", "PUT", "/posts/a%00b", {}, {"title": "t"}, "post_id"),
    (
        "two recipients",
        "POST",
        "/orders",
        {},
        {**ORDER, "customer_email": "a@x.test, b@x.test"},
        "customer_email",
    ),
    (
        "display name",
        "POST",
        "/orders",
        {},
        {**ORDER, "customer_email": "A <a@x.test>"},
        "customer_email",
    ),
    ("NUL in customer_id", "POST", "/orders", {}, {**ORDER, "customer_id": "c\x00"}, "customer_id"),
    ("space in customer_id", "POST", "/orders", {}, {**ORDER, "customer_id": "c 1"}, "customer_id"),
    (
        "total beyond 64 bits",
        "POST",
        "/orders",
        {},
        {
            **ORDER,
            "lines": [
                {"sku": f"S{i}", "quantity": 10**6, "unit_price_minor": 10**12} for i in range(100)
            ],
        },
        "total",
    ),
    ("non-ASCII currency", "POST", "/orders", {}, {**ORDER, "currency": "ÄÖÜ"}, "currency"),
    (
        "control char in sku",
        "POST",
        "/orders",
        {},
        {**ORDER, "lines": [{**LINE, "sku": "S\n1"}]},
        "sku",
    ),
    ("non-ASCII order_id", "POST", "/orders", {}, {**ORDER, "order_id": "o-é"}, "order_id"),
    (
        "unicode digit in fulfil If-Match",
        "POST",
        "/orders/o-1/fulfill",
        {"if-match": b'"\xb9"'},
        None,
        "If-Match",
    ),
]


@pytest.mark.parametrize(
    ("label", "method", "path", "headers", "body", "words"),
    COMMAND_CASES,
    ids=[c[0] for c in COMMAND_CASES],
)
def test_command_api_refuses_hostile_input_with_a_4xx_body(
    commands: tuple[TestClient, sa.Engine],
    label: str,
    method: str,
    path: str,
    headers: dict[str, Any],
    body: Any,
    words: str,
) -> None:
    """A hostile command answers 4xx {"error","detail"} naming the problem; nothing is written."""
    client, engine = commands
    with engine.connect() as conn:
        before = conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one()
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = client.request(method, path, headers=headers, **kwargs)
    assert 400 <= response.status_code < 500, (label, response.status_code, response.text)
    problem = response.json()
    assert set(problem) >= {"error", "detail"}, problem
    assert words in json.dumps(problem["detail"], ensure_ascii=False), (label, problem)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one() == before


def test_a_refused_command_leaves_the_id_free(commands: tuple[TestClient, sa.Engine]) -> None:
    """After a refused create, the corrected retry with the same id is created (201), with a usable Location."""
    client, _engine = commands
    assert (
        client.post("/posts", json={**POST, "post_id": "retry-1", "title": "\x00"}).status_code
        == 422
    )
    created = client.post("/posts", json={**POST, "post_id": "retry-1"})
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/posts/retry-1"


QUERY_CASES: list[tuple[str, str, int]] = [
    (
        "forged far-future cursor",
        "/posts?cursor=" + _cursor(["9999-12-31T23:59:59-14:00", "x"]),
        400,
    ),
    ("forged far-past cursor", "/posts?cursor=" + _cursor(["0001-01-01T00:00:00+14:00", "x"]), 400),
    ("NUL in cursor's id", "/posts?cursor=" + _cursor(["2026-01-01T00:00:00+00:00", "a\x00"]), 400),
    ("nested cursor", "/posts?cursor=" + base64.urlsafe_b64encode(b"[" * 700).decode(), 400),
    ("not base64 cursor", "/posts?cursor=!!!", 400),
    ("NUL in cursor", "/posts?cursor=a%00", 400),
    ("NUL in post id", "/posts/a%00b", 400),
    ("NUL in order id", "/orders/a%00b", 400),
    ("NUL in customer id", "/customers/%00", 400),
    ("NUL in tag", "/posts?tag=x%00", 400),
    ("reversed range", "/sales/daily?from=2026-02-01&to=2026-01-01", 400),
    ("limit not a number", "/tags?limit=abc", 422),
    ("event id not a UUID", "/orders/o-1?event_id=nope", 422),
    ("unknown path", "/nope", 404),
    ("huge id", "/posts/" + "p" * 201, 422),
]


@pytest.mark.parametrize(("label", "path", "status"), QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
def test_query_api_answers_hostile_input_with_a_4xx_body(
    queries: TestClient, label: str, path: str, status: int
) -> None:
    """Bad cursors and NULs are 400 (not 500, not 503 "unavailable"); every refusal is {"error","detail"}."""
    response = queries.get(path)
    assert response.status_code == status, (label, response.status_code, response.text)
    assert set(response.json()) == {"error", "detail"}, response.text
