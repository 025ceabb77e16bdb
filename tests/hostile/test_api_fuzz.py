"""Both HTTP APIs under schemathesis, in-process, on SQLite and PostgreSQL.

Every operation of each OpenAPI document gets generated requests (valid and invalid,
the coverage phase's edge cases included); every answer must be no server error and
must match what the document says (status code, content type, body schema, headers).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import positive_data_acceptance

from consumers.app import projection_registry
from consumers.operations.status import StatusReport
from consumers.settings.models import Settings
from producers import blog_events, order_events
from producers.command_api import create_command_app
from projections import BlogProjection, NotificationsProjection, OrdersProjection, make_engine
from projections.query.api import create_app
from projections.query.read_models import ReadModels
from tests.support.commands import command_side
from tests.support.folding import Folder

EXAMPLES = 40


@pytest.fixture(scope="module")
def query_schema(database: str, bootstrap: str) -> Iterator[Any]:
    blog = BlogProjection(topic="blog.posts")
    orders = OrdersProjection(topic="orders.orders")
    notifications = NotificationsProjection(topic="orders.orders")
    folders = [Folder(database, blog), Folder(database, orders), Folder(database, notifications)]
    folders[0].fold(blog_events(posts=20, seed=175))
    folders[1].fold(order_events(orders=20, seed=176))
    folders[2].fold(order_events(orders=5, seed=176))
    for folder in folders:
        folder.close()
    engine = make_engine(database, read_only=True)
    reads = ReadModels.over(engine=engine, blog=blog, orders=orders, notifications=notifications)
    settings = Settings(bootstrap_servers=bootstrap, database_url=database)
    status = StatusReport(settings, projection_registry(settings)).document  # as `serve` does
    app = create_app(reads, wait_timeout_s=0.05, max_limit=50, status=status)
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    engine.dispose()


@pytest.fixture(scope="module")
def command_schema(database: str) -> Iterator[Any]:
    with command_side(database) as side:
        app = create_command_app(blog=side.blog, orders=side.orders)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


def no_server_error(_ctx: Any, response: Any, _case: Any) -> bool:
    """Instead of schemathesis's "no 5xx at all": the one 5xx these APIs may answer while
    the database is up is the documented 503 of read-your-writes (``not_yet_applied``:
    the fuzzed event id or version was never applied). Anything else is a failure."""
    if response.status_code < 500:
        return True
    body = response.json() if "json" in response.headers.get("content-type", [""])[0] else {}
    assert response.status_code == 503, f"server error {response.status_code}: {response.text}"
    assert body.get("error") == "not_yet_applied", f"503 while the database is up: {body}"
    return True


# Excluded: positive_data_acceptance. Rules a JSON schema cannot say (an id that exists,
# a version that is current, a cursor this API issued, a non-blank title) rightly refuse
# some schema-valid requests; their answers are still checked against the document.
EXCLUDED = [not_a_server_error, positive_data_acceptance]


def _fuzz(schema: Any) -> tuple[int, list[str]]:
    """Run every operation in both modes; return the cases sent and the failures seen."""
    sent = 0
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                derandomize=True,
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(
                    excluded_checks=EXCLUDED, additional_checks=[no_server_error]
                )

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001  (report all, go on)
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    return sent, failures


def test_query_api_answers_as_documented(query_schema: Any) -> None:
    """No server error, and every answer matches the query API's OpenAPI document."""
    sent, failures = _fuzz(query_schema)
    assert not failures, f"{len(failures)} operations failed:\n" + "\n".join(failures)
    assert sent > 200


def test_command_api_answers_as_documented(command_schema: Any) -> None:
    """No server error, and every answer matches the command API's OpenAPI document."""
    sent, failures = _fuzz(command_schema)
    assert not failures, f"{len(failures)} operations failed:\n" + "\n".join(failures)
    assert sent > 200
