"""Summarize py-spy raw profiles (``BENCH_PROFILE=dir make bench``): hottest frames.

``python bench/profile_summary.py dir/live-postgresql-ab12.txt [--filter text]``
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--filter", default="", help="only stacks through a frame containing this")
    args = ap.parse_args()
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
