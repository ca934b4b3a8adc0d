"""The ``ltvcac`` command: ``worker`` runs the service, ``dev`` the demo, ``replay`` a backfill;
``customer``, ``channels`` and ``top`` read what it computed."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from pathlib import Path
from typing import Any

import uvloop
from pydantic import ValidationError

from stream import replay
from stream.config import Settings
from stream.domain.fx import RateBook, RatesFileError, parse_rates_file
from stream.errors import ConfigurationError, LtvCacError
from stream.kafka_admin import client_options
from stream.serving import query_cli


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        sys.exit(f"ltvcac: invalid setting: {error}")


def read_rates_file(settings: Settings) -> RateBook:
    """The rates of ``LTVCAC_FX_RATES_FILE`` (none when it is unset).

    Raises `RatesFileError` when the file cannot be read or a line is bad.
    """
    path = settings.fx_rates_file
    if path is None:
        return {}
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is fine
    except OSError as error:
        raise RatesFileError(f"cannot read {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise RatesFileError(f"{path}: not UTF-8 text (bad byte at offset {error.start})") from None
    return parse_rates_file(text, path, settings.reporting_currency)


def run_worker(settings: Settings) -> None:
    """Run a worker in the foreground until SIGINT/SIGTERM.

    First it reads the rates file: a bad one stops it at once (status 1, as a bad
    setting). Then it waits for Kafka (with backoff) and checks the topics; SIGINT/SIGTERM
    during that wait ends it at once, with status 0. Then the Faust worker runs, with a
    watch that reports Kafka outages (`stream.kafka_admin.KafkaWatch`).
    """
    import signal

    from stream.app import ServiceWorker, create_runtime
    from stream.kafka_admin import KafkaWatch, ensure_topics, tolerate_cancelled_fetches

    async def topics_unless_stopped() -> str | None:
        """None once the topics are ready; the signal's name if one came first."""
        loop = asyncio.get_running_loop()
        main = asyncio.current_task()
        received: list[str] = []

        def stop(signum: signal.Signals) -> None:
            received.append(signum.name)
            if main is not None:
                main.cancel()

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop, signum)
        try:
            await ensure_topics(settings)
        except asyncio.CancelledError:
            if received:
                return received[0]
            raise
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return None

    if settings.event_loop == "uvloop":
        # Before anything asks for a loop: mode keeps the first loop a thread asks for
        # (mode/utils/loops.py), and creating the app asks, so a policy set after it
        # would leave the worker on Python's own loop.
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    try:
        fx_file = read_rates_file(settings)
    except RatesFileError as error:
        sys.exit(f"ltvcac: invalid rates file (LTVCAC_FX_RATES_FILE): {error}")
    try:
        stopped_by = asyncio.run(topics_unless_stopped())
    except ConfigurationError as error:
        sys.exit(f"ltvcac: {error}")
    if stopped_by is not None:
        logging.getLogger("stream.cli").info(
            "worker stopped before kafka was reached signal=%s", stopped_by
        )
        return
    tolerate_cancelled_fetches()
    runtime = create_runtime(settings, fx_file)
    watch = runtime.kafka_watch = KafkaWatch(settings)

    class _Worker(ServiceWorker):
        async def on_stop(self) -> None:  # before the app and the watch stop
            watch.worker_stopping()
            await super().on_stop()

    worker = _Worker(runtime.app, watch, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()


def run_replay(args: argparse.Namespace) -> int:
    """``ltvcac replay``: validate every line, then publish the good ones in file order."""
    if not args.verbose:  # the client logs each failed attempt; replay reports the outcome
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"ltvcac replay: invalid setting: {error}", file=sys.stderr)
        return replay.EXIT_USAGE
    source = "<stdin>" if args.file == "-" else args.file
    try:
        with (
            open(sys.stdin.fileno(), "rb", closefd=False)
            if args.file == "-"
            else open(args.file, "rb")
        ) as lines:
            plan = replay.build_plan(
                lines,
                topic_prefix=settings.topic_prefix,
                reporting_currency=settings.reporting_currency,
                strict=args.strict,
            )
    except OSError as error:
        print(f"ltvcac replay: cannot read {source}: {error.strerror}", file=sys.stderr)
        return replay.EXIT_USAGE
    except KeyboardInterrupt:
        print(
            f"ltvcac replay: interrupted checking {source}; nothing was published", file=sys.stderr
        )
        return replay.EXIT_INTERRUPTED
    if args.strict and not plan.ok:
        _print_lines([error.render(source) for error in plan.errors])
        _print_lines([replay.strict_stop(source, plan)])
        return replay.EXIT_BAD_LINES
    if args.dry_run:
        _print_lines([*replay.error_lines(source, plan), replay.dry_run_summary(source, plan)])
        return replay.EXIT_OK if plan.ok else replay.EXIT_BAD_LINES
    delivery = replay.Delivery(total=len(plan.records))
    try:
        if plan.records:
            asyncio.run(
                publish_records(
                    settings,
                    plan.records,
                    delivery,
                    connect_timeout=args.connect_timeout,
                    delivery_timeout=args.delivery_timeout,
                )
            )
    except replay.ReplayError as error:
        _print_lines([*replay.error_lines(source, plan), f"ltvcac replay: {error}"])
        return replay.EXIT_KAFKA
    except KeyboardInterrupt:
        _print_lines([f"ltvcac replay: {replay.interrupted(delivery)}"])
        return replay.EXIT_INTERRUPTED
    _print_lines([*replay.error_lines(source, plan), replay.summary(source, plan, delivery)])
    return replay.EXIT_OK if plan.ok else replay.EXIT_BAD_LINES


