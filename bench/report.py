"""The benchmark's outputs: a table on stdout, JSON and a PNG chart in ``docs/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "WORKLOADS",
    "print_ratios",
    "print_table",
    "ratios",
    "targets",
    "write_chart",
    "write_json",
]

Row = dict[str, Any]


def _rate(row: Row) -> float:
    return float(row["events"]) / row["active_s"] if row.get("active_s") else 0.0


def _find(rows: list[Row], name: str, db: str | None = None) -> Row | None:
    return next((r for r in rows if r["scenario"] == name and (db is None or r["db"] == db)), None)


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'scenario':<28}{'db':<10}{'events':>10}{'active s':>10}{'total s':>9}"
        f"{'events/s':>11}{'peak RSS MB':>13}{'p50 ms':>9}{'p99 ms':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        lat = r.get("latency_ms") or {}
        p50 = f"{lat['p50']:.0f}" if lat else ""
        p99 = f"{lat['p99']:.0f}" if lat else ""
        print(
            f"{r['scenario']:<28}{r['db']:<10}{r['events']:>10,}{r['active_s']:>10.1f}"
            f"{r['total_s']:>9.1f}{_rate(r):>11,.0f}{r['peak_rss_mb']:>13.0f}{p50:>9}{p99:>9}"
        )


def _ratio(a: Row | None, b: Row | None) -> float | None:
    """rate(a) / rate(b), when both ran and neither is a wrong answer."""
    if not a or not b or a.get("problems") or b.get("problems") or not _rate(b):
        return None
    return _rate(a) / _rate(b)


#: the workloads benchmarked side by side: name → events from which consume is judged
WORKLOADS = {"fullstate": 200_000, "orders": 100_000}
#: the scenario suffix of ``projectionist rebuild --workers 2`` (bench.scenarios)
WORKERS = "rebuild --workers 2"


def ratios(
    rows: list[Row], workload: str = "fullstate"
) -> list[tuple[str, str, float | None, float | None]]:
    """Issue 15's side-by-side on ``workload``'s bytes (fullstate or orders): (contender,
    db, share of the ceiling, Projectionist's ``consume`` PostgreSQL ÷ it)."""
    w = f"{workload}: "
    ceiling, pj = _find(rows, f"{w}ceiling"), _find(rows, f"{w}consume", "postgres")
    out = []
    for r in rows:
        if r["scenario"].startswith(w) and r is not ceiling:
            mine = r["scenario"] in (f"{w}consume", f"{w}rebuild", f"{w}{WORKERS}")
            out.append(
                (
                    r["scenario"].removeprefix(w),
                    r["db"],
                    _ratio(r, ceiling),
                    None if mine else _ratio(pj, r),
                )
            )
    return out


def print_ratios(rows: list[Row]) -> None:
    """The side-by-side of each workload that ran: share of its ceiling, consume ÷ peer."""
    for workload in WORKLOADS:
        side = ratios(rows, workload)
        if side:
            print(
                f"\n  side by side on the {workload} bytes: of the ceiling; consume postgres ÷ it"
            )
            for name, db, of_ceiling, pj in side:
                share = f"{of_ceiling:.0%}" if of_ceiling is not None else "-"
                mine = f"{pj:.2f}x" if pj is not None else ""
                print(f"    {name:<24} {db:<9} {share:>6}  {mine}")


def _rebuild_targets(rows: list[Row]) -> list[tuple[str, str, bool | None]]:
    """The rebuild's targets, for ``rebuild`` and ``rebuild --workers 2`` each."""
    out: list[tuple[str, str, bool | None]] = []
    for suffix, how in (("rebuild", ""), (WORKERS, ", 2 workers")):
        for workload, ceiling_name, prefix in (
            ("fullstate", "fullstate: ceiling", "fullstate: "),
            ("orders", "orders: ceiling", "orders: "),
            ("own, 1M", "ceiling (consume+decode)", ""),
        ):
            ceiling = _find(rows, ceiling_name)
            for db in ("postgres", "sqlite"):
                ratio = _ratio(_find(rows, prefix + suffix, db), ceiling)
                if ratio is not None:
                    out.append(
                        (
                            f"rebuild {db} >= 70 % of the ceiling ({workload}{how})",
                            f"{ratio:.0%}",
                            ratio >= 0.7,
                        )
                    )
        r = _find(rows, suffix, "postgres")
        if r:
            full = r["events"] >= 1_000_000
            out.append(
                (
                    f"rebuild of 1M events into postgres <= 15 s{how}",
                    f"{r['active_s']:.1f} s ({r['events']:,} events)",
                    r["active_s"] <= 15 if full else None,
                )
            )
        backlog = [r for r in rows if r["scenario"] == suffix]
        if backlog:
            # every process of the command: the workers' memory counts, the sum of them
            worst = max(r.get("tree_peak_rss_mb") or r["peak_rss_mb"] for r in backlog)
            n = min(r["events"] for r in backlog)
            out.append(
                (
                    f"peak RSS <= 200 MB on a 1M backlog{how}",
                    f"{worst:.0f} MB ({n:,} events)",
                    worst <= 200 if n >= 1_000_000 else None,
                )
            )
    return out


def targets(rows: list[Row]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each of issue 15's targets; met None when not judged.

    Below the issue's sizes (200,000 events live, 1,000,000 for the rebuild) start-up
    dominates the rates: those are shown, not judged. The orders workload is held to
    the fullstate bars (consume >= 1.1x the hand-written peer from 100,000 orders on,
    rebuild >= 70 % of its ceiling).
    """
    out: list[tuple[str, str, bool | None]] = []
    for workload, full_size in WORKLOADS.items():
        quix = _find(rows, f"{workload}: Quix Streams")
        hand = _find(rows, f"{workload}: hand-written")
        for db in ("postgres", "sqlite"):
            pj = _find(rows, f"{workload}: consume", db)
            full = bool(pj) and pj["events"] >= full_size  # type: ignore[index]
            for peer, name, limit in ((quix, "Quix Streams", 2.0), (hand, "hand-written", 1.1)):
                ratio = _ratio(pj, peer)
                if ratio is not None:
                    out.append(
                        (
                            f"consume {db} >= {limit}x {name} ({workload})",
                            f"{ratio:.2f}x",
                            ratio >= limit if full else None,
                        )
                    )
    out += _rebuild_targets(rows)
    lat = _find(rows, "latency @ rate", "postgres")
    if lat and lat.get("latency_ms"):
        p99 = lat["latency_ms"]["p99"]
        out.append(("p99 produce->queryable <= 100 ms (postgres)", f"{p99:.0f} ms", p99 <= 100))
    one, two = (
        _find(rows, "scale-out: 1 process", "postgres"),
        _find(rows, "scale-out: 2 processes", "postgres"),
    )
    if one and two:
        ratio = f"{_rate(two) / _rate(one):.2f}x"
        if one.get("settled_rate") and two.get("settled_rate"):
            ratio += f" ({two['settled_rate'] / one['settled_rate']:.2f}x once the group settled)"
        out.append(("scale-out 2 vs 1 process (report)", ratio, None))
    wrong = [f"{r['scenario']} {r['db']}" for r in rows if r.get("problems")]
    out.append(("every contender's table equals the oracle", ", ".join(wrong) or "all", not wrong))
    return out


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def write_chart(path: Path, rows: list[Row], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [r for r in rows if r["scenario"] != "latency @ rate"]
    labels = [f"{r['scenario']}\n{r['db']}" for r in bars]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 1]})
    colors = [
        "#888888" if r["db"] == "-" else "#336699" if r["db"] == "postgres" else "#cc7733"
        for r in bars
    ]
    ax1.barh(labels, [_rate(r) for r in bars], color=colors)
    ax1.invert_yaxis()
    ax1.set_xlabel("events/s (grey: no database, blue: PostgreSQL, orange: SQLite)")
    ax1.tick_params(axis="y", labelsize=8)
    for i, r in enumerate(bars):
        ax1.text(_rate(r), i, f" {_rate(r):,.0f}", va="center", fontsize=8)
    lat = [r for r in rows if r.get("latency_ms")]
    x = range(len(lat))
    ax2.bar([i - 0.2 for i in x], [r["latency_ms"]["p50"] for r in lat], 0.4, label="p50")
    ax2.bar([i + 0.2 for i in x], [r["latency_ms"]["p99"] for r in lat], 0.4, label="p99")
    ax2.axhline(100, color="red", linestyle="--", linewidth=1, label="p99 target")
    ax2.set_xticks(list(x), [r["db"] for r in lat])
    ax2.set_ylabel("produce → queryable, ms")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
