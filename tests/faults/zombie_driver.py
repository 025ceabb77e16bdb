"""A consumer that freezes itself (SIGSTOP) holding a prepared batch once a file appears.

Run by the zombie scenario as ``python -m tests.faults.zombie_driver`` with the usual
``PROJECTIONIST_*`` environment and ``ZOMBIE_FREEZE_FILE``. The freeze stands for a
long GC pause or a stuck batch: the group moves the partitions on while the process
still holds a batch it believes it may commit.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from consumers.app import build_runner
from consumers.runtime.batch import PreparedBatch
from consumers.runtime.stop import StopSignal
from consumers.runtime.transaction import PendingCommit
from consumers.settings.models import load_settings


def main() -> None:
    freeze_file = Path(os.environ["ZOMBIE_FREEZE_FILE"])
    stop = StopSignal()
    stop.install()
    runner = build_runner(load_settings(), "blog", stop=stop)
    processor = runner.processor
    begin = processor.begin

    def begin_after_freeze(batch: PreparedBatch) -> PendingCommit:
        if freeze_file.exists():
            freeze_file.unlink()
            stale = [
                [t, p, o] for e in batch.events for (t, p, o) in [(e.topic, e.partition, e.offset)]
            ]
            marker = {"consumer": processor.consumer_label, "positions": stale}
            freeze_file.with_suffix(".frozen").write_text(json.dumps(marker))
            os.kill(os.getpid(), signal.SIGSTOP)
        return begin(batch)

    processor.begin = begin_after_freeze  # type: ignore[method-assign]
    stats = runner.run_forever()
    print(json.dumps({"projection": "blog", "signal": stop.signal_name, **stats.as_dict()}))


if __name__ == "__main__":
    main()
