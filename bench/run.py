"""``make bench``: every figure of issue 9 measured in one run, side by side.

Starts its own embedded broker, publishes the workload, and runs each scenario in its
own process (bench.worker) against PostgreSQL (databases of its own, dropped after)
and temporary SQLite files. Prints a table and the targets, and writes
``docs/bench.json`` and ``docs/bench.png``. ``--quick`` runs small sizes in about a
minute, for iterating; ``BENCH_PROFILE=<dir>`` records a py-spy profile per worker.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bench.readme import load_profile, render, replace_section  # noqa: E402
from bench.report import print_ratios, print_table, targets, write_chart, write_json  # noqa: E402
from bench.scenarios import Bench  # noqa: E402
from consumers.kafka.broker import EmbeddedBroker  # noqa: E402

PG_BASE_URL = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SCENARIOS = (
    "fullstate",
    "live",
    "naive",
    "scaleout",
    "latency",
    "rebuild",
    "orders",
)  # "live" includes the ceiling
NOTE = (
    "Seconds run from the first message (for `consume`: the partition assignment) to the "
    "last commit, so group joins are excluded; `rebuild` is the command's own clock "
    "(with `--workers`, from spawning the workers to the last one's end). Each contender "
    "runs in a process of its own; peak RSS is its VmHWM, and for `rebuild --workers 2` "
    "the peak of the sum over the command's processes (parent, workers, multiprocessing's "
    "resource tracker), sampled every 50 ms. Every table written is "
    "compared with the workload's oracle. On the blog workloads Projectionist also "
    "maintains the tag cloud and the DLQ/dedup/metrics machinery; the peers write posts "
    "only. On the orders workload (2 % re-published duplicates, 0.5 % second fulfilments) "
    "Projectionist and the hand-written peer both write order summaries, customer stats "
    "and daily sales and skip duplicate event ids and already-summarized orders; "
    "Projectionist also keeps its DLQ/metrics machinery. Ceiling and consume rows, and "
    "the fullstate and orders rebuilds, are the best of their interleaved rounds (every "
    "round is in docs/bench.json). "
    "Latency is producer CreateTime to the batch's commit, after a 2 s warm-up."
)


@contextlib.contextmanager
def databases() -> Iterator[Callable[[str], str]]:
    """A factory of fresh databases: ``new("postgres"|"sqlite")`` → URL; all dropped after."""
    admin = sa.create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    made: list[str] = []
    tmp = tempfile.TemporaryDirectory(prefix="projectionist-bench-")

    def new(kind: str) -> str:
        name = f"pj_bench_{uuid.uuid4().hex[:10]}"
        if kind == "sqlite":
            return f"sqlite:///{Path(tmp.name) / name}.db"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        made.append(name)
        return sa.engine.make_url(PG_BASE_URL).set(database=name).render_as_string(False)

    try:
        yield new
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
        tmp.cleanup()


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=200_000, help="live workload size")
    ap.add_argument("--rebuild-events", type=int, default=1_000_000)
    ap.add_argument("--naive-seconds", type=float, default=15.0, help="time box of naive runs")
    ap.add_argument("--latency-rate", type=float, default=2_000.0)
    ap.add_argument("--latency-seconds", type=float, default=15.0)
    ap.add_argument("--rebuild-batch", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="interleaved ceiling/live runs")
    ap.add_argument("--fullstate-events", type=int, default=200_000)
    ap.add_argument("--fullstate-posts", type=int, default=20_000)
    ap.add_argument("--fullstate-repeat", type=int, default=2, help="interleaved rounds")
    ap.add_argument("--orders-events", type=int, default=100_000, help="orders workload: orders")
    ap.add_argument("--orders-repeat", type=int, default=2, help="interleaved orders rounds")
    ap.add_argument("--quick", action="store_true", help="small sizes, for iterating")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--live-settings", default="{}", help="JSON Settings overrides (live modes)")
    ap.add_argument("--consumer-overrides", default="{}", help="JSON librdkafka overrides")
    args = ap.parse_args()
    if args.quick:
        args.events, args.rebuild_events = 20_000, 50_000
        args.naive_seconds, args.latency_seconds, args.repeat = 4.0, 5.0, 1
        args.fullstate_events, args.fullstate_posts, args.fullstate_repeat = 20_000, 2_000, 1
        args.orders_events, args.orders_repeat = 10_000, 1
    return args


def report(bench: Bench, started: float, load_start: tuple[float, float, float]) -> None:
    args, rows = bench.args, bench.rows
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    load = os.getloadavg()
    print(f"\nProjectionist benchmark, {when}; {machine}; load average {load[0]:.1f} at the end")
    print_table(rows)
    print_ratios(rows)
    print()
    checks = targets(rows)
    for name, measured, met in checks:
        verdict = "met" if met else "NOT met" if met is not None else "(not judged)"
        print(f"  {name:<48} {measured:<32} {verdict}")
    print(f"\n{NOTE}\nbenchmark wall time {time.monotonic() - started:.0f} s")
    payload = {
        "date": when,
        "machine": machine,
        "load_average_start": load_start,
        "load_average_end": load,
        "sizes": {
            **{
                k: getattr(args, k)
                for k in (
                    "events",
                    "rebuild_events",
                    "latency_rate",
                    "fullstate_events",
                    "orders_events",
                )
            },
            "quick": args.quick,
        },
        "rows": rows,
        "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in checks],
        "note": NOTE,
    }
    suffix = "-quick" if args.quick else ""
    write_json(args.out / f"bench{suffix}.json", payload)
    write_chart(args.out / f"bench{suffix}.png", rows, f"Projectionist bench, {when}, {machine}")
    print(f"wrote {args.out / f'bench{suffix}.json'} and bench{suffix}.png")
    if not args.quick and not args.only and args.out.resolve() == (ROOT / "docs").resolve():
        readme = ROOT / "README.md"
        section = render(json.loads(json.dumps(payload, default=str)), load_profile(args.out))
        readme.write_text(replace_section(readme.read_text(), section))
        print("wrote the README's Performance figures (bench/readme.py)")


def main() -> int:
    args = parse_args()
    only = set(filter(None, args.only.split(","))) or set(SCENARIOS)
    started, load_start = time.monotonic(), os.getloadavg()
    with EmbeddedBroker() as broker, databases() as new_db:
        bench = Bench(broker.bootstrap_servers, new_db, args)
        print(f"embedded broker at {broker.bootstrap_servers}", flush=True)
        bench.publish_live_topic()
        for name in SCENARIOS:
            if name in only:
                getattr(bench, name)()
    report(bench, started, load_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
