"""The query API as a real server process over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from producers import SampleEvent, blog_events, order_events, with_noise
from projections import BlogProjection, NotificationsProjection, OrdersProjection
from projections.notifications.delivery import MailDelivery
from projections.notifications.mail import SmtpConfig, SmtpMailer
from tests.support import TEST_ENV, fresh_postgres_database, run_cli, wait_for
from tests.support.folding import Folder
from tests.support.oracle import blog_oracle, orders_oracle
from tests.support.servers import api_server, smtp_server

MAX_LIMIT = 40


@dataclass
class Api:
    base: str
    blog: Folder
    orders: Folder
    blog_events: list[SampleEvent] = field(default_factory=list)
    order_events: list[SampleEvent] = field(default_factory=list)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.base + path, params=params, timeout=30)

    def get_in_background(self, path: str, **params: Any) -> Callable[[], httpx.Response]:
        """Send a GET on a thread; return once the server reports it waiting for a projection."""
        answers: list[httpx.Response] = []
        thread = threading.Thread(target=lambda: answers.append(self.get(path, **params)))
        thread.start()
        wait_for(
            "the request to wait for the projection",
            lambda: answers or self.get("/healthz").json()["waiting_for_projection"] == 1,
            timeout_s=10,
            every_s=0.01,
        )
        assert not answers, f"answered without waiting: {answers[0].text}"

        def result() -> httpx.Response:
            thread.join(timeout=30)
            [answer] = answers
            return answer

        return result


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """Read models folded from sample events, served by `projectionist serve`."""
    with _database(request.param, tmp_path_factory) as url:
        blog = Folder(url, BlogProjection(topic="blog.posts"))
        orders = Folder(url, OrdersProjection(topic="orders.orders"))
        posts = with_noise(blog_events(posts=150, seed=41), duplicate_ratio=0.05, seed=41)
        sold = with_noise(_spread(order_events(orders=200, seed=42)), duplicate_ratio=0.05, seed=42)
        blog.fold(posts)
        orders.fold(sold)
        _send_notifications(url, sold[:12], reject=sold[2].record["customer_email"])
        try:
            with api_server(url, {"PROJECTIONIST_API_MAX_LIMIT": str(MAX_LIMIT)}) as base:
                yield Api(base, blog, orders, posts, sold)
        finally:
            blog.close()
            orders.close()


def _send_notifications(url: str, events: list[SampleEvent], *, reject: str) -> None:
    """Record and deliver e-mails for ``events``; the server rejects one address for good."""
    folder = Folder(url, NotificationsProjection(topic="orders.orders"))
    try:
        folder.fold(events)
        projection = folder.processor.projection
        assert isinstance(projection, NotificationsProjection)
        with smtp_server() as smtp:
            smtp.reject[reject] = "550 5.1.1 no such mailbox"
            delivery = MailDelivery(
                engine=folder.processor.engine,
                projection=projection,
                mailer=SmtpMailer(SmtpConfig(host="127.0.0.1", port=smtp.port, timeout_s=5)),
            )
            assert delivery.deliver_due().failed >= 1
    finally:
        folder.close()


def _spread(events: list[SampleEvent]) -> list[SampleEvent]:
    """One order every five hours, so the sales span about six weeks of days."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        SampleEvent(
            e.aggregate,
            e.event_type,
            e.key,
            {**e.record, "fulfilled_at": start + timedelta(hours=5 * i)},
        )
        for i, e in enumerate(events)
    ]


def _database(kind: str, tmp: pytest.TempPathFactory) -> Any:
    if kind == "postgres":
        return fresh_postgres_database()
    from contextlib import nullcontext

    return nullcontext(f"sqlite:///{tmp.mktemp('api') / 'read-models.db'}")


