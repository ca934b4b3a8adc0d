"""The demo shop of docker compose (profile ``demo``): a history, then live traffic.

1. The simulated shop of ``ltvcac dev`` (`stream.demo.demo_events`), four of its
   branches merged (about 230 events a day), over the last ``--days`` days, is published
   with ``ltvcac replay --strict`` (the workers must have created the topics, and run with
   a lateness covering the history: see the README, "Docker compose").
2. Then the same shop goes on: each next event is published with ``ltvcac replay`` when
   its time comes (about ten an hour), so the event-time watermark keeps up with the
   clock.

Kafka settings and the topic prefix are the worker's ``LTVCAC_*`` variables. ``--print``
writes the history to standard output instead and publishes nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import heapq
import itertools
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from types import FrameType

from stream.demo import DEMO_SEED, demo_events

BRANCHES = 4  # shops merged, each with its own seed (and so its own ids)
FUTURE_DAYS = 10 * 365
MAX_SLEEP_SECONDS = 60.0


def _line(event: dict[str, str | int]) -> str:
    return json.dumps(event, separators=(",", ":"))


def _time(event: dict[str, str | int]) -> dt.datetime:
    return dt.datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))


def split(days: int, now: dt.datetime) -> tuple[list[str], Iterator[dict[str, str | int]]]:
    """The history up to ``now`` as lines, and the events after it, in event-time order."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days)
    shops = [
        (event for _, _, event in demo_events(DEMO_SEED + branch, start, days + FUTURE_DAYS))
        for branch in range(BRANCHES)
    ]
    events = heapq.merge(*shops, key=lambda event: str(event["occurred_at"]))
    history = []
    for event in events:
        if _time(event) > now:
            return history, itertools.chain([event], events)
        history.append(_line(event))
    return history, iter(())


def replay(lines: list[str], strict: bool) -> None:
    """Publish ``lines`` with ``ltvcac replay``; exit with its status if it fails."""
    argv = ["ltvcac", "replay", *(["--strict"] if strict else []), "-"]
    result = subprocess.run(argv, input="\n".join(lines) + "\n", text=True, check=False)
    if result.returncode != 0:
        sys.exit(result.returncode)


def live(events: Iterator[dict[str, str | int]]) -> None:
    for event in events:
        while (wait := (_time(event) - dt.datetime.now(dt.UTC)).total_seconds()) > 0:
            time.sleep(min(wait, MAX_SLEEP_SECONDS))  # the event's time has not come yet
        replay([_line(event)], strict=False)


def _stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)  # also as PID 1 in a container, where SIGTERM has no default action


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=180, help="days of history (default 180)")
    parser.add_argument("--print", action="store_true", help="print the history, publish nothing")
    parser.add_argument("--history-only", action="store_true", help="stop after the history")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _stop)
    history, future = split(args.days, dt.datetime.now(dt.UTC))
    if args.print:
        sys.stdout.write("".join(f"{line}\n" for line in history))
        return
    print(f"demo shop: publishing {len(history)} events of {args.days} days", flush=True)
    replay(history, strict=True)
    if not args.history_only:
        print("demo shop: history published; live traffic follows", flush=True)
        live(future)


if __name__ == "__main__":
    main()
