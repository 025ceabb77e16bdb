"""Secure connections: every security.protocol and SASL mechanism renders a config librdkafka
accepts, secrets come from variables or mounted files, and redaction hides each of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer

from consumers.kafka.config import client_config, consumer_config, producer_config, redacted
from consumers.settings.models import Settings, load_settings, setting_fields
from schemas.errors import ConfigurationError

SECRET = "s3cr3t-Sentinel-0451"


def _settings(**kw: Any) -> Settings:
    return Settings(
        bootstrap_servers="127.0.0.1:9", **kw
    )  # a closed local port: nothing leaves the host


CASES: dict[str, dict[str, Any]] = {
    "plaintext": {},
    "ssl": {"security_protocol": "SSL"},
    "sasl-plain": {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "app",
        "sasl_password": SECRET,
    },
    "scram-256": {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_username": "app",
        "sasl_password": SECRET,
    },
    "scram-512": {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "app",
        "sasl_password": SECRET,
    },
    "oauthbearer-default": {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauthbearer_config": f"principal=app secret={SECRET}",
    },
    "oauthbearer-oidc": {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauthbearer_method": "oidc",
        "sasl_oauthbearer_client_id": "projectionist",
        "sasl_oauthbearer_client_secret": SECRET,
        "sasl_oauthbearer_token_endpoint_url": "http://127.0.0.1:9/oauth2/token",
        "sasl_oauthbearer_scope": "kafka",
    },
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_protocol_renders_a_config_librdkafka_accepts(case: str) -> None:
    """Consumer and producer configs for each protocol/mechanism construct real clients."""
    settings = _settings(**CASES[case])
    conf = client_config(settings.kafka)
    assert conf["security.protocol"] == settings.kafka.security_protocol
    if settings.kafka.sasl_mechanism:
        assert conf["sasl.mechanism"] == settings.kafka.sasl_mechanism
    # librdkafka validates every key and value at construction; nothing connects yet
    # (an OIDC client may try its token endpoint in the background and just fail).
    Consumer(consumer_config(settings.kafka, group_id="g")).close()
    Producer(producer_config(settings.kafka)).flush(0)


def test_oauthbearer_settings_pass_through_unchanged() -> None:
    """OAUTHBEARER oidc settings reach librdkafka under its own keys."""
    conf = client_config(_settings(**CASES["oauthbearer-oidc"]).kafka)
    assert conf["sasl.oauthbearer.method"] == "oidc"
    assert conf["sasl.oauthbearer.client.id"] == "projectionist"
    assert conf["sasl.oauthbearer.client.secret"] == SECRET
    assert conf["sasl.oauthbearer.token.endpoint.url"] == "http://127.0.0.1:9/oauth2/token"
    assert conf["sasl.oauthbearer.scope"] == "kafka"


def test_tls_files_and_key_password_are_passed() -> None:
    """CA, certificate and key locations and the key password go to librdkafka."""
    conf = client_config(
        _settings(
            security_protocol="SSL",
            ssl_ca_location="/secrets/ca.crt",
            ssl_certificate_location="/secrets/tls.crt",
            ssl_key_location="/secrets/tls.key",
            ssl_key_password=SECRET,
        ).kafka
    )
    assert conf["ssl.ca.location"] == "/secrets/ca.crt"
    assert conf["ssl.certificate.location"] == "/secrets/tls.crt"
    assert conf["ssl.key.location"] == "/secrets/tls.key"
    assert conf["ssl.key.password"] == SECRET


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"security_protocol": "SASL_SSL"}, "PROJECTIONIST_SASL_MECHANISM"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},
            "PROJECTIONIST_SASL_PASSWORD",
        ),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "sasl_oauthbearer_method": "oidc",
            },
            "PROJECTIONIST_SASL_OAUTHBEARER_CLIENT_SECRET",
        ),
    ],
)
def test_incomplete_security_settings_are_configuration_errors(
    given: dict[str, Any], message: str
) -> None:
    """A protocol without the credentials it needs fails with the variable to set."""
    with pytest.raises(ConfigurationError, match=message):
        client_config(_settings(**given).kafka)


@pytest.mark.parametrize("case", sorted(CASES))
def test_redacted_config_and_settings_repr_hide_every_secret(case: str) -> None:
    """No secret value survives redacted(), repr() or str() of the settings."""
    settings = _settings(
        **CASES[case], ssl_key_password=SECRET, database_url=f"postgresql://u:{SECRET}@db/x"
    )
    for conf in (consumer_config(settings.kafka, group_id="g"), producer_config(settings.kafka)):
        assert SECRET in str(conf)  # the raw config carries it: redaction has work to do
        assert SECRET not in str(redacted(conf))
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in settings.model_dump_json()


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in [k for k in os.environ if k.startswith("PROJECTIONIST_")]:
        monkeypatch.delenv(key)


def test_secrets_are_read_from_mounted_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SecretStr setting has a *_FILE twin; one trailing newline is dropped."""
    _clean_env(monkeypatch)
    names = [n for n, f in setting_fields().items() if "SecretStr" in str(f.annotation)]
    assert {
        "sasl_password",
        "ssl_key_password",
        "database_url",
        "sasl_oauthbearer_client_secret",
    } <= set(names)
    for name in names:
        path = tmp_path / name
        path.write_text(f"{name}-{SECRET}\n")
        monkeypatch.setenv(f"PROJECTIONIST_{name.upper()}_FILE", str(path))
    settings = load_settings()
    for name in names:
        assert settings.flat()[name].get_secret_value() == f"{name}-{SECRET}"


