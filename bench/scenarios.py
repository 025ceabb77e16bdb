"""The scenarios of ``make bench``, each run in worker processes (bench.worker)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import contenders
from bench.fullstate import publish_fullstate
from bench.orders_workload import publish_orders
from bench.verify import (
    check_orders_peer,
    check_orders_projectionist,
    check_peer,
    check_projectionist,
)
from bench.workload import PARTITIONS, create_topic, publish, publish_paced

__all__ = ["Bench", "start_worker"]

ROOT = Path(__file__).resolve().parent.parent
DATABASES = ("postgres", "sqlite")
#: the rebuild over partitions side by side: one worker per core of the bench machine
REBUILD_WORKERS = ("rebuild", "--workers", "2")
WORKERS = "{}rebuild --workers 2"


def _rate(res: dict[str, Any]) -> float:
    return float(res["events"]) / res["active_s"] if res["active_s"] else 0.0


def start_worker(cfg: dict[str, Any]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bench.worker", json.dumps(cfg)]
    profile_dir = os.environ.get("BENCH_PROFILE")  # a folder: py-spy raw profile per worker
    if profile_dir:
        db = cfg.get("database_url", "-").split(":", 1)[0].split("+")[0]
        out = Path(profile_dir) / f"{cfg['mode']}-{db}-{uuid.uuid4().hex[:4]}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        spy = Path(sys.executable).with_name("py-spy")
        command = [str(spy), "record", "-r", "250", "-f", "raw", "-o", str(out), "--", *command]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def _wait_ready(proc: subprocess.Popen[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("READY"):
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError("worker never became ready")


def _result(proc: subprocess.Popen[str], timeout_s: float = 600) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout_s)
    for line in out.splitlines():
        if line.startswith("RESULT "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
            return parsed
    raise RuntimeError(f"worker exited {proc.returncode} without a result:\n{out[-3000:]}")


@dataclass
class Bench:
    """One benchmark run: a broker, a database factory, the options, the rows so far."""

    bootstrap: str
    new_db: Callable[[str], str]
    args: argparse.Namespace
    rows: list[dict[str, Any]] = field(default_factory=list)
    base: dict[str, Any] = field(default_factory=dict)

    def add(self, scenario: str, db: str, res: dict[str, Any]) -> None:
        self.rows.append({"scenario": scenario, "db": db, **res})
        rate = _rate(res)
        wrong = "  WRONG: " + "; ".join(res["problems"]) if res.get("problems") else ""
        print(
            f"  {scenario:<26} {db:<9} {res['events']:>9,} events  {rate:>9,.0f}/s  "
            f"RSS {res['peak_rss_mb']:.0f} MB{wrong}",
            flush=True,
        )

    def run(self, **cfg: Any) -> dict[str, Any]:
        return _result(start_worker({**self.base, "group_prefix": uuid.uuid4().hex, **cfg}))

    def publish_live_topic(self) -> None:
        topic = f"bench.blog.{uuid.uuid4().hex[:6]}"
        pub = publish(self.bootstrap, topic, events=self.args.events)
        print(f"  published {pub.events:,} events, {pub.posts:,} posts, {pub.seconds:.1f} s")
        self.base = {
            "bootstrap": self.bootstrap,
            "topic": topic,
            "partitions": PARTITIONS,
            "expected": pub.events,
            "settings": json.loads(self.args.live_settings),
            "consumer_overrides": json.loads(self.args.consumer_overrides),
        }

    def live(self) -> None:
        """The ceiling and ``projectionist consume blog --drain``, interleaved ``--repeat``
        times; each keeps its best.

        The shared machine's load comes and goes within a run: interleaving gives the
        ceiling and the projection the same chances, and every run's rate is kept.
        """
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(self.args.repeat):
            runs.setdefault(("ceiling (consume+decode)", "-"), []).append(self.run(mode="ceiling"))
            for db in DATABASES:
                cfg = {**self.base, "group_prefix": uuid.uuid4().hex}
                res = contenders.projectionist({**cfg, "database_url": self.new_db(db)}, "consume")
                runs.setdefault(("consume", db), []).append(res)
        # For reference: consume() alone, to show what the ceiling's decode costs.
        runs[("consume only (no decode)", "-")] = [self.run(mode="ceiling", decode=False)]
        for (scenario, db), results in runs.items():
            for r in results:
                r.pop("commits", None)  # per-batch timestamps: only scale-out uses them
            best = max(results, key=_rate)
            best["rates_of_all_runs"] = [round(_rate(r)) for r in results]
            self.add(scenario, db, best)

    def naive(self) -> None:
        for db in DATABASES:
            res = self.run(
                mode="naive", database_url=self.new_db(db), max_seconds=self.args.naive_seconds
            )
            self.add("naive (1 tx/event)", db, res)

    def scaleout(self) -> None:
        """Two processes in one group versus one, on the same 4-partition topic.

        Both rows are also given after the group settled (from the last rebalance seen
        by any member to the last commit): the two-process run usually pays one
        rebalance (~3 s on the embedded broker) when the second member joins late.
        """
        for n in (1, 2):
            url, prefix = self.new_db("postgres"), uuid.uuid4().hex
            cfg = {**self.base, "mode": "live", "database_url": url, "group_prefix": prefix}
            parts = [_result(p) for p in [start_worker(cfg) for _ in range(n)]]
            first = min(p["first_wall"] for p in parts if p["first_wall"])
            end = max(p["end_wall"] for p in parts)
            settled = max(p["settled_wall"] or first for p in parts)
            after = sum(c for p in parts for when, c in p["commits"] if when > settled)
            row = {
                "events": sum(p["events"] for p in parts),
                "active_s": end - first,
                "total_s": max(p["total_s"] for p in parts),
                "peak_rss_mb": max(p["peak_rss_mb"] for p in parts),
                "rebalances": [p["rebalances"] for p in parts],
                "per_process_events": [p["events"] for p in parts],
                "settled_events": after,
                "settled_rate": after / (end - settled) if end > settled else None,
            }
            self.add(f"scale-out: {n} process{'es' if n > 1 else ''}", "postgres", row)

    def latency(self) -> None:
        """A live consumer against a producer paced at a moderate rate."""
        rate, seconds = self.args.latency_rate, self.args.latency_seconds
        for db in DATABASES:
            topic = f"bench.latency.{uuid.uuid4().hex[:6]}"
            create_topic(self.bootstrap, topic)
            total = int(rate * seconds)
            proc = start_worker(
                {
                    **self.base,
                    "topic": topic,
                    "mode": "latency",
                    "database_url": self.new_db(db),
                    "group_prefix": uuid.uuid4().hex,
                    "stop_after": total,
                    "warmup_events": int(rate * 2),
                    "ready_partitions": PARTITIONS,
                    "expected": total,
                }
            )
            _wait_ready(proc)
            pub = publish_paced(self.bootstrap, topic, rate=rate, seconds=seconds)
            res = _result(proc)
            res["rate"] = pub.events / pub.seconds
            self.add("latency @ rate", db, res)

    def rebuild(self) -> None:
        """``projectionist rebuild blog`` of a 1M-event topic, into fresh databases."""
        topic = f"bench.rebuild.{uuid.uuid4().hex[:6]}"
        pub = publish(self.bootstrap, topic, events=self.args.rebuild_events, seed=4242)
        print(f"  published {pub.events:,} events, {pub.posts:,} posts, {pub.seconds:.1f} s")
        for db in ("sqlite", "postgres"):
            cfg = {**self.base, "topic": topic, "group_prefix": uuid.uuid4().hex}
            res = contenders.projectionist({**cfg, "database_url": self.new_db(db)}, "rebuild")
            self.add("rebuild", db, res)
        for db in ("sqlite", "postgres"):
            cfg = {
                **self.base,
                "topic": topic,
                "group_prefix": uuid.uuid4().hex,
                "cli_args": list(REBUILD_WORKERS[1:]),
                "database_url": self.new_db(db),
            }
            self.add(WORKERS.format(""), db, contenders.projectionist(cfg, "rebuild"))

    def fullstate(self) -> None:
        """Issue 15's workload: every peer and Projectionist, ``--repeat`` interleaved rounds.

        Each contender's table is compared with the oracle after its run; a wrong one is
        marked (``problems``) and judged by no target. Each keeps its best round.
        """
        topic = f"bench.fullstate.{uuid.uuid4().hex[:6]}"
        pub, oracle = publish_fullstate(
            self.bootstrap,
            topic,
            posts=self.args.fullstate_posts,
            events=self.args.fullstate_events,
        )
        print(
            f"  fullstate: published {pub.events:,} events, {pub.posts:,} posts, "
            f"{pub.seconds:.1f} s"
        )
        base = {**self.base, "topic": topic, "expected": pub.events}

        def fresh(db: str) -> dict[str, Any]:
            return {**base, "group_prefix": uuid.uuid4().hex, "database_url": self.new_db(db)}

        def pj(db: str, command: str, *cli_args: str) -> tuple[dict[str, Any], list[str]]:
            cfg = {**fresh(db), "cli_args": list(cli_args)}
            return contenders.projectionist(cfg, command), check_projectionist(
                cfg["database_url"], oracle
            )

        def peer(run: Callable[[dict[str, Any]], dict[str, Any]], table: str) -> Any:
            cfg = fresh("postgres")
            return run(cfg), check_peer(cfg["database_url"], table, oracle)

        runs: dict[tuple[str, str], Callable[[], tuple[dict[str, Any], list[str]]]] = {
            ("fullstate: ceiling", "-"): lambda: (self.run(**base, mode="ceiling", plain=True), []),
            ("fullstate: hand-written", "postgres"): lambda: peer(
                contenders.handwritten, "hw_posts"
            ),
            ("fullstate: Quix Streams", "postgres"): lambda: peer(contenders.quix, "qx_posts"),
            ("fullstate: consume", "postgres"): lambda: pj("postgres", "consume"),
            ("fullstate: consume", "sqlite"): lambda: pj("sqlite", "consume"),
            ("fullstate: rebuild", "postgres"): lambda: pj("postgres", "rebuild"),
            ("fullstate: rebuild", "sqlite"): lambda: pj("sqlite", "rebuild"),
            (WORKERS.format("fullstate: "), "postgres"): lambda: pj("postgres", *REBUILD_WORKERS),
            (WORKERS.format("fullstate: "), "sqlite"): lambda: pj("sqlite", *REBUILD_WORKERS),
        }
        self._rounds(runs, self.args.fullstate_repeat)

    def _rounds(
        self,
        runs: dict[tuple[str, str], Callable[[], tuple[dict[str, Any], list[str]]]],
        repeat: int,
    ) -> None:
        """Every run ``repeat`` times, interleaved; each row keeps its best verified round."""
        results: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for _ in range(max(1, repeat)):
            for key, run in runs.items():
                res, problems = run()
                res["verified"] = not problems
                if problems:
                    res["problems"] = problems
                results.setdefault(key, []).append(res)
        for (scenario, db), rs in results.items():
            good = [r for r in rs if r["verified"]] or rs
            best = max(good, key=_rate)
            best["rates_of_all_runs"] = [round(_rate(r)) for r in rs]
            self.add(scenario, db, best)

    def orders(self) -> None:
        """The orders workload (bench.orders_workload), benchmarked like ``fullstate``:
        the ceiling, the hand-written peer and ``projectionist consume orders --drain`` /
        ``rebuild orders`` on both databases, ``--orders-repeat`` interleaved rounds.

        Each contender's three read models are compared with the oracle after its run; a
        wrong one is marked (``problems``) and judged by no target.
        """
        topic = f"bench.orders.{uuid.uuid4().hex[:6]}"
        pub, oracle = publish_orders(self.bootstrap, topic, orders=self.args.orders_events)
        print(
            f"  orders: published {pub.events:,} events, {pub.posts:,} orders "
            f"({oracle.duplicates:,} re-published, {oracle.second_fulfilments:,} second "
            f"fulfilments), {pub.seconds:.1f} s"
        )
        base = {**self.base, "topic": topic, "expected": pub.events}

        def fresh(db: str) -> dict[str, Any]:
            return {**base, "group_prefix": uuid.uuid4().hex, "database_url": self.new_db(db)}

        def pj(db: str, command: str, *cli_args: str) -> tuple[dict[str, Any], list[str]]:
            cfg = {**fresh(db), "cli_args": list(cli_args)}
            res = contenders.projectionist(cfg, command, "orders")
            return res, check_orders_projectionist(cfg["database_url"], oracle)

        def peer() -> tuple[dict[str, Any], list[str]]:
            cfg = fresh("postgres")
            res = contenders.handwritten(cfg, "bench.handwritten_orders")
            return res, check_orders_peer(cfg["database_url"], "ho_", oracle)

        schema = "schemas/avro/orders/OrderFulfilled.v1.avsc"
        runs: dict[tuple[str, str], Callable[[], tuple[dict[str, Any], list[str]]]] = {
            ("orders: ceiling", "-"): lambda: (
                self.run(**base, mode="ceiling", plain=True, schema=schema),
                [],
            ),
            ("orders: hand-written", "postgres"): peer,
            ("orders: consume", "postgres"): lambda: pj("postgres", "consume"),
            ("orders: consume", "sqlite"): lambda: pj("sqlite", "consume"),
            ("orders: rebuild", "postgres"): lambda: pj("postgres", "rebuild"),
            ("orders: rebuild", "sqlite"): lambda: pj("sqlite", "rebuild"),
            (WORKERS.format("orders: "), "postgres"): lambda: pj("postgres", *REBUILD_WORKERS),
            (WORKERS.format("orders: "), "sqlite"): lambda: pj("sqlite", *REBUILD_WORKERS),
        }
        self._rounds(runs, self.args.orders_repeat)
