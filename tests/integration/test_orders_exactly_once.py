"""The orders read models through real consumer kills and duplicates (real broker)."""

from __future__ import annotations

import signal

from producers import order_events, with_noise
from tests.support import checkpoint_total, json_line, run_cli, start_cli, wait_for
from tests.support.broker import publish
from tests.support.oracle import assert_orders_match

CONSUME = ["consume", "orders", "--drain", "--json", "--timeout", "120"]


def test_sigkill_then_restart_counts_every_order_once(
    bootstrap: str, topic_env: dict[str, str], db_url: str
) -> None:
    """Kill -9 the orders consumer part-way; after a restart sums and counts equal the oracle."""
    events = with_noise(order_events(orders=1_500, seed=31), duplicate_ratio=0.05, seed=31)
    publish(bootstrap, topic_env["PROJECTIONIST_ORDERS_TOPIC"], events)
    env = {
        **topic_env,
        "PROJECTIONIST_DATABASE_URL": db_url,
        "PROJECTIONIST_BATCH_MAX_MESSAGES": "40",
    }
    total = len(events)
    proc = start_cli(CONSUME, env=env)
    wait_for(
        "a third of the events checkpointed",
        lambda: proc.poll() is not None or checkpoint_total(db_url, "orders_v1") >= total / 3,
        timeout_s=90,
        every_s=0.01,
    )
    assert proc.poll() is None, f"consumer ended before the kill: {proc.communicate()}"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    done = checkpoint_total(db_url, "orders_v1")
    assert 0 < done < total, f"kill was not part-way: {done}/{total}"
    final = run_cli(CONSUME, env=env)
    assert final.returncode == 0, final.stderr[-3000:]
    stats = json_line(final.stdout)
    assert stats["skipped_offset"] == 0, "the restart re-read events it had already applied"
    assert checkpoint_total(db_url, "orders_v1") == total
    model = assert_orders_match(db_url, events)
    assert len(model.summaries) == 1_500
