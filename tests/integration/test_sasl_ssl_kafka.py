"""SASL_SSL end to end against Apache Kafka in a container (needs a Docker engine).

The embedded broker cannot enable SASL or TLS, so this is the one test that proves a
real SASL_SSL handshake with the client configuration Projectionist renders: a
self-signed CA (made with openssl), SASL/PLAIN over TLS, the password from a
``*_FILE`` secret. Where no Docker engine answers it is skipped and reported as not run:
it is an extra tier, never counted as passing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consumers.kafka.admin import ensure_topics
from consumers.kafka.config import client_config, producer_config
from consumers.kafka.dead_letters import dead_letter_topic
from consumers.settings.models import Settings
from producers import EventPublisher, blog_events
from schemas import AvroSerde, SchemaCatalog
from tests.support import TEST_ENV, checkpoint_total, docker_answers, run_cli, unique
from tests.support.oracle import assert_blog_matches

KAFKA_IMAGE = "apache/kafka:3.9.1"
PASSWORD = "sasl-ssl-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _self_signed(certs: Path) -> None:
    """A CA-less self-signed certificate for localhost; the key in PKCS#8 PEM as Kafka wants."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    keystore = certs / "keystore.pem"
    keystore.write_text((certs / "key.pem").read_text() + (certs / "cert.pem").read_text())
    for f in certs.iterdir():
        f.chmod(0o644)  # the broker runs as another uid in the container


@pytest.fixture(scope="module")
def sasl_ssl_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Apache Kafka (KRaft) with one SASL_SSL listener; yields (bootstrap, CA file)."""
    if not docker_answers():
        pytest.skip("SASL_SSL against real Kafka needs a Docker engine (not run)")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test certificate (not run)")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    certs = tmp_path_factory.mktemp("certs")
    _self_signed(certs)
    port = _free_port()
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_projectionist="{PASSWORD}";'
    )
    container = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9093, port)
        .with_volume_mapping(str(certs), "/certs", "ro")
        .with_envs(
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9094",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_LISTENERS="INTERNAL://localhost:19092,SASL_SSL://0.0.0.0:9093,CONTROLLER://localhost:9094",
            KAFKA_ADVERTISED_LISTENERS=f"INTERNAL://localhost:19092,SASL_SSL://localhost:{port}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="INTERNAL:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            KAFKA_INTER_BROKER_LISTENER_NAME="INTERNAL",
            KAFKA_SASL_ENABLED_MECHANISMS="PLAIN",
            KAFKA_LISTENER_NAME_SASL__SSL_PLAIN_SASL_JAAS_CONFIG=jaas,
            KAFKA_SSL_KEYSTORE_TYPE="PEM",
            KAFKA_SSL_KEYSTORE_LOCATION="/certs/keystore.pem",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        )
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(180))
    )
    with container:
        yield f"localhost:{port}", certs / "cert.pem"


def _secure_settings(bootstrap: str, ca: Path, password_file: Path) -> dict[str, str]:
    return {
        "PROJECTIONIST_BOOTSTRAP_SERVERS": bootstrap,
        "PROJECTIONIST_SECURITY_PROTOCOL": "SASL_SSL",
        "PROJECTIONIST_SASL_MECHANISM": "PLAIN",
        "PROJECTIONIST_SASL_USERNAME": "projectionist",
        "PROJECTIONIST_SASL_PASSWORD_FILE": str(password_file),
        "PROJECTIONIST_SSL_CA_LOCATION": str(ca),
    }


def test_consumer_drains_over_sasl_ssl(
    sasl_ssl_kafka: tuple[str, Path], sqlite_url: str, tmp_path: Path
) -> None:
    """Publish and consume over SASL_SSL with a file-mounted password; the read model equals the oracle."""
    bootstrap, ca = sasl_ssl_kafka
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")
    settings = Settings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="projectionist",
        sasl_password=PASSWORD,
        ssl_ca_location=str(ca),
    )
    topic = unique("blog")
    ensure_topics(
        client_config(settings.kafka),
        [topic, dead_letter_topic(topic, "blog", ".dlq")],
        partitions=2,
    )
    events = blog_events(posts=100, seed=4)
    publisher = EventPublisher(
        producer_config(settings.kafka), serde=AvroSerde(SchemaCatalog.load())
    )
    for ev in events:
        publisher.publish(topic, ev.event_type, ev.record, key=ev.key)
    publisher.close()
    env = {
        **TEST_ENV,
        **_secure_settings(bootstrap, ca, password_file),
        "PROJECTIONIST_BLOG_TOPIC": topic,
        "PROJECTIONIST_GROUP_PREFIX": unique("sasl"),
        "PROJECTIONIST_DATABASE_URL": sqlite_url,
    }
    result = run_cli(["consume", "blog", "--drain", "--timeout", "120", "--json"], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert PASSWORD not in result.stdout + result.stderr
    assert checkpoint_total(sqlite_url, "blog_v1") == len(events)
    assert_blog_matches(sqlite_url, events)


def test_wrong_password_is_refused(sasl_ssl_kafka: tuple[str, Path]) -> None:
    """The listener really authenticates: a wrong password cannot list topics."""
    bootstrap, ca = sasl_ssl_kafka
    settings = Settings(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="projectionist",
        sasl_password="wrong",
        ssl_ca_location=str(ca),
    )
    admin = AdminClient(client_config(settings.kafka))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=15)
