"""``python -m bench``: publish a shop's event mix once, then time each way of reading it.

Parts (``--only``): ``throughput`` reads the source topics, each stage in a fresh
consumer group: raw aiokafka, a bare Faust agent, the full ltvcac worker, in turn, for
``--rounds`` rounds; the table shows each stage's median round.
``scaling`` reads them with one and with two ltvcac workers of one app id. ``latency``
publishes at fixed rates and times each probe from its publish to the gauge that shows
it. ``state`` measures the tables' bytes per customer and their recovery from the
changelog, with the memory store and with RocksDB. Prints the
tables and writes ``bench/results/latest.json`` and ``latest.md``. Everything started
here (broker, Redis, child processes) is stopped on success, failure, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from bench import latency, scaling, state
from bench import report as reporting
from bench.baselines import consume_raw, run_bare_faust
from bench.common import (
    RESULTS_DIR,
    BenchError,
    Section,
    StageResult,
    run_async,
    worker_event_loop,
)
from bench.pipeline import PipelineOptions, run_pipeline
from bench.workload import DAY, Workload, generate, publish
from stream.config import Settings
from stream.devstack import DevStack, DevStackError, StackEndpoints
from stream.kafka_admin import ensure_topics

log = logging.getLogger("bench")

SPAN_DAYS = 90
# A section: measured against the running stack, f(endpoints, args, workdir).
SectionFn = Callable[[StackEndpoints, argparse.Namespace, Path], list[Section]]
PARTS = ("throughput", "scaling", "latency", "state")
OUTCOMES = ("applied", "duplicate", "redelivered", "rejected")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="source events to publish")
    parser.add_argument(
        "--customers",
        type=int,
        default=3_000,
        help="customers in the mix; orders beyond one per customer are repeat orders with a"
        " long tail (default: 3,000, so that about a fifth of 20,000 events' orders repeat)",
    )
    parser.add_argument("--partitions", type=int, default=4, help="partitions of every topic")
    parser.add_argument("--seed", type=int, default=1, help="seed of the workload generator")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of the throughput part; a stage's median round is reported",
    )
    parser.add_argument(
        "--only",
        type=_parts,
        default=PARTS,
        help=f"comma-separated parts to run, of {','.join(PARTS)} (default: all)",
    )
    parser.add_argument(
        "--latency-rates",
        type=_rates,
        default=(500, 1000, 2000),
        help="input rates of the latency steps, events/s (default: 500,1000,2000)",
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=20.0, help="seconds of each latency step"
    )
    parser.add_argument(
        "--state-customers",
        type=int,
        default=1_000_000,
        help="customers in the tables of the state and recovery part (default: 1,000,000)",
    )
    parser.add_argument(
        "--allowed-lateness",
        type=int,
        default=(SPAN_DAYS + 1) * DAY,
        help="LTVCAC_ALLOWED_LATENESS_SECONDS of the workers (default: the workload's span"
        " and a day: a backlog is read topic by topic, not in event-time order)",
    )
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
    if args.events < 10 or min(args.customers, args.partitions, args.rounds) < 1:
        parser.error(
            "--events must be at least 10, --customers, --partitions and --rounds at least 1"
        )
    return args


def _rates(value: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(rate) for rate in value.split(","))
    except ValueError:
        message = f"rates are whole events/s, e.g. 500,1000; got {value!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not rates or min(rates) < 1:
        raise argparse.ArgumentTypeError(f"rates must be at least 1 event/s; got {value!r}")
    return rates


def _parts(value: str) -> tuple[str, ...]:
    parts = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [part for part in parts if part not in PARTS]
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"parts are {','.join(PARTS)}; got {value!r}")
    return parts


@dataclass(frozen=True)
class Published:
    """The workload as published under a topic prefix, and the events on each topic."""

    workload: Workload
    prefix: str
    bootstrap: str
    args: argparse.Namespace

    @property
    def expected(self) -> dict[str, int]:
        return self.workload.per_topic()

    def topics(self) -> list[str]:
        return [self.prefix + topic for topic in self.expected]

    def fresh_copy(self) -> str:
        """The same messages published again under a new prefix, which is returned.

        Each pipeline run needs its own copy: the internal topics are named by the
        prefix, not by the app id, so a second app on the same prefix would also read
        the conversions and deltas the first one sent.
        """
        copy, _ = _publish_under(self.workload, self.bootstrap, self.args)
        return copy.prefix


def _record(report: reporting.Report, stage: StageResult) -> None:
    report.stages.append(stage)
    first = "" if stage.first_after is None else f" first_event_after={stage.first_after:.2f}s"
    log.info("%s: %.0f events/s (%.3fs)%s", stage.name, stage.rate, stage.seconds, first)


def measure(args: argparse.Namespace, workdir: Path) -> reporting.Report:
    """One full run against a fresh embedded stack: the parts of ``--only``, in order."""
    redis_url = os.environ.get("LTVCAC_REDIS_URL") or os.environ.get("REDIS_URL")
    with DevStack(redis_url=redis_url, workdir=workdir / "stack") as endpoints:
        report = reporting.Report(config=_config(args, endpoints, redis_url))
        published = None
        if {"throughput", "scaling"} & set(args.only):
            published = _publish(args, endpoints, report)
        one_worker = None
        if "throughput" in args.only:
            assert published is not None
            one_worker = _throughput(published, endpoints, args, workdir, report)
        sections: dict[str, SectionFn] = {
            "scaling": _scaling(published, one_worker, args),
            "latency": lambda endpoints, args, workdir: latency.measure(
                endpoints,
                workdir,
                list(args.latency_rates),
                args.latency_seconds,
                args.timeout,
                args.results_dir,
            ),
            "state": lambda endpoints, args, workdir: state.measure(
                endpoints, workdir, args.state_customers, max(args.timeout, 900.0)
            ),
        }
        for name in args.only:
            if name in sections:
                log.info("section %s", name)
                report.sections.extend(sections[name](endpoints, args, workdir))
            elif name != "throughput":
                log.warning("no section %s in this version of the benchmark", name)
    return report


def _pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    return PipelineOptions(
        args.partitions,
        args.timeout,
        args.poll_interval,
        args.quiet_seconds,
        allowed_lateness_seconds=args.allowed_lateness,
    )


def _publish(
    args: argparse.Namespace, endpoints: StackEndpoints, report: reporting.Report
) -> Published:
    """Generate the mix and publish it once (the baselines read this copy)."""
    log.info("generating %d events of %d customers", args.events, args.customers)
    workload = generate(args.events, args.customers, args.seed, SPAN_DAYS)
    report.config["workload"] = workload.describe()
    published, stage = _publish_under(workload, endpoints.kafka_bootstrap, args)
    _record(report, stage)
    return published


def _publish_under(
    workload: Workload, bootstrap: str, args: argparse.Namespace
) -> tuple[Published, StageResult]:
    """Create every topic under a fresh prefix and publish ``workload`` to it."""
    published = Published(workload, f"bench-{uuid.uuid4().hex[:8]}.", bootstrap, args)
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=published.prefix,
        topic_partitions=args.partitions,
    )
    run_async(ensure_topics(settings), args.timeout, "creating topics")
    log.info("publishing %s under %s", published.expected, published.prefix)
    stage = run_async(
        publish(bootstrap, published.prefix, workload), args.timeout, "publishing the workload"
    )
    return published, stage


def _throughput(
    published: Published,
    endpoints: StackEndpoints,
    args: argparse.Namespace,
    workdir: Path,
    report: reporting.Report,
) -> tuple[StageResult, dict[str, Any]]:
    """The raw consumer, the bare Faust agent and one ltvcac worker on every source topic,
    in turn for each round: one run of a stage varies by more than the ratios it is read
    for, and taking them in turn gives drift on the host the same share of each."""
    rounds: list[Round] = []
    for number in range(1, args.rounds + 1):
        log.info("throughput round %d of %d", number, args.rounds)
        rounds.append(_round(published, endpoints, args, workdir))
    raw, bare, pipeline = (median([r[i] for r in rounds], rate) for i in range(3))
    for stage in (raw, bare, pipeline):
        _record(report, stage)
    drain = next(r[3] for r in rounds if r[2] is pipeline)
    report.pipeline = drain
    report.sections.append(_outcomes_section(published, pipeline, drain))
    report.sections.append(_rounds_section(rounds))
    return pipeline, drain


# One throughput round: the raw consumer, the bare agent, the worker and its drain.
Round = tuple[StageResult, StageResult, StageResult, dict[str, Any]]
T = TypeVar("T")


def rate(stage: StageResult) -> float:
    return stage.rate


def _round(
    published: Published, endpoints: StackEndpoints, args: argparse.Namespace, workdir: Path
) -> Round:
    events = len(published.workload.messages)
    log.info("raw aiokafka consumer")
    raw = run_async(
        consume_raw(endpoints.kafka_bootstrap, published.topics(), events),
        args.timeout,
        "raw consumer reading all messages",
        worker_event_loop(),
    )
    log.info("bare Faust agent")
    bare = run_bare_faust(
        endpoints.kafka_bootstrap,
        published.topics(),
        args.partitions,
        events,
        workdir,
        args.timeout,
        worker_event_loop(),
    )
    log.info("ltvcac worker")
    prefix = published.fresh_copy()
    pipeline, drain = run_pipeline(
        endpoints, prefix, published.expected, workdir, _pipeline_options(args)
    )
    for stage in (raw, bare, pipeline):
        log.info("%s: %.0f events/s", stage.name, stage.rate)
    return raw, bare, pipeline, drain


def median(items: list[T], key: Callable[[T], float]) -> T:
    """The item of the median key (of an even number, the lower of the middle two)."""
    return sorted(items, key=key)[(len(items) - 1) // 2]


def _rounds_section(rounds: list[Round]) -> Section:
    """Every round's rates, and the worker's ratio to the bare agent of its own round."""
    ratios = [pipeline.rate / bare.rate for _, bare, pipeline, _ in rounds]
    rows = [
        [str(number), *(f"{stage.rate:,.0f}" for stage in stages), f"{ratio:.2f}x"]
        for number, ((*stages, _), ratio) in enumerate(zip(rounds, ratios, strict=True), 1)
    ]
    return Section(
        title="Throughput by round",
        columns=["round", "raw aiokafka", "bare Faust agent", "ltvcac worker", "vs bare Faust"],
        rows=rows,
        notes=[
            f"the table above shows each stage's median round; the worker's ratio to the"
            f" bare agent of the same round is {median(ratios, float):.2f}x at the"
            f" median, {min(ratios):.2f}x to {max(ratios):.2f}x over {len(rounds)} rounds",
        ],
        data={
            "events_per_second": [
                {"raw": raw.rate, "bare_faust": bare.rate, "pipeline": pipeline.rate}
                for raw, bare, pipeline, _ in rounds
            ],
            "pipeline_vs_bare": [round(ratio, 3) for ratio in ratios],
        },
    )


def _outcomes_section(published: Published, stage: StageResult, drain: dict[str, Any]) -> Section:
    """Outcomes of every source topic, then of the internal topics the worker fed itself."""
    internal = drain["internal_topics"]
    inputs = [
        (topic, published.expected[topic], by) for topic, by in stage.details["outcomes"].items()
    ] + [
        (topic, internal[topic]["produced"], by)
        for topic, by in stage.details["internal_outcomes"].items()
    ]
    rows = [
        [topic, f"{messages:,}", *(f"{by.get(o, 0):,}" for o in OUTCOMES)]
        for topic, messages, by in inputs
    ]
    return Section(
        title="Full pipeline: outcomes per topic",
        columns=["topic", "messages", *OUTCOMES],
        rows=rows,
        notes=[
            "ltvcac_events_total{topic,outcome} once the internal topics settled; messages:"
            " published (source topics) or on the topic (internal, ltvcac-*); a rejected"
            " input (a dead letter) fails the run",
        ],
        data={
            "published": published.expected,
            "outcomes": stage.details["outcomes"],
            "internal_outcomes": stage.details["internal_outcomes"],
        },
    )


def _scaling(
    published: Published | None,
    one_worker: tuple[StageResult, dict[str, Any]] | None,
    args: argparse.Namespace,
) -> SectionFn:
    if published is None:  # not asked for: the workload was not published
        return lambda *_: []
    return functools.partial(
        scaling.measure,
        published.fresh_copy,
        published.expected,
        _pipeline_options(args),
        one_worker,
    )


def _config(
    args: argparse.Namespace, endpoints: StackEndpoints, redis_url: str | None
) -> dict[str, Any]:
    external = redis_url is not None and endpoints.redis_url == redis_url
    return {
        "events": args.events,
        "customers": args.customers,
        "partitions": args.partitions,
        "seed": args.seed,
        "only": list(args.only),
        "poll_interval": args.poll_interval,
        "allowed_lateness_seconds": args.allowed_lateness,
        "broker": "embedded tansu (memory storage)",
        "redis": "external" if external else "embedded",
        "event_loop": worker_event_loop(),  # of the workers and both baselines
    }


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
        print()
        print(reporting.text(report))
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
