"""The ``ltvcac`` command: ``worker`` runs the service, ``dev`` the whole demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

from stream.config import Settings
from stream.errors import ConfigurationError, LtvCacError


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        sys.exit(f"ltvcac: invalid setting: {error}")


def run_worker(settings: Settings) -> None:
    """Run a worker in the foreground until SIGINT/SIGTERM."""
    from faust import Worker

    from stream.app import create_runtime
    from stream.kafka_admin import ensure_topics

    try:
        asyncio.run(ensure_topics(settings))
    except ConfigurationError as error:
        sys.exit(f"ltvcac: {error}")
    runtime = create_runtime(settings)
    worker = Worker(runtime.app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()


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


if __name__ == "__main__":
    main()
