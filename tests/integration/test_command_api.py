"""The command HTTP API over real HTTP (uvicorn on a loopback port, httpx as the client)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from producers.command_api import create_command_app
from tests.support import wait_for
from tests.support.commands import command_side, outbox_events, unpublished

ORDER = {
    "customer_id": "customer-7",
    "customer_email": "c7@example.test",
    "currency": "EUR",
    "lines": [{"sku": "SKU-1", "quantity": 3, "unit_price_minor": 499}],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[tuple[httpx.Client, str]]:
    """A running command API on SQLite or PostgreSQL; yields (client, database URL)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("pg_url")
    else:
        url = sqlite_url
    with command_side(url) as cs:
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_command_app(blog=cs.blog, orders=cs.orders),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        try:
            wait_for("the API to start", lambda: server.started, timeout_s=20)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                yield client, url
        finally:
            server.should_exit = True
            thread.join(timeout=10)


def test_post_lifecycle_over_http(api: tuple[httpx.Client, str]) -> None:
    """POST, PUT with If-Match, DELETE: 201/200, versions and event ids for read-your-writes."""
    client, url = api
    created = client.post("/posts", json={"title": "Hello", "tags": ["Kafka"], "author": "ann"})
    assert created.status_code == 201, created.text
    body = created.json()
    post_id = body["post_id"]
    assert body["version"] == 1
    assert created.headers["ETag"] == '"1"'
    assert created.headers["Location"] == f"/posts/{post_id}"
    updated = client.put(
        f"/posts/{post_id}",
        json={"title": "Hello v2", "tags": ["sql"]},
        headers={"If-Match": created.headers["ETag"]},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    deleted = client.delete(f"/posts/{post_id}", headers={"If-Match": '"2"'})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["event_type"] == "blog.BlogPostDeleted"
    ids = [body["event_id"], updated.json()["event_id"], deleted.json()["event_id"]]
    assert [str(e.record["event_id"]) for e in outbox_events(url)] == ids
    gone = client.put(f"/posts/{post_id}", json={"title": "zombie"})
    assert gone.status_code == 404
    assert "was deleted" in gone.json()["detail"]


def test_stale_if_match_is_409_with_the_current_version(api: tuple[httpx.Client, str]) -> None:
    """Two editors start from version 1; the second write gets 409 and the current version."""
    client, url = api
    post_id = client.post("/posts", json={"title": "t", "author": "ann"}).json()["post_id"]
    first = client.put(f"/posts/{post_id}", json={"title": "Bob's"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200
    second = client.put(f"/posts/{post_id}", json={"title": "Ann's"}, headers={"If-Match": '"1"'})
    assert second.status_code == 409
    assert second.json()["error"] == "version conflict"
    assert second.json()["current_version"] == 2
    body_version = client.put(f"/posts/{post_id}", json={"title": "Ann's", "expected_version": 1})
    assert body_version.status_code == 409
    assert len(outbox_events(url)) == 2, "a refused edit must not emit an event"


@pytest.mark.parametrize(
    ("method", "path", "payload", "headers", "status", "needle"),
    [
        ("POST", "/posts", {"title": "", "author": "ann"}, {}, 422, "title: must not be blank"),
        ("POST", "/posts", {"title": "x"}, {}, 422, "author"),
        ("POST", "/posts", {"title": "x", "author": "a", "colour": "red"}, {}, 422, "colour"),
        ("POST", "/posts", {"title": "x", "author": "a", "tags": "notalist"}, {}, 422, "tags"),
        ("PUT", "/posts/post-nope", {"title": "x"}, {}, 404, "not found"),
        ("PUT", "/posts/post-nope", {"title": "x"}, {"If-Match": "banana"}, 422, "If-Match"),
        ("POST", "/orders", {**ORDER, "currency": "euro"}, {}, 422, "ISO 4217"),
        ("POST", "/orders", {**ORDER, "lines": []}, {}, 422, "at least one line"),
        (
            "POST",
            "/orders",
            {**ORDER, "lines": [{"sku": "A", "quantity": -1, "unit_price_minor": 1}]},
            {},
            422,
            "quantity",
        ),
        ("POST", "/orders/order-nope/fulfill", None, {}, 404, "not found"),
        (
            "POST",
            "/orders",
            {**ORDER, "lines": [{"sku": "A", "quantity": 2**40, "unit_price_minor": 1}]},
            {},
            422,
            "quantity: must be 1-1,000,000",
        ),
        (
            "POST",
            "/orders",
            {**ORDER, "lines": [{"sku": "S" * 65, "quantity": 1, "unit_price_minor": 1}]},
            {},
            422,
            "sku",
        ),
        ("POST", "/posts", {"title": "x", "author": "a" * 201}, {}, 422, "author: at most 200"),
    ],
)
def test_bad_requests_are_4xx_json(
    api: tuple[httpx.Client, str],
    method: str,
    path: str,
    payload: dict | None,
    headers: dict[str, str],
    status: int,
    needle: str,
) -> None:
    """Validation errors and unknown ids answer 4xx with a JSON body naming the problem."""
    client, url = api
    response = client.request(method, path, json=payload, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert needle in str(response.json()["detail"])
    assert outbox_events(url) == []


def test_order_place_and_fulfill_over_http(api: tuple[httpx.Client, str]) -> None:
    """POST /orders (201, no event yet), then /fulfill (event); fulfilling twice is 409."""
    client, url = api
    placed = client.post("/orders", json=ORDER)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    assert placed.json()["event_id"] is None
    done = client.post(f"/orders/{order_id}/fulfill", headers={"If-Match": '"1"'})
    assert done.status_code == 200, done.text
    assert done.json()["version"] == 2
    (event,) = outbox_events(url)
    assert str(event.record["event_id"]) == done.json()["event_id"]
    assert event.record["total_minor"] == 1497
    twice = client.post(f"/orders/{order_id}/fulfill")
    assert twice.status_code == 409
    assert "already fulfilled" in twice.json()["detail"]


def test_serve_commands_cli_serves_and_stops_on_sigterm(
    sqlite_url: str, topic_env: dict[str, str]
) -> None:
    """`projectionist serve-commands --with-relay` answers on its address, its relay publishes
    the outbox, and it exits 0 on SIGTERM."""
    import signal

    from tests.support import start_cli

    port = _free_port()
    proc = start_cli(
        ["serve-commands", "--address", f"127.0.0.1:{port}", "--with-relay"],
        env={**topic_env, "PROJECTIONIST_COMMAND_DATABASE_URL": sqlite_url},
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return proc.poll() is not None

        wait_for("serve-commands to answer", healthy, timeout_s=30)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        created = httpx.post(
            f"http://127.0.0.1:{port}/posts", json={"title": "cli", "author": "ann"}, timeout=5
        )
        assert created.status_code == 201, created.text
        wait_for(
            "the in-process relay to publish", lambda: unpublished(sqlite_url) == 0, timeout_s=30
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    assert len(outbox_events(sqlite_url)) == 1


def test_concurrent_edits_from_one_version_exactly_one_wins(api: tuple[httpx.Client, str]) -> None:
    """Eight simultaneous PUTs with If-Match "1": one 200, seven 409s, one new event."""
    from concurrent.futures import ThreadPoolExecutor

    client, url = api
    post_id = client.post("/posts", json={"title": "t", "author": "ann"}).json()["post_id"]
    barrier = threading.Barrier(8)

    def edit(n: int) -> int:
        barrier.wait(timeout=10)
        response = client.put(
            f"/posts/{post_id}", json={"title": f"editor {n}"}, headers={"If-Match": '"1"'}
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(edit, range(8)))
    assert statuses == [200] + [409] * 7
    assert len(outbox_events(url)) == 2
