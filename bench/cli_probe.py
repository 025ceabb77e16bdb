"""``python -m bench.cli_probe <projectionist args>``: the CLI, plus its peak RSS at exit.

Runs the console script's own ``main()`` in this process (the same code path as
``projectionist …``), and prints ``PEAK_RSS_MB <n>`` on stderr as the process exits:
a child's ``ru_maxrss`` would also count the benchmark's own memory (fork+exec keeps
the parent's high-water mark), VmHWM read in the process itself does not.
"""

from __future__ import annotations

import atexit
import sys


def _peak_rss() -> None:
    with open("/proc/self/status", encoding="ascii") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(f"PEAK_RSS_MB {hwm / 1024:.1f}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    atexit.register(_peak_rss)
    from consumers.cli import main

    sys.argv = ["projectionist", *sys.argv[1:]]
    main()
