"""``ltvcac customer ID``, ``ltvcac channels`` and ``ltvcac top``: readable tables (or JSON)
from the Redis projection, or from a worker's HTTP API with ``--api``.

Exit status: 0 found, 1 not found (or nothing to show), 2 bad arguments or settings,
3 Redis or the API unreachable or refusing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from stream.config import Settings
from stream.serving.reader import LAYOUT_VERSION, TOP_METHODS, ChannelQuery, QueryError, Reader

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
TOKEN_VARIABLE = "LTVCAC_API_TOKEN"  # the bearer token the commands send with --api


class Unreachable(Exception):
    """Redis or the API cannot be asked (the message says why)."""


def add_commands(commands: Any) -> None:
    """The three query commands, on the ``ltvcac`` parser's subcommands."""
    source = argparse.ArgumentParser(add_help=False)
    source.add_argument("--json", action="store_true", help="print JSON instead of a table")
    source.add_argument(
        "--api",
        metavar="URL",
        help=f"ask a worker's HTTP API (e.g. http://127.0.0.1:6066) with the token in "
        f"{TOKEN_VARIABLE}, instead of reading Redis (LTVCAC_REDIS_URL)",
    )
    customer = commands.add_parser("customer", parents=[source], help="one customer's value")
    customer.add_argument("customer_id", metavar="ID")
    channels = commands.add_parser("channels", parents=[source], help="every channel's figures")
    channels.add_argument("--window", help="30d, 90d, lifetime, ... (default 90d)")
    channels.add_argument("--model", help="attribution model (default: the primary one)")
    channels.add_argument("--method", help="LTV method (default historical)")
    top = commands.add_parser("top", parents=[source], help="the customers with the most value")
    top.add_argument("--channel", help="only customers acquired through this channel")
    top.add_argument("-n", type=int, default=10, help="how many (default 10, at most 1000)")
    top.add_argument("--method", default="historical", choices=TOP_METHODS)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValueError as error:
        print(f"ltvcac {args.command}: invalid setting: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        found = _ask_api(args) if args.api else asyncio.run(_ask_redis(args, settings))
    except QueryError as error:
        print(f"ltvcac {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as error:
        print(f"ltvcac {args.command}: {error}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if found is None:
        print(f"ltvcac {args.command}: not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(json.dumps(found, indent=2, sort_keys=True) if args.json else render(args, found))
    return EXIT_OK


async def _ask_redis(args: argparse.Namespace, settings: Settings) -> Any:
    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=5.0)
    reader = Reader(client, settings.redis_key_prefix)
    try:
        layout = await reader.layout_version()
        if layout not in (None, LAYOUT_VERSION):
            raise QueryError(
                f"Redis holds layout version {layout}; this ltvcac reads {LAYOUT_VERSION}"
            )
        if args.command == "customer":
            return await reader.customer(args.customer_id)
        if args.command == "channels":
            query = ChannelQuery.parse(
                list(settings.windows),
                list(settings.ltv_methods),
                settings.attribution_model,
                args.window,
                args.model,
                args.method,
            )
            return {"channels": await reader.channels(query)}
        return {"customers": await reader.top(args.channel, args.n, args.method)}
    except (RedisError, OSError) as error:
        raise Unreachable(f"cannot read Redis at {settings.redis_url}: {error}") from None
    finally:
        await client.aclose()


def _ask_api(args: argparse.Namespace) -> Any:
    if args.command == "customer":
        path = f"/v1/customers/{urllib.parse.quote(args.customer_id, safe='')}"
        query: dict[str, Any] = {}
    elif args.command == "channels":
        path, query = "/v1/channels", {"window": args.window, "model": args.model}
        query["method"] = args.method
    else:
        path, query = "/v1/top", {"channel": args.channel, "limit": args.n, "method": args.method}
    given = {k: v for k, v in query.items() if v is not None}
    url = args.api.rstrip("/") + path + (f"?{urllib.parse.urlencode(given)}" if given else "")
    request = urllib.request.Request(url)
    if token := os.environ.get(TOKEN_VARIABLE):
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        message = _error_message(error)
        if error.code == 404:
            return None
        if error.code == 400:
            raise QueryError(message) from None
        raise Unreachable(f"{url} answered {error.code}: {message}") from None
    except (urllib.error.URLError, OSError) as error:
        raise Unreachable(f"cannot reach {url}: {error}") from None


def _error_message(error: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(error.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(error.reason)


def render(args: argparse.Namespace, found: dict[str, Any]) -> str:
    """A readable table: undefined figures as a dash."""
    if args.command == "customer":
        fields = [(key, _cell(value)) for key, value in found.items() if key != "predictive"]
        fields += [(f"predicted {k}", _cell(v)) for k, v in found.get("predictive", {}).items()]
        return _table(["field", "value"], fields)
    if args.command == "channels":
        columns = ["channel", "spend", "new customers", "CAC", "LTV", "LTV:CAC", "payback"]
        channels = [
            (
                c["channel"],
                _cell(c["spend"]),
                _cell(c["new_customers"]),
                _cell(c["cac"]["fully_loaded"]),
                _cell(c["ltv"]),
                _cell(c["ltv_cac"]),
                _cell(c["payback_months"]),
            )
            for c in found["channels"]
        ]
        return _table(columns, channels)
    ranked = [
        (str(rank), c["customer_id"], c["value"]) for rank, c in enumerate(found["customers"], 1)
    ]
    return _table(["#", "customer", "value"], ranked)


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _table(columns: list[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(col)] + [len(row[i]) for row in rows]) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
