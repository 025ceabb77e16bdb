"""The consumer loop of one projection, from a poll to a committed batch.

* ``runner``: the loop (``run_forever`` / ``drain``), rebalances, retries with backoff;
* ``stop``: the stop signal (SIGTERM/SIGINT);
* ``batch``: batch preparation (filter redeliveries, decode, sort out poison);
* ``transaction``: the commit protocol of one batch, and the batch processor;
* ``steps``: optional parts of a batch (event-id ledger, parking, audit log, replay marks);
* ``poison``: isolating events ``apply`` rejects, parking the keys of dead letters;
* ``history_guard``: data-loss detection from checkpoints and watermarks;
* ``control``: how a running loop hears about replays and generation swaps;
* ``stats``: the run's books.
"""
