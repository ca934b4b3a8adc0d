"""A minimal Faust worker that only counts messages: the Faust baseline.

Run by ``bench.baselines`` as ``python -m bench.bare_faust ...`` in its own process,
like a real worker. When the N-th message arrives it writes the timings as JSON to
``--result`` and stops itself with SIGTERM (Faust's own clean shutdown path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import faust
import uvloop

from bench.common import running_loop_name


class Counter:
    """Counts messages; records wall-clock times of the first and the N-th."""

    def __init__(self, target: int, result_path: Path) -> None:
        self.target = target
        self.result_path = result_path
        self.count = 0
        self.first_at: float | None = None
        self.first_mono = 0.0

    def tick(self) -> None:
        if self.first_at is None:
            self.first_at = time.time()
            self.first_mono = time.monotonic()
        self.count += 1
        if self.count == self.target:
            self._finish()

    def _finish(self) -> None:
        seconds = time.monotonic() - self.first_mono
        result = {
            "events": self.count,
            "seconds": seconds,
            "first_at": self.first_at,
            "event_loop": running_loop_name(),
        }
        # Write then rename, so the parent never reads half a file.
        partial = self.result_path.with_suffix(".partial")
        partial.write_text(json.dumps(result))
        partial.replace(self.result_path)
        os.kill(os.getpid(), signal.SIGTERM)


def build_app(args: argparse.Namespace, counter: Counter) -> faust.App:
    app = faust.App(
        args.app_id,
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=args.session_timeout,
        broker_heartbeat_interval=min(3.0, args.session_timeout / 3),
        table_standby_replicas=0,
        autodiscover=False,
    )
    topics = app.topic(
        *args.topic, key_serializer="raw", value_serializer="raw", partitions=args.partitions
    )

    @app.agent(topics)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for _ in stream:
            counter.tick()

    return app


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_faust", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument(
        "--topic", action="append", required=True, help="a topic to read; repeat for several"
    )
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--session-timeout", type=float, default=10.0)
    parser.add_argument(
        "--event-loop", choices=("uvloop", "asyncio"), default="uvloop", help="as the worker's"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.event_loop == "uvloop":
        # Before the app exists: mode keeps the first loop a thread asks for.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    app = build_app(args, Counter(args.events, args.result))
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