def test_openapi_document_lists_every_endpoint(api: Api) -> None:
    """/openapi.json documents all read endpoints and /docs serves the browsable page."""
    paths = api.get("/openapi.json").json()["paths"]
    for path in (
        "/tags",
        "/posts",
        "/posts/{post_id}",
        "/orders/{order_id}",
        "/customers/{customer_id}",
        "/sales/daily",
        "/status",
    ):
        assert "get" in paths[path], path
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_tags_most_posts_first_and_limit_capped(api: Api) -> None:
    """/tags equals the oracle's cloud ordered by count then tag; limit is capped."""
    cloud = blog_oracle(api.blog_events).tag_cloud
    ranked = sorted(cloud.items(), key=lambda kv: (-kv[1], kv[0]))
    top = api.get("/tags", limit=5).json()
    assert [(t["tag"], t["posts_count"]) for t in top] == ranked[:5]
    assert len(cloud) > MAX_LIMIT
    capped = api.get("/tags", limit=10_000)
    assert capped.status_code == 200
    assert len(capped.json()) == MAX_LIMIT


def test_post_by_id_live_deleted_and_unknown(api: Api) -> None:
    """A live post matches the oracle; a deleted one is 410; an unknown one is 404 JSON."""
    model = blog_oracle(api.blog_events)
    post_id, want = sorted(model.live.items())[0]
    got = api.get(f"/posts/{post_id}").json()
    assert {k: got[k] for k in ("title", "description", "author", "version")} == {
        k: want[k] for k in ("title", "description", "author", "version")
    }
    assert sorted(got["tags"]) == want["tags"]
    assert model.deleted, "the sample should delete some posts"
    gone = api.get(f"/posts/{sorted(model.deleted)[0]}")
    assert gone.status_code == 410
    assert gone.json()["error"] == "gone"
    unknown = api.get("/posts/no-such-post")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"