_REPLAY_CHUNK = 5000  # records in flight at once; a failure stops after the current chunk


async def publish_records(
    settings: Settings,
    records: list[replay.Record],
    delivery: replay.Delivery,
    *,
    connect_timeout: float,
    delivery_timeout: float,
) -> None:
    """Publish ``records`` in order with acks=all, as a shop's producer would.

    Counts acknowledged records in ``delivery``. Raises `replay.BrokerUnavailable` when
    Kafka cannot be reached within ``connect_timeout`` or a topic is missing (nothing
    published), `replay.PublishFailed` when Kafka fails or acknowledges nothing for
    ``delivery_timeout`` seconds part-way.
    """
    from aiokafka.errors import KafkaError

    producer = await _start_producer(settings, connect_timeout)
    try:
        try:
            cluster = await asyncio.wait_for(producer.client.fetch_all_metadata(), connect_timeout)
        except (KafkaError, TimeoutError) as error:
            raise replay.BrokerUnavailable(
                f"no topic list from Kafka at {settings.kafka_bootstrap_servers}: "
                f"{_describe(error)}; nothing was published"
            ) from None
        missing = replay.missing_topics(records, cluster.topics())
        if missing:
            raise replay.BrokerUnavailable(
                replay.missing_topics_message(missing, settings.topic_prefix)
            )
        for start in range(0, len(records), _REPLAY_CHUNK):
            await _send_chunk(
                producer, records[start : start + _REPLAY_CHUNK], delivery, delivery_timeout
            )
    finally:
        with contextlib.suppress(Exception):  # pending batches are reported already
            await asyncio.wait_for(producer.stop(), 5.0)


