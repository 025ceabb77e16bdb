"""The README's Performance figures, written from ``docs/bench.json`` (one ``make bench`` run).

``python bench/readme.py [docs/bench.json] [README.md]`` replaces what lies between
``<!-- bench:begin -->`` and ``<!-- bench:end -->`` with :func:`render` of the JSON;
``bench/run.py`` calls it after a full run. No figure in that section is typed by hand,
and a unit test holds the README to what this renders from the committed JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: bench/ is sys.path[0], not the repo
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import WORKLOADS, ratios, targets

__all__ = ["BEGIN", "END", "load_profile", "render", "replace_section"]

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
ROOT = Path(__file__).resolve().parent.parent

_LABELS = {
    "fullstate: ceiling": "fullstate: ceiling, consume + plain fastavro, no DB",
    "fullstate: hand-written": "fullstate: hand-written consume(5000) + COPY + merge",
    "fullstate: Quix Streams": "fullstate: Quix Streams 3.28, BatchingSink + upsert",
    "fullstate: consume": "fullstate: **`projectionist consume blog --drain`**",
    "fullstate: rebuild": "fullstate: **`projectionist rebuild blog`**",
    "fullstate: rebuild --workers 2": "fullstate: **`projectionist rebuild blog --workers 2`**",
    "orders: ceiling": "orders: ceiling, consume + plain fastavro, no DB",
    "orders: hand-written": "orders: hand-written consume(5000) + COPY + set-based merges",
    "orders: consume": "orders: **`projectionist consume orders --drain`**",
    "orders: rebuild": "orders: **`projectionist rebuild orders`**",
    "orders: rebuild --workers 2": "orders: **`projectionist rebuild orders --workers 2`**",
    "ceiling (consume+decode)": "own: ceiling, consume + Projectionist's decode, no DB",
    "consume only (no decode)": "own: consume() only, no decode (reference)",
    "consume": "own: **`projectionist consume blog --drain`**",
    "naive (1 tx/event)": "own: naive worker, 1 transaction per event (time-boxed)",
    "rebuild": "own, 1M: **`projectionist rebuild blog`**",
    "rebuild --workers 2": "own, 1M: **`projectionist rebuild blog --workers 2`**",
    "latency @ rate": "own: latency, producer paced",
    "scale-out: 1 process": "own: scale-out, 1 process",
    "scale-out: 2 processes": "own: scale-out, 2 processes in one group",
}
_DB = {"postgres": "PostgreSQL", "sqlite": "SQLite", "-": "–"}


def _rate(row: dict[str, Any]) -> float:
    return float(row["events"]) / row["active_s"] if row.get("active_s") else 0.0


def _load(values: Any) -> str:
    return " / ".join(f"{v:.1f}" for v in values) if values else "not recorded"


def _profile(profile: dict[str, Any]) -> list[str]:
    runs = profile["runs"]
    parts = list(dict.fromkeys(p for run in runs for p in run["parts"]))
    lines = [
        "",
        f"Where the consume loop's time goes ({profile['what']}; share of its samples):",
        "",
        "| part of the loop | " + " | ".join(run["label"] for run in runs) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for part in parts:
        cells = [_share(run, part) for run in runs]
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    rates = [run.get("events_per_s") for run in runs]
    if all(rates):
        lines.append("| events/s under py-spy | " + " | ".join(f"{r:,.0f}" for r in rates) + " |")
    return lines


def _share(run: dict[str, Any], part: str) -> str:
    """The part's share of the samples; with the run's rate, its µs per event too."""
    share = run["parts"].get(part)
    if share is None:
        return "–"
    rate = run.get("events_per_s")
    return f"{share:.0%} ({share * 1e6 / rate:.1f} µs)" if rate else f"{share:.0%}"


def render(payload: dict[str, Any], profile: dict[str, Any] | None = None) -> str:
    """The generated part of the README's Performance section (between the markers);
    ``profile``: docs/bench-profile.json (bench/profile_summary.py --after), if any."""
    rows: list[dict[str, Any]] = payload["rows"]
    sizes = payload.get("sizes", {})
    lines = [
        f"Run finished **{payload['date']}**, {payload['machine']}; load average (1 / 5 / 15 min) "
        f"{_load(payload.get('load_average_start'))} at the start, "
        f"{_load(payload.get('load_average_end'))} at the end. Sizes: fullstate "
        f"{sizes.get('fullstate_events', 0):,} events, own workload {sizes.get('events', 0):,} "
        f"live and {sizes.get('rebuild_events', 0):,} for the rebuild; latency at "
        f"{sizes.get('latency_rate', 0):,.0f} events/s."
        + (
            f" Orders: {sizes['orders_events']:,} orders (plus re-published duplicates "
            "and second fulfilments)."
            if sizes.get("orders_events")
            and any(r["scenario"].startswith("orders: ") for r in rows)
            else ""
        )
        + (
            " **Reduced scale** (`--quick`): rates are start-up-bound."
            if sizes.get("quick")
            else ""
        ),
        "",
        "| scenario | db | events | seconds | events/s | peak RSS | p50 / p99 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lat = r.get("latency_ms")
        # a rebuild with workers: every process of the command, summed
        rss = r.get("tree_peak_rss_mb") if "workers" in r["scenario"] else r["peak_rss_mb"]
        wrong = " (**wrong result**)" if r.get("problems") else ""
        lines.append(
            f"| {_LABELS.get(r['scenario'], r['scenario'])}{wrong} | {_DB.get(r['db'], r['db'])} "
            f"| {r['events']:,} | {r['active_s']:.1f} | {_rate(r):,.0f} | "
            f"{rss:.0f} MB | " + (f"{lat['p50']:.0f} / {lat['p99']:.0f} ms |" if lat else "|")
        )
    for workload in WORKLOADS:
        side = ratios(rows, workload)
        if not side:
            continue
        lines += [
            "",
            f"Side by side on the {workload} bytes (same run):",
            "",
            "| contender | db | of the ceiling | `consume` PostgreSQL ÷ it |",
            "|---|---|---:|---:|",
        ]
        for name, db, of_ceiling, pj in side:
            lines.append(
                f"| {name} | {_DB.get(db, db)} | "
                + (f"{of_ceiling:.0%}" if of_ceiling is not None else "–")
                + " | "
                + (f"{pj:.2f}×" if pj is not None else "")
                + " |"
            )
    lines += ["", "| target (issue 15) | measured | |", "|---|---|---|"]
    for name, measured, met in targets(rows):
        verdict = "met" if met else "**not met**" if met is not None else "reported"
        lines.append(f"| {name} | {measured} | {verdict} |")
    if profile:
        lines += _profile(profile)
    if payload.get("note"):
        lines += ["", payload["note"]]
    return "\n".join(lines)


def load_profile(docs: Path = ROOT / "docs") -> dict[str, Any] | None:
    path = docs / "bench-profile.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def replace_section(readme: str, section: str) -> str:
    """``readme`` with the text between the markers replaced by ``section``."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {BEGIN} … {END} section")
    return readme[: start + len(BEGIN)] + "\n" + section + "\n" + readme[end:]


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "bench.json"
    readme = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "README.md"
    payload = json.loads(source.read_text(encoding="utf-8"))
    section = render(payload, load_profile(source.parent))
    readme.write_text(replace_section(readme.read_text(encoding="utf-8"), section), "utf-8")
    print(f"wrote the Performance figures of {readme.name} from {source.name}")


if __name__ == "__main__":
    main()