def _walk(api: Api, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(200):
        page = api.get("/posts", **params, **({"cursor": cursor} if cursor else {}))
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


def test_keyset_pagination_walks_every_live_post_once(api: Api) -> None:
    """Pages of 7 (and of a tag) visit every live post exactly once, newest first."""
    model = blog_oracle(api.blog_events)
    items = _walk(api, limit=7)
    ids = [p["post_id"] for p in items]
    assert len(ids) == len(set(ids)) == len(model.live)
    assert set(ids) == set(model.live)
    keys = [(p["created_at"], p["post_id"]) for p in items]
    assert keys == sorted(keys, reverse=True)
    tag = "kafka"
    tagged = {pid for pid, row in model.live.items() if tag in row["tags"]}
    assert 7 < len(tagged) < len(model.live)
    assert {p["post_id"] for p in _walk(api, tag=tag, limit=7)} == tagged
    assert api.get("/posts", tag="no-such-tag").json() == {"items": [], "next_cursor": None}


def test_order_customer_and_daily_sales_match_the_oracle(api: Api) -> None:
    """/orders, /customers and /sales/daily answer the oracle's rows, money exact."""
    model = orders_oracle(api.order_events)
    order_id, want = sorted(model.summaries.items())[7]
    got = api.get(f"/orders/{order_id}").json()
    assert got["total_minor"] == want["total_minor"]
    assert got["lines"] == want["lines"]
    assert got["line_count"] == want["line_count"]
    assert got["currency"] == want["currency"]
    assert got["total"] == f"{want['total_minor'] / 100:.2f}"
    fulfilled = datetime.fromisoformat(got["fulfilled_at"])
    assert fulfilled.astimezone(UTC).replace(tzinfo=None) == want["fulfilled_at"]

    customer = want["customer_id"]
    stats = api.get(f"/customers/{customer}").json()
    mine = {cur: s for (cid, cur), s in model.customers.items() if cid == customer}
    assert stats["orders_count"] == sum(s["orders_count"] for s in mine.values())
    assert {r["currency"]: r["revenue_minor"] for r in stats["revenue"]} == {
        cur: s["revenue_minor"] for cur, s in mine.items()
    }

    days = sorted({day for day, _ in model.daily})
    assert len(days) > 30
    start, end = days[3], days[9]
    expected = sorted(
        (day, cur, v["orders_count"], v["revenue_minor"])
        for (day, cur), v in model.daily.items()
        if start <= day <= end
    )
    sales = api.get("/sales/daily", **{"from": start, "to": end}).json()
    assert [
        (r["day"], r["currency"], r["orders_count"], r["revenue_minor"]) for r in sales
    ] == expected
    eur = api.get("/sales/daily", **{"from": start, "to": end, "currency": "EUR"}).json()
    assert eur
    assert eur == [r for r in sales if r["currency"] == "EUR"]


def test_failed_notifications_are_surfaced(api: Api) -> None:
    """/notifications lists the permanently rejected e-mails with the server's answer."""
    first = {e.record["event_id"]: e for e in api.order_events[:12]}
    rejected = api.order_events[2].record["customer_email"]
    failed = api.get("/notifications").json()
    assert {r["event_id"] for r in failed} == {
        eid for eid, e in first.items() if e.record["customer_email"] == rejected
    }
    assert all(r["status"] == "failed" and "550" in r["last_error"] for r in failed)
    sent = api.get("/notifications", status="sent", limit=100).json()
    assert len(sent) + len(failed) == len(first)
    assert all(r["sent_at"] is not None for r in sent)


@pytest.mark.parametrize(
    ("path", "params", "status", "error"),
    [
        ("/tags", {"limit": -1}, 422, "invalid_request"),
        ("/tags", {"limit": "many"}, 422, "invalid_request"),
        ("/posts", {"limit": 0}, 422, "invalid_request"),
        ("/posts", {"cursor": "not a cursor!"}, 400, "bad_cursor"),
        ("/posts", {"cursor": "WzEsMl0"}, 400, "bad_cursor"),  # base64 of [1,2]
        ("/posts/p1", {"min_version": 0}, 422, "invalid_request"),
        ("/posts/" + "x" * 201, {}, 422, "invalid_request"),
        ("/orders/order-0000001", {"event_id": "not-a-uuid"}, 422, "invalid_request"),
        ("/orders/no-such-order", {}, 404, "not_found"),
        ("/customers/no-such-customer", {}, 404, "not_found"),
        ("/sales/daily", {"from": "2026-13-01", "to": "2026-12-31"}, 422, "invalid_request"),
        ("/sales/daily", {"from": "2026-02-01"}, 422, "invalid_request"),
        ("/sales/daily", {"from": "2026-02-01", "to": "2026-01-01"}, 400, "bad_range"),
        ("/sales/daily", {"from": "2020-01-01", "to": "2026-01-01"}, 400, "bad_range"),
        (
            "/sales/daily",
            {"from": "2026-01-01", "to": "2026-01-02", "currency": "eur"},
            422,
            "invalid_request",
        ),
        ("/nosuch", {}, 404, "not_found"),
        ("/notifications", {"status": "lost"}, 422, "invalid_request"),
    ],
)
def test_bad_input_gets_4xx_json(
    api: Api, path: str, params: dict[str, Any], status: int, error: str
) -> None:
    """Bad input answers a 4xx with a JSON error body, never a 500."""
    response = api.get(path, **params)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_read_your_writes_waits_for_the_new_post_version(api: Api) -> None:
    """A request with min_version waits until the projection applies it, then answers 200."""
    model = blog_oracle(api.blog_events)
    post_id, row = sorted(model.live.items())[-1]
    newest = max(
        (e for e in api.blog_events if e.key == post_id and e.event_type == "blog.BlogPostUpdated"),
        key=lambda e: e.record["version"],
    )
    edit = SampleEvent(
        "blog",
        newest.event_type,
        post_id,
        {
            **newest.record,
            "event_id": "00000000-0000-4000-8000-00000000b10c",
            "title": "edited just now",
            "version": row["version"] + 1,
        },
    )
    early = api.get(f"/posts/{post_id}", min_version=row["version"] + 1, wait_s=0.2)
    assert early.status_code == 503, "the edit must not be visible before it is applied"
    pending = api.get_in_background(f"/posts/{post_id}", min_version=row["version"] + 1, wait_s=20)
    api.blog.fold([edit])
    api.blog_events.append(edit)
    answer = pending()
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["X-Waited-Ms"]) > 0, "the answer came without waiting for the edit"
    assert answer.json()["version"] == row["version"] + 1
    assert answer.json()["title"] == "edited just now"


