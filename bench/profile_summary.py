"""Summarize py-spy raw profiles (``BENCH_PROFILE=dir make bench``): hottest frames.

``python bench/profile_summary.py dir/cli-consume-postgresql-ab12.txt [--filter text]``
prints the hottest frames; :func:`shares` sorts the consume loop's samples into the
parts the README names (``make bench --profile`` records them in docs/bench.json).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

__all__ = ["PARTS", "per_event", "shares"]

#: part of the loop → a frame that marks it, tested innermost first
PARTS = {
    "Avro decode": "AvroSerde.decode",
    "SQL statements (driver, wait)": "Connection.exec_driver_sql",
    "COPY (driver, wait)": "Copy.",
    "metrics": "LoopObserver.",
    "preparing events (rest of prepare)": "BatchPreparer.prepare",
    "fold (Python, blog.apply)": "BlogProjection.apply",
    "transaction, checkpoint": "BatchTransaction.",
}


def shares(profile: Path, *, within: str = "ProjectionRunner.drain") -> dict[str, float]:
    """Share of the samples ``within`` the loop spent in each part (the rest: consume()
    and the loop itself), most specific part first."""
    counts = _part_samples(profile, within)
    total = sum(counts.values()) or 1
    return {part: round(n / total, 3) for part, n in counts.most_common()}


def per_event(profile: Path, *, events: int, rate_hz: int = 250) -> dict[str, dict[str, float]]:
    """Each part's share and its µs per event (samples / rate / events: busy time)."""
    counts = _part_samples(profile, "ProjectionRunner.drain")
    total = sum(counts.values()) or 1
    return {
        part: {"share": round(n / total, 3), "us_per_event": round(n * 1e6 / rate_hz / events, 2)}
        for part, n in counts.most_common()
    }


def _part_samples(profile: Path, within: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not any(within in f for f in frames):
            continue
        part = "consume() and the loop"
        for frame in reversed(frames):
            hit = next((p for p, marker in PARTS.items() if marker in frame), None)
            if hit:
                part = hit
                break
        counts[part] += int(count)
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--filter", default="", help="only stacks through a frame containing this")
    ap.add_argument("--parts", action="store_true", help="the loop's parts (shares) only")
    ap.add_argument("--events", type=int, default=0, help="with --parts: µs per event as JSON")
    ap.add_argument(
        "--after", type=Path, help="a second profile: print docs/bench-profile.json's content"
    )
    ap.add_argument("--label", nargs=2, default=("before", "after"), help="the two labels")
    ap.add_argument(
        "--rates",
        nargs=2,
        type=float,
        help="events/s each profiled run measured (bench output): µs per event in the README",
    )
    args = ap.parse_args()
    if args.after:
        runs: list[dict[str, object]] = [
            {"label": args.label[0], "parts": shares(args.profile)},
            {"label": args.label[1], "parts": shares(args.after)},
        ]
        if args.rates:
            for run, rate in zip(runs, args.rates, strict=True):
                run["events_per_s"] = rate
        print(
            json.dumps(
                {
                    "what": "py-spy at 250 Hz of `projectionist consume blog --drain`, "
                    "fullstate, PostgreSQL",
                    "runs": runs,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    if args.parts and args.events:
        print(json.dumps(per_event(args.profile, events=args.events), indent=2))
        return
    if args.parts:
        for part, share in shares(args.profile).items():
            print(f"{share:6.1%}  {part}")
        return
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if args.filter and not any(args.filter in f for f in frames):
            continue
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} samples")
    print("-- inclusive")
    for frame, n in inclusive.most_common(args.top):
        print(f"{n / total:6.1%}  {frame[:140]}")
    print("-- own")
    for frame, n in own.most_common(args.top):
        print(f"{n / total:6.1%}  {frame[:140]}")


if __name__ == "__main__":
    main()