@pytest.mark.parametrize("problem", ["both", "missing", "empty"])
def test_secret_file_mistakes_are_one_line_errors_without_the_secret(
    problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both variable and file, an unreadable file, an empty file: ConfigurationError naming the variable."""
    _clean_env(monkeypatch)
    path = tmp_path / "password"
    path.write_text("" if problem == "empty" else SECRET)
    if problem == "both":
        monkeypatch.setenv("PROJECTIONIST_SASL_PASSWORD", SECRET)
    monkeypatch.setenv(
        "PROJECTIONIST_SASL_PASSWORD_FILE", str(tmp_path / "nope" if problem == "missing" else path)
    )
    with pytest.raises(ConfigurationError) as err:
        load_settings()
    assert "PROJECTIONIST_SASL_PASSWORD" in str(err.value)
    assert SECRET not in str(err.value)
    assert "\n" not in str(err.value)


def test_a_flag_and_a_secret_file_for_the_same_setting_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--database-url together with PROJECTIONIST_DATABASE_URL_FILE is refused."""
    _clean_env(monkeypatch)
    path = tmp_path / "url"
    path.write_text("sqlite:///x.db")
    monkeypatch.setenv("PROJECTIONIST_DATABASE_URL_FILE", str(path))
    with pytest.raises(ConfigurationError, match="not both"):
        load_settings(database_url="sqlite:///y.db")


def test_invalid_settings_errors_do_not_echo_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """A validation error names the setting, never the value that was given."""
    _clean_env(monkeypatch)
    monkeypatch.setenv("PROJECTIONIST_SASL_MECHANISM", SECRET)
    with pytest.raises(ConfigurationError) as err:
        load_settings()
    assert "sasl_mechanism" in str(err.value)
    assert SECRET not in str(err.value)


def test_unparseable_database_url_error_hides_the_url() -> None:
    """make_engine's error for a malformed URL does not repeat it (it may hold a password)."""
    from projections import make_engine

    for url in (f"postgresql://u:{SECRET}@h:port/db", f"{SECRET}::://"):
        with pytest.raises(ConfigurationError) as err:
            make_engine(url)
        assert SECRET not in str(err.value)
