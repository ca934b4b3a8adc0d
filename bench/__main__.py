"""``python -m bench``: publish a purchase workload once, then time each way of reading it.

Stages, in order, each in a fresh consumer group on the same topic: raw aiokafka,
a bare Faust agent, the full ltvcac worker. Prints a table and writes
``bench/results/latest.json`` and ``latest.md``. Everything started here (broker,
Redis, child processes) is stopped on success, failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bench import report as reporting
from bench.baselines import consume_raw, run_bare_faust
from bench.common import RESULTS_DIR, BenchError, StageResult, run_async
from bench.pipeline import PipelineOptions, run_pipeline
from bench.workload import generate, publish
from schemas.topics import PURCHASES
from stream.config import Settings
from stream.devstack import DevStack, DevStackError, StackEndpoints
from stream.kafka_admin import ensure_topics

log = logging.getLogger("bench")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="purchases to publish")
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every topic")
    parser.add_argument("--seed", type=int, default=1, help="seed of the workload generator")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds any single wait may take"
    )
    parser.add_argument(
        "--poll-interval", type=float, default=0.5, help="seconds between /metrics scrapes"
    )
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=3.0,
        help="internal counts unchanged this long = pipeline drained",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--keep-logs", action="store_true", help="keep broker/worker logs")
    args = parser.parse_args(argv)
    if args.events < 1 or args.partitions < 1:
        parser.error("--events and --partitions must be at least 1")
    return args


def _record(report: reporting.Report, stage: StageResult) -> None:
    report.stages.append(stage)
    first = "" if stage.first_after is None else f" first_event_after={stage.first_after:.2f}s"
    log.info("%s: %.0f events/s (%.3fs)%s", stage.name, stage.rate, stage.seconds, first)


def measure(args: argparse.Namespace, workdir: Path) -> reporting.Report:
    """One full run against a fresh embedded stack."""
    log.info("generating %d purchases", args.events)
    workload = generate(args.events, args.seed)
    redis_url = os.environ.get("LTVCAC_REDIS_URL") or os.environ.get("REDIS_URL")
    with DevStack(redis_url=redis_url, workdir=workdir / "stack") as endpoints:
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        topic = prefix + PURCHASES.name
        report = reporting.Report(config=_config(args, workload.describe(), endpoints, redis_url))
        settings = Settings(
            kafka_bootstrap_servers=endpoints.kafka_bootstrap,
            topic_prefix=prefix,
            topic_partitions=args.partitions,
        )
        run_async(ensure_topics(settings), args.timeout, "creating topics")
        log.info("publishing to %s (%d partitions)", topic, args.partitions)
        _record(
            report,
            run_async(
                publish(endpoints.kafka_bootstrap, topic, workload),
                args.timeout,
                f"publishing to {topic}",
            ),
        )
        log.info("raw aiokafka consumer")
        _record(
            report,
            run_async(
                consume_raw(endpoints.kafka_bootstrap, topic, args.events),
                args.timeout,
                "raw consumer reading all messages",
            ),
        )
        log.info("bare Faust agent")
        _record(
            report,
            run_bare_faust(
                endpoints.kafka_bootstrap,
                topic,
                args.partitions,
                args.events,
                workdir,
                args.timeout,
            ),
        )
        log.info("ltvcac worker")
        options = PipelineOptions(
            args.partitions, args.timeout, args.poll_interval, args.quiet_seconds
        )
        stage, report.pipeline = run_pipeline(endpoints, prefix, args.events, workdir, options)
        _record(report, stage)
    return report


def _config(
    args: argparse.Namespace,
    workload: dict[str, object],
    endpoints: StackEndpoints,
    redis_url: str | None,
) -> dict[str, object]:
    external = redis_url is not None and endpoints.redis_url == redis_url
    return {
        "events": args.events,
        "partitions": args.partitions,
        "seed": args.seed,
        "poll_interval": args.poll_interval,
        "workload": workload,
        "broker": "embedded tansu (memory storage)",
        "redis": "external" if external else "embedded",
    }


def _print(report: reporting.Report) -> None:
    print()
    print(reporting.text_table(report))
    print()
    for line in reporting.summary_lines(report):
        print(line)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up through the same path as Ctrl-C


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The clients log every connection and rebalance at INFO; only problems matter here.
    for noisy in ("aiokafka", "stream"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _interrupt)
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ltvcac-bench-"))
    keep = args.keep_logs
    try:
        report = measure(args, workdir)
        report.wall_seconds = time.monotonic() - began
        _print(report)
        json_path, md_path = reporting.write(report, args.results_dir)
        print(f"wrote {json_path} and {md_path}")
        return 0
    except KeyboardInterrupt:
        print("interrupted; everything started by the benchmark was stopped", file=sys.stderr)
        return 130
    except (BenchError, DevStackError, RuntimeError, TimeoutError) as error:
        keep = True
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    finally:
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
