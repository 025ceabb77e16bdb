"""Secrets never surface: not in logs at any level, errors, JSON counters or --help (real processes).

The embedded broker cannot speak SASL or TLS (see the broker notes), so the consumer
runs with SASL_SSL against its PLAINTEXT port: the handshake fails, a one-off drain ends
with one line, the service keeps retrying until SIGTERM, and everything both printed on
the way is searched for the secrets.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import run_cli, start_cli

SASL_SECRET = "kafka-Sentinel-7f3a9"
DB_SECRET = "db-Sentinel-c41e2"
KEY_SECRET = "key-Sentinel-90bd1"
OIDC_SECRET = "oidc-Sentinel-5e6f7"
SECRETS = (SASL_SECRET, DB_SECRET, KEY_SECRET, OIDC_SECRET)


def _with_password(url: str) -> str:
    # PostgreSQL here trusts local connections, so the password is carried but unused.
    return sa.engine.make_url(url).set(password=DB_SECRET).render_as_string(hide_password=False)


def _assert_clean(*outputs: str) -> None:
    for out in outputs:
        for secret in SECRETS:
            assert secret not in out, f"a secret surfaced:\n{out[-3000:]}"


@pytest.mark.parametrize("source", ["env", "file"])
def test_consumer_output_at_debug_level_carries_no_secret(
    source: str, topic_env: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    """A SASL_SSL consumer that cannot connect logs (DEBUG), fails and exits without echoing a secret."""
    secrets = {
        "PROJECTIONIST_SASL_PASSWORD": SASL_SECRET,
        "PROJECTIONIST_DATABASE_URL": _with_password(pg_url),
        "PROJECTIONIST_SSL_KEY_PASSWORD": KEY_SECRET,
    }
    if source == "file":
        files = {}
        for name, value in secrets.items():
            path = tmp_path / name.lower()
            path.write_text(value + "\n")
            files[f"{name}_FILE"] = str(path)
        secrets = files
    env = {
        **topic_env,
        **secrets,
        "PROJECTIONIST_SECURITY_PROTOCOL": "SASL_SSL",
        "PROJECTIONIST_SASL_MECHANISM": "SCRAM-SHA-512",
        "PROJECTIONIST_SASL_USERNAME": "projectionist",
        "PROJECTIONIST_LOG_LEVEL": "DEBUG",
    }
    # A one-off run asks the broker first and ends with one line (no secret in it) ...
    result = run_cli(
        ["consume", "blog", "--drain", "--timeout", "6", "--json"],
        env={**env, "PROJECTIONIST_BROKER_TIMEOUT_S": "3"},
        timeout_s=90,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "BrokerUnavailable" in result.stderr, "the run did not get as far as the broker"
    _assert_clean(result.stdout, result.stderr)
    # ... the service keeps trying the handshake (log level DEBUG) until SIGTERM.
    proc = start_cli(["consume", "blog"], env=env)
    try:
        time.sleep(8)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert '"level": "info"' in err, "no log line was written: nothing was checked"
    _assert_clean(out, err)


def test_configuration_errors_and_help_carry_no_secret(tmp_path: Path) -> None:
    """Invalid security settings end in a one-line error (exit 2); --help never shows env values."""
    env = {
        "PROJECTIONIST_BOOTSTRAP_SERVERS": "127.0.0.1:9",
        "PROJECTIONIST_SECURITY_PROTOCOL": "SASL_SSL",
        "PROJECTIONIST_SASL_MECHANISM": "SCRAM-SHA-256",  # no username: a mistake
        "PROJECTIONIST_SASL_PASSWORD": SASL_SECRET,
        "PROJECTIONIST_SASL_OAUTHBEARER_CLIENT_SECRET": OIDC_SECRET,
        "PROJECTIONIST_SSL_KEY_PASSWORD": KEY_SECRET,
        "PROJECTIONIST_DATABASE_URL": f"postgresql://app:{DB_SECRET}@127.0.0.1:notaport/x",
    }
    for args in (["topics"], ["consume", "blog", "--drain", "--timeout", "5"]):
        result = run_cli(args, env=env, timeout_s=60)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        _assert_clean(result.stdout, result.stderr)
    for args in ([], ["consume"], ["topics"], ["produce"], ["demo"], ["broker"]):
        result = run_cli([*args, "--help"], env=env, timeout_s=60)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout
        _assert_clean(result.stdout, result.stderr)
