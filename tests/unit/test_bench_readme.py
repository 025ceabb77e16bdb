"""The README's Performance figures are the committed bench run, rendered (bench/readme.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.readme import BEGIN, END, load_profile, render, replace_section
from bench.report import targets

ROOT = Path(__file__).resolve().parents[2]


def test_readme_section_is_what_the_committed_json_renders() -> None:
    """Between the markers, README.md holds exactly render(docs/bench.json): no typed figure."""
    payload = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index(BEGIN) + len(BEGIN) : readme.index(END)].strip("\n")
    assert section == render(payload, load_profile(ROOT / "docs")), (
        "run: .venv/bin/python bench/readme.py"
    )


def test_the_committed_run_records_its_date_and_load() -> None:
    """The run states when it ran and how loaded the machine was, and the README shows it."""
    payload = json.loads((ROOT / "docs" / "bench.json").read_text(encoding="utf-8"))
    assert payload["date"]
    assert len(payload["load_average_start"]) == 3
    assert len(payload["load_average_end"]) == 3
    assert payload["date"] in render(payload)
    assert f"{payload['load_average_start'][0]:.1f}" in render(payload)


def _row(scenario: str, db: str, events: int, seconds: float, **extra: object) -> dict:
    return {
        "scenario": scenario,
        "db": db,
        "events": events,
        "active_s": seconds,
        "total_s": seconds,
        "peak_rss_mb": 100.0,
        **extra,
    }


def test_targets_are_judged_from_the_rows_and_a_wrong_table_fails() -> None:
    """Ratios come from the rows; a contender whose table differs from the oracle is no
    result, and the oracle target says which one it was."""
    rows = [
        _row("fullstate: ceiling", "-", 200_000, 2.0),
        _row("fullstate: Quix Streams", "postgres", 200_000, 8.0),
        _row("fullstate: hand-written", "postgres", 200_000, 4.0, problems=["3 posts differ"]),
        _row("fullstate: consume", "postgres", 200_000, 3.0),
    ]
    judged = {name: (measured, met) for name, measured, met in targets(rows)}
    assert judged["consume postgres >= 2.0x Quix Streams (fullstate)"] == ("2.67x", True)
    assert not any("hand-written" in name for name in judged)
    assert judged["every contender's table equals the oracle"] == (
        "fullstate: hand-written postgres",
        False,
    )


def test_replacing_the_section_keeps_the_rest_and_needs_the_markers() -> None:
    """Only the text between the markers changes; a README without them is an error."""
    text = f"before\n{BEGIN}\nold\n{END}\nafter\n"
    assert replace_section(text, "new") == f"before\n{BEGIN}\nnew\n{END}\nafter\n"
    with pytest.raises(ValueError, match="bench:begin"):
        replace_section("no markers", "new")


def _orders_rows(events: int, **hand: object) -> list[dict]:
    return [
        _row("orders: ceiling", "-", events, 2.0),
        _row("orders: hand-written", "postgres", events, 4.0, **hand),
        _row("orders: consume", "postgres", events, 5.0),
        _row("orders: consume", "sqlite", events, 8.0),
        _row("orders: rebuild", "postgres", events, 2.5),
        _row("orders: rebuild", "sqlite", events, 4.0),
    ]


def test_orders_rows_are_held_to_the_fullstate_bars_at_full_size() -> None:
    """consume vs the hand-written orders peer is judged from 100,000 orders on, the rebuild
    against the orders ceiling always, like the fullstate rows."""
    judged = {name: (measured, met) for name, measured, met in targets(_orders_rows(102_545))}
    assert judged["consume postgres >= 1.1x hand-written (orders)"] == ("0.80x", False)
    assert judged["consume sqlite >= 1.1x hand-written (orders)"] == ("0.50x", False)
    assert judged["rebuild postgres >= 70 % of the ceiling (orders)"] == ("80%", True)
    assert judged["rebuild sqlite >= 70 % of the ceiling (orders)"] == ("50%", False)
    assert not any("Quix" in name and "orders" in name for name in judged)
    small = {name: met for name, _, met in targets(_orders_rows(10_252))}
    assert small["consume postgres >= 1.1x hand-written (orders)"] is None


def test_a_wrong_orders_table_is_no_result_and_the_oracle_target_names_it() -> None:
    rows = _orders_rows(102_545, problems=["daily_sales: 3 of 124 keys differ"])
    judged = {name: (measured, met) for name, measured, met in targets(rows)}
    assert not any("hand-written (orders)" in name for name in judged)
    assert judged["every contender's table equals the oracle"] == (
        "orders: hand-written postgres",
        False,
    )
    assert "orders: hand-written consume(5000) + COPY + set-based merges (**wrong result**)" in (
        render({"date": "d", "machine": "m", "rows": rows})
    )


def test_the_orders_rows_render_with_their_own_side_by_side() -> None:
    """The orders rows get their labels, the size line names them, and a side-by-side
    table of their own beside (not mixed into) the fullstate one."""
    rows = [
        _row("fullstate: ceiling", "-", 200_000, 2.0),
        _row("fullstate: consume", "postgres", 200_000, 4.0),
        *_orders_rows(102_545),
    ]
    text = render({"date": "d", "machine": "m", "rows": rows, "sizes": {"orders_events": 100_000}})
    assert "Orders: 100,000 orders" in text
    assert "| orders: **`projectionist consume orders --drain`** | PostgreSQL | 102,545 |" in text
    fullstate = text[text.index("on the fullstate bytes") : text.index("on the orders bytes")]
    orders = text[text.index("on the orders bytes") : text.index("| target (issue 15)")]
    assert "| hand-written | PostgreSQL | 50% | 0.80× |" in orders
    assert "| rebuild | SQLite | 50% |  |" in orders
    assert "hand-written" not in fullstate
