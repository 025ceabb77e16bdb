"""The ``deployed`` fixture: the dev overlay started once per module of this tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from consumers.kafka.broker import EmbeddedBroker
from tests.support import fresh_postgres_database
from tests.support.databases import database_roles
from tests.support.prometheus import PrometheusServer
from tests.support.proxy import TcpProxy
from tests.support.servers import smtp_server
from tests.system.deployed import (
    BROKER_SPEED,
    OBSERVABILITY,
    Deployed,
    accept_any,
    host_port,
    prometheus_config,
    via_proxy,
)
from tests.system.kubelet import Kubelet
from tests.unit.test_deploy_manifests import render


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    base = tmp_path_factory.mktemp("system")
    docs = render("dev")
    with (
        EmbeddedBroker() as broker,
        fresh_postgres_database() as read_db,
        fresh_postgres_database() as command_db,
        database_roles(read_db) as roles,
        smtp_server(auth_require_tls=False, authenticator=accept_any) as smtp,
        TcpProxy(host_port(read_db)) as proxy,
    ):
        via = {r: via_proxy(url, proxy.port) for r, url in roles.items()}
        secrets = {
            "projectionist-db": {
                "owner-url": via["owner"],
                "writer-url": via["writer"],
                "reader-url": via["reader"],
                "outbox-url": command_db,
            },
            "projectionist-smtp": {"password": "system-test"},
        }
        overrides = {
            "PROJECTIONIST_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "PROJECTIONIST_SMTP_HOST": "127.0.0.1",
            "PROJECTIONIST_SMTP_PORT": str(smtp.port),
            **BROKER_SPEED,
        }
        kubelet = Kubelet(docs, base, secrets=secrets, overrides=overrides)
        targets = base / "targets.json"
        targets.write_text("[]")
        config = prometheus_config(targets, OBSERVABILITY / "alerts.yml")
        prom_dir = base / "prometheus"
        prom_dir.mkdir()
        try:
            # a lookback longer than RebuildStuck's 15 min: a held rebuild is evaluated at
            # a later instant on its last scraped values (what it would keep exporting)
            flags = ["--query.lookback-delta=20m"]
            with PrometheusServer(prom_dir, config=config, flags=flags) as prometheus:
                yield Deployed(
                    kubelet,
                    prometheus,
                    proxy,
                    broker.bootstrap_servers,
                    roles["owner"],
                    targets,
                    {},
                    smtp,
                )
        finally:
            kubelet.stop_all()