async def _send_chunk(
    producer: Any, chunk: list[replay.Record], delivery: replay.Delivery, timeout: float
) -> None:
    """Send ``chunk`` and wait for every acknowledgement while Kafka makes progress."""
    from aiokafka.errors import KafkaError

    futures: list[asyncio.Future[Any]] = []
    send_failure: str | None = None
    for record in chunk:
        try:
            send = producer.send(record.topic, value=record.value, key=record.key)
            futures.append(await asyncio.wait_for(send, timeout))
        except (KafkaError, TimeoutError) as error:
            send_failure = _describe(error)
            break
    pending = set(futures)
    while pending:
        done, pending = await asyncio.wait(
            pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        delivery.published += sum(1 for f in done if f.exception() is None)
        if not done:
            break  # nothing acknowledged for ``timeout`` seconds
    problems = [
        (record, _describe(f.exception()) if f.done() else f"no answer within {timeout:g} s")
        for record, f in zip(chunk, futures, strict=False)
        if not f.done() or f.exception() is not None
    ]
    if send_failure is not None:
        problems.append((chunk[len(futures)], send_failure))
    if problems:
        record, problem = problems[0]  # the first in file order
        raise replay.PublishFailed(
            replay.failed_midway(delivery, f"line {record.line} to {record.topic}: {problem}"),
            delivery.published,
        )


async def _start_producer(settings: Settings, timeout: float) -> Any:
    """A started producer with acks=all, idempotent when the broker supports it."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    idempotent, backoff = True, 0.25
    while True:
        producer = AIOKafkaProducer(
            **client_options(settings), acks="all", enable_idempotence=idempotent
        )
        try:
            await asyncio.wait_for(producer.start(), max(deadline - loop.time(), 0.01))
            return producer
        except (KafkaConnectionError, OSError, TimeoutError) as error:
            await producer.stop()
            if loop.time() >= deadline:
                raise replay.BrokerUnavailable(
                    f"Kafka at {settings.kafka_bootstrap_servers} not reachable within "
                    f"{timeout:g} s ({_describe(error)}); nothing was published"
                ) from None
            await asyncio.sleep(min(backoff, max(deadline - loop.time(), 0.0)))  # retry backoff
            backoff = min(backoff * 2, 2.0)
        except KafkaError as error:
            await producer.stop()
            if not idempotent:
                raise replay.BrokerUnavailable(
                    f"Kafka at {settings.kafka_bootstrap_servers} refused the producer: "
                    f"{_describe(error)}; nothing was published"
                ) from None
            # e.g. the embedded Tansu broker, or no IdempotentWrite permission
            print(
                f"ltvcac replay: note: Kafka refused an idempotent producer ({_describe(error)}); "
                "publishing with acks=all only: a retried send may arrive twice, which the "
                "service de-duplicates",
                file=sys.stderr,
            )
            idempotent = False


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    name, text = type(error).__name__, str(error)
    if not text:
        return name
    return text if text.startswith(name) else f"{name}: {text}"  # Kafka errors name themselves


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ltvcac", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run a stream worker (settings from LTVCAC_* variables)")
    dev = commands.add_parser(
        "dev", help="embedded broker + Redis + worker + demo traffic, with a live table"
    )
    dev.add_argument("--rate", type=float, default=200.0, help="demo events per second")
    dev.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds of traffic"
    )
    replay_cmd = commands.add_parser(
        "replay",
        help="publish events from a JSON Lines file to the source topics (backfill)",
        description="Validate every line of FILE with the worker's rules, then publish the "
        "good lines in file order to the source topics (settings from LTVCAC_* variables). "
        "Exit status: 0 all published, 1 bad lines (skipped, or nothing published with "
        "--strict), 2 usage or unreadable file, 3 Kafka unreachable, topic missing or "
        "failed part-way.",
    )
    replay_cmd.add_argument(
        "file", metavar="FILE", help="JSON Lines, one event per line as on the wire; - for stdin"
    )
    replay_cmd.add_argument(
        "--strict", action="store_true", help="stop at the first bad line and publish nothing"
    )
    replay_cmd.add_argument(
        "--dry-run", action="store_true", help="only validate the file; connect to nothing"
    )
    replay_cmd.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="give up when Kafka is not reachable within this time (default 30)",
    )
    replay_cmd.add_argument(
        "--delivery-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="give up when Kafka acknowledges nothing for this long while publishing (default 60)",
    )
    replay_cmd.add_argument(
        "-v", "--verbose", action="store_true", help="show the Kafka client log"
    )
    query_cli.add_commands(commands)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if args.command == "worker":
        run_worker(_settings())
    elif args.command == "dev":
        from stream.demo import run_dev

        try:
            run_dev(rate=args.rate, duration=args.duration)
        except LtvCacError as error:
            sys.exit(f"ltvcac dev: {error}")
    elif args.command == "replay":
        sys.exit(run_replay(args))
    else:
        sys.exit(query_cli.run(args))


if __name__ == "__main__":
    main()
