"""Progress state in the read-model database, written in each batch's transaction.

* ``checkpoints``: ``(projection, topic, partition) → last applied offset`` (compare-and-set);
* ``ledger``: event ids already processed (dedup for non-idempotent projections);
* ``parked_keys``: keys parked after a dead letter (``park-key`` mode);
* ``dlq_replays``: dead letters already replayed (replay is exactly once);
* ``audit_log``: one row per offset a batch passed (off by default).
"""
