"""The benchmark's outputs: a table on stdout, JSON and a PNG chart in ``docs/``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["print_table", "targets", "write_chart", "write_json"]

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


def targets(rows: list[Row]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each of the issue's targets; met None when not measured."""
    out: list[tuple[str, str, bool | None]] = []
    ceiling, live_pg = _find(rows, "ceiling (consume+decode)"), _find(rows, "live", "postgres")
    naive_pg = _find(rows, "naive (1 tx/event)", "postgres")
    # Below the 200k events start-up dominates the rates: shown, not judged.
    full = bool(live_pg) and live_pg["events"] >= 200_000
    if ceiling and live_pg:
        ratio = _rate(live_pg) / _rate(ceiling)
        out.append(("live PG >= 50 % of ceiling", f"{ratio:.0%}", ratio >= 0.5 if full else None))
    if naive_pg and live_pg:
        ratio = _rate(live_pg) / _rate(naive_pg)
        out.append(("live PG >= 25x naive worker", f"{ratio:.1f}x", ratio >= 25 if full else None))
    for db, limit in (("sqlite", 20.0), ("postgres", 30.0)):
        r = _find(rows, "rebuild", db)
        if r:
            full = r["events"] >= 1_000_000
            label = f"rebuild of {r['events']:,} events"
            out.append(
                (
                    f"rebuild 1M into {db} <= {limit:.0f} s",
                    f"{r['active_s']:.1f} s ({label})",
                    r["active_s"] <= limit if full else None,
                )
            )
    backlog = [r for r in rows if r["scenario"] == "rebuild"]
    if backlog:
        worst = max(r["peak_rss_mb"] for r in backlog)
        n = min(r["events"] for r in backlog)
        out.append(
            (
                "peak RSS <= 250 MB on a 1M backlog",
                f"{worst:.0f} MB ({n:,}-event backlog)",
                worst <= 250 if n >= 1_000_000 else None,
            )
        )
    lat = _find(rows, "latency @ rate", "postgres")
    if lat and lat.get("latency_ms"):
        p99 = lat["latency_ms"]["p99"]
        out.append(("p99 produce->queryable <= 250 ms (PG)", f"{p99:.0f} ms", p99 <= 250))
    one, two = (
        _find(rows, "scale-out: 1 process", "postgres"),
        _find(rows, "scale-out: 2 processes", "postgres"),
    )
    if one and two:
        ratio = f"{_rate(two) / _rate(one):.2f}x"
        if one.get("settled_rate") and two.get("settled_rate"):
            ratio += f" ({two['settled_rate'] / one['settled_rate']:.2f}x once the group settled)"
        out.append(("scale-out 2 vs 1 process (report)", ratio, None))
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
    ax2.axhline(250, color="red", linestyle="--", linewidth=1, label="p99 target")
    ax2.set_xticks(list(x), [r["db"] for r in lat])
    ax2.set_ylabel("produce → queryable, ms")
    ax2.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
