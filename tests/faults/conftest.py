"""Fault-suite fixtures: the seed (``--seed`` or ``FAULT_SEED``), and a consumer environment.

Every scenario prints its seed; rerun a failure with ``pytest tests/faults --seed N``
(or ``FAULT_SEED=N``). The seed fixes the events, the poison and its positions, and the
fault schedule; process and network timing still vary from run to run.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.support import TEST_ENV, unique


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--seed", type=int, default=None, help="fault suite: rerun with this seed (or FAULT_SEED)"
    )


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    given = request.config.getoption("--seed", default=None) or os.environ.get("FAULT_SEED")
    value = int(given) if given else random.SystemRandom().randrange(1, 1 << 31)
    print(f"FAULT SEED {value}: rerun with  pytest {request.node.nodeid} --seed {value}")
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    if call.when == "call" and getattr(report, "failed", False):
        seed = item.funcargs.get("seed") if hasattr(item, "funcargs") else None
        if seed is not None:
            report.sections.append(("fault seed", f"rerun: pytest {item.nodeid} --seed {seed}"))
    return report


#: what the audited variant adds to the shipped settings: the per-offset applied-event
#: log (Jepsen's anomaly checks read it) and event-id dedup. Both are off by default and
#: in deploy/, so the suite runs without them; a scenario opts in with ``audited_env``.
AUDITED = {"PROJECTIONIST_APPLIED_LOG": "true", "PROJECTIONIST_EVENT_DEDUP": "true"}


def is_audited(env: dict[str, str]) -> bool:
    return env.get("PROJECTIONIST_APPLIED_LOG") == "true"


@pytest.fixture
def fault_env(bootstrap: str, pg_url: str) -> dict[str, str]:
    """A consumer environment on the shipped settings (no audit log, no event-id dedup):
    own topics and group, PostgreSQL; small batches and short backoff for the pace."""
    return {
        **TEST_ENV,
        "PROJECTIONIST_BOOTSTRAP_SERVERS": bootstrap,
        "PROJECTIONIST_BLOG_TOPIC": unique("fault-blog"),
        "PROJECTIONIST_ORDERS_TOPIC": unique("fault-orders"),
        "PROJECTIONIST_GROUP_PREFIX": unique("fault"),
        "PROJECTIONIST_DATABASE_URL": pg_url,
        "PROJECTIONIST_BATCH_MAX_MESSAGES": "50",
        "PROJECTIONIST_RETRY_MAX_S": "2",
    }


@pytest.fixture
def audited_env(fault_env: dict[str, str]) -> dict[str, str]:
    """The audited variant: the shipped settings plus :data:`AUDITED`."""
    return {**fault_env, **AUDITED}