def test_read_your_writes_for_an_order_event(api: Api) -> None:
    """?event_id waits for the orders projection to apply that event; the fresh rows answer."""
    [new] = order_events(orders=1, customers=1, seed=99)
    record = {
        **new.record,
        "order_id": "order-ryw-1",
        "customer_id": "customer-ryw",
        "event_id": "00000000-0000-4000-8000-0000000000e1",
        "fulfilled_at": datetime(2030, 6, 1, 12, tzinfo=UTC),
    }
    event = SampleEvent("orders", new.event_type, "order-ryw-1", record)
    eid = record["event_id"]
    assert api.get("/orders/order-ryw-1", event_id=eid, wait_s=0.2).status_code == 503
    pending = api.get_in_background("/customers/customer-ryw", event_id=eid, wait_s=20)
    api.orders.fold([event])
    api.order_events.append(event)
    answer = pending()
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["X-Waited-Ms"]) > 0
    assert answer.json()["orders_count"] == 1
    assert (
        api.get("/orders/order-ryw-1", event_id=eid).json()["total_minor"] == record["total_minor"]
    )


def test_read_your_writes_timeout_is_503_with_retry_after(api: Api) -> None:
    """A position never reached answers 503 not_yet_applied with Retry-After after the wait."""
    post_id = sorted(blog_oracle(api.blog_events).live)[0]
    started = time.monotonic()
    response = api.get(f"/posts/{post_id}", min_version=10_000, wait_s=0.5)
    assert time.monotonic() - started >= 0.5
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert int(response.headers["X-Waited-Ms"]) >= 500, "the 503 says how long it waited"
    assert response.json()["error"] == "not_yet_applied"
    sales = api.get(
        "/sales/daily",
        **{
            "from": "2026-01-01",
            "to": "2026-01-02",
            "event_id": "00000000-0000-4000-8000-00000000dead",
            "wait_s": 0.3,
        },
    )
    assert sales.status_code == 503
    assert sales.headers["Retry-After"] == "1"
    assert int(sales.headers["X-Waited-Ms"]) >= 300


def test_read_models_not_created_yet_is_503_not_500(tmp_path: Any) -> None:
    """Before any projection created its tables the API answers 503 JSON with Retry-After."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with api_server(url) as base:
        for path in ("/tags", "/posts/p1", "/orders/o1", "/customers/c1", "/notifications"):
            response = httpx.get(base + path, timeout=10)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["error"] == "unavailable"
            assert "Retry-After" in response.headers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["serve", "--address", "nonsense"], "api_address"),
        (["serve", "-d", "mysql://x"], "unsupported database"),
        (["reconcile", "tag-cloud", "-d", "nope"], "not a URL"),
    ],
)
def test_read_side_user_mistakes_get_one_line(args: list[str], message: str) -> None:
    """serve/reconcile mistakes end with exit 2 and one line, never a traceback."""
    result = run_cli(args, env=TEST_ENV, timeout_s=30)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["serve", "reconcile"])
def test_read_side_commands_explain_themselves(command: str) -> None:
    """serve and reconcile answer --help."""
    result = run_cli([command, "--help"], env={}, timeout_s=30)
    assert result.returncode == 0
    assert "Usage" in result.stdout
