"""``ltvcac replay`` run as a shop's engineer runs it: the real CLI in its own process,
publishing to the embedded broker; what lands on the topics is read back with a Kafka
consumer, and a worker turns a replayed history into hand-computed figures."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream.config import Settings
from stream.devstack import StackEndpoints, free_port
from stream.domain.attribution import MODELS
from stream.kafka_admin import ensure_topics
from stream.worker_process import label_set
from tests.integration.conftest import Deployment, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
LAST = "last_touch"

ROOT = Path(__file__).resolve().parents[2]
SOURCE_TOPICS = ("purchases", "ad-clicks", "ad-spend", "referrals", "identities")
PARTITIONS = 2


def event(event_type: str, event_id: str, at: str, **fields: Any) -> str:
    head = {"type": event_type, "event_id": event_id, "occurred_at": at, "schema_version": 1}
    return json.dumps({**head, **fields}, separators=(",", ":"))  # not what json.dumps gives


# (text, topic, key) per line; a bad line has no topic and the field its error names
MIXED: list[tuple[str, str | None, str | None]] = [
    (  # 1
        event(
            "purchase",
            "p1",
            "2026-03-01T10:00:00Z",
            customer_id="c1",
            order_id="o1",
            amount="100.00",
            currency="USD",
            visitor_id="v1",
        ),
        "purchases",
        "c1",
    ),
    ("", None, None),  # 2: blank
    (  # 3
        event(
            "ad_click",
            "k1",
            "2026-03-01T09:00:00Z",
            visitor_id="v1",
            channel="search",
            cost="2.50",
            currency="USD",
        ),
        "ad-clicks",
        "v1",
    ),
    (  # 4: bad amount
        event(
            "purchase",
            "p2",
            "2026-03-01T11:00:00Z",
            customer_id="c2",
            order_id="o2",
            amount="12.345",
            currency="USD",
        ),
        None,
        "amount",
    ),
    (  # 5
        event(
            "refund",
            "r1",
            "2026-03-02T10:00:00Z",
            customer_id="c1",
            order_id="o1",
            amount="10.00",
            currency="USD",
        ),
        "purchases",
        "c1",
    ),
    ('{"type": "teleport", "event_id": "t1"}', None, "(event)"),  # 6: unknown type
    (  # 7
        event(
            "ad_spend",
            "s1",
            "2026-03-01T00:00:00Z",
            channel="search",
            amount="70.00",
            currency="USD",
            category="media",
            period_start="2026-03-01",
            period_end="2026-03-01",
        ),
        "ad-spend",
        "search",
    ),
    (  # 8
        event(
            "referral",
            "f1",
            "2026-03-01T12:00:00Z",
            referrer_customer_id="c1",
            referred_visitor_id="v4",
            reward_cost="5.00",
            currency="USD",
        ),
        "referrals",
        "v4",
    ),
    ("this is not json", None, "(line)"),  # 9
    (  # 10
        event("identify", "i1", "2026-03-01T13:00:00Z", visitor_id="v4", customer_id="c4"),
        "identities",
        "v4",
    ),
]
BAD = {n: field for n, (_, topic, field) in enumerate(MIXED, start=1) if topic is None and field}
GOOD = [(text, topic, key) for text, topic, key in MIXED if topic is not None and key is not None]


def replay_env(stack: StackEndpoints) -> dict[str, str]:
    return {
        "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
        "LTVCAC_TOPIC_PREFIX": f"r{uuid.uuid4().hex[:8]}.",
        "LTVCAC_TOPIC_PARTITIONS": str(PARTITIONS),
    }


async def create_topics(env: dict[str, str]) -> None:
    """What the first worker start does: every topic, with the configured partitions."""
    await ensure_topics(
        Settings(
            kafka_bootstrap_servers=env["LTVCAC_KAFKA_BOOTSTRAP_SERVERS"],
            topic_prefix=env["LTVCAC_TOPIC_PREFIX"],
            topic_partitions=PARTITIONS,
        )
    )


async def run_replay(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stream.cli", "replay", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


async def topic_contents(env: dict[str, str], topics: tuple[str, ...]) -> dict[str, list[Any]]:
    """Every record of every partition of ``topics`` (prefixed), read to the high watermark."""
    prefix = env["LTVCAC_TOPIC_PREFIX"]
    partitions = [TopicPartition(prefix + t, p) for t in topics for p in range(PARTITIONS)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=env["LTVCAC_KAFKA_BOOTSTRAP_SERVERS"],
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    found: dict[TopicPartition, list[Any]] = {tp: [] for tp in partitions}
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)

        async def at_end() -> bool:
            for tp in partitions:
                highwater = consumer.highwater(tp)
                if highwater is None or await consumer.position(tp) < highwater:
                    return False
            return True

        deadline = asyncio.get_running_loop().time() + 30
        while not await at_end():
            assert asyncio.get_running_loop().time() < deadline, "topics not read to the end"
            for tp, records in (await consumer.getmany(*partitions, timeout_ms=200)).items():
                found[tp].extend(records)
    finally:
        await consumer.stop()
    by_topic: dict[str, list[Any]] = {t: [] for t in topics}
    for tp, records in found.items():
        by_topic[tp.topic.removeprefix(prefix)].append(records)
    return by_topic


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


async def test_default_mode_publishes_the_good_lines_and_names_the_bad_ones(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    env = replay_env(stack)
    await create_topics(env)
    history = write(tmp_path / "history.jsonl", [text for text, _, _ in MIXED])

    result = await run_replay(env, str(history))

    assert result.returncode == 1, result.stderr
    reported = re.findall(rf"^{re.escape(str(history))}:(\d+): (\S+): ", result.stderr, re.M)
    assert reported == [(str(n), field) for n, field in BAD.items()]
    assert result.stderr.splitlines()[-1].endswith(
        "published 6 events ("
        + ", ".join(
            f"{env['LTVCAC_TOPIC_PREFIX']}{t} {n}"
            for t, n in [
                ("ad-clicks", 1),
                ("ad-spend", 1),
                ("identities", 1),
                ("purchases", 2),
                ("referrals", 1),
            ]
        )
        + "), skipped 3 bad lines"
    )
    assert "Traceback" not in result.stderr

    contents = await topic_contents(env, SOURCE_TOPICS)
    for topic in SOURCE_TOPICS:
        expected = [(key.encode(), text.encode()) for text, t, key in GOOD if t == topic]
        on_topic = [(r.key, r.value) for partition in contents[topic] for r in partition]
        assert sorted(on_topic) == sorted(expected), topic
        for partition in contents[topic]:  # each partition in file order
            values = [r.value for r in partition]
            assert values == [v for _, v in expected if v in values]


async def test_strict_mode_stops_at_the_first_bad_line_and_publishes_nothing(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    env = replay_env(stack)
    await create_topics(env)
    history = write(tmp_path / "history.jsonl", [text for text, _, _ in MIXED])

    result = await run_replay(env, "--strict", str(history))

    assert result.returncode == 1, result.stderr
    first, stop = result.stderr.splitlines()  # nothing about the later bad lines
    assert first.startswith(f"{history}:4: amount: ") and "2 decimal places" in first
    assert stop == f"{history}:4: stopped at the first bad line (--strict); nothing was published"
    contents = await topic_contents(env, (*SOURCE_TOPICS, "dead-letters"))
    assert {t: sum(map(len, parts)) for t, parts in contents.items()} == dict.fromkeys(contents, 0)


async def test_kafka_problems_end_with_a_message_and_publish_nothing(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    history = write(tmp_path / "good.jsonl", [text for text, _, _ in GOOD])
    unreachable = {
        **replay_env(stack),
        "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
    }
    down = await run_replay(unreachable, "--connect-timeout", "1", str(history))
    assert down.returncode == 3
    assert "not reachable within 1 s" in down.stderr and "nothing was published" in down.stderr
    assert "Traceback" not in down.stderr

    env = replay_env(stack)  # a prefix whose topics were never created
    missing = await run_replay(env, str(history))
    assert missing.returncode == 3
    prefix = env["LTVCAC_TOPIC_PREFIX"]
    assert f"topics {', '.join(prefix + t for t in sorted(SOURCE_TOPICS))} not found" in (
        missing.stderr
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:  # the broker auto-creates topics on produce; replay must not have produced
        assert [t for t in await admin.list_topics() if t.startswith(prefix)] == []
    finally:
        await admin.close()


async def test_dry_run_reads_stdin_and_connects_to_nothing(stack: StackEndpoints) -> None:
    nowhere = {**replay_env(stack), "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    text = "".join(line + "\n" for line, _, _ in MIXED)

    mixed = await run_replay(nowhere, "--dry-run", "-", stdin=text)
    assert mixed.returncode == 1, mixed.stderr
    assert re.findall(r"^<stdin>:(\d+): (\S+): ", mixed.stderr, re.M) == [
        (str(n), field) for n, field in BAD.items()
    ]
    assert mixed.stderr.splitlines()[-1].startswith("<stdin>: dry run: 6 events would be published")

    good = await run_replay(nowhere, "--dry-run", "-", stdin="".join(t + "\n" for t, _, _ in GOOD))
    assert good.returncode == 0, good.stderr
    assert good.stderr.splitlines()[-1].endswith(", 0 bad lines; nothing was published")


# An all-good history worked out by hand (lateness 1 h: every window holds everything):
# search: click 2.50 (v1) + spend 70.00 -> 72.50; c1 via v1 buys o1 100.00 (cost 40.00
# -> profit 60.00) and o2 50.00 (margin 0.5 -> 25.00); 10.00 of o2 refunded (20% of
# o2's profit: -5.00): revenue 140.00, profit 80.00. direct: c2 buys o3 20.00 at the
# default margin 30% -> 6.00. all: spend 72.50, 2 customers, profit 86.00.
HISTORY = [
    event(
        "ad_spend",
        "s1",
        "2026-03-01T08:00:00Z",
        channel="search",
        amount="70.00",
        currency="USD",
        category="media",
        period_start="2026-03-01",
        period_end="2026-03-01",
    ),
    event(
        "ad_click",
        "k1",
        "2026-03-01T09:00:00Z",
        visitor_id="v1",
        channel="search",
        cost="2.50",
        currency="USD",
    ),
    event(
        "purchase",
        "p1",
        "2026-03-01T10:00:00Z",
        customer_id="c1",
        order_id="o1",
        amount="100.00",
        currency="USD",
        cost_of_goods="40.00",
        visitor_id="v1",
    ),
    event(
        "purchase",
        "p2",
        "2026-03-02T09:00:00Z",
        customer_id="c1",
        order_id="o2",
        amount="50.00",
        currency="USD",
        margin="0.5",
    ),
    event(
        "purchase",
        "p3",
        "2026-03-02T11:00:00Z",
        customer_id="c2",
        order_id="o3",
        amount="20.00",
        currency="USD",
    ),
    event(
        "refund",
        "r1",
        "2026-03-02T12:00:00Z",
        customer_id="c1",
        order_id="o2",
        amount="10.00",
        currency="USD",
    ),
    "",
]


def every_model(weights: dict[str, float]) -> str:
    return json.dumps({model: weights for model in MODELS}, sort_keys=True)


CUSTOMERS = {
    "c1": {
        "revenue": "140.00",
        "gross_profit": "80.00",
        "orders": "2",
        "refunds": "1",
        "first_order_at": "2026-03-01T10:00:00Z",
        "last_order_at": "2026-03-02T09:00:00Z",
        "acquisition_channel": "search",
        "attribution": '{"search": 1.0}',
        "attribution_models": every_model({"search": 1.0}),
        "referred_by": "",
        "referred_customers": "0",
    },
    "c2": {
        "revenue": "20.00",
        "gross_profit": "6.00",
        "orders": "1",
        "refunds": "0",
        "first_order_at": "2026-03-02T11:00:00Z",
        "last_order_at": "2026-03-02T11:00:00Z",
        "acquisition_channel": "direct",
        "attribution": '{"direct": 1.0}',
        "attribution_models": every_model({"direct": 1.0}),
        "referred_by": "",
        "referred_customers": "0",
    },
}
LIFETIME = {  # channel -> spend, new customers, historical LTV
    "search": (72.50, 1.0, 80.0),
    "direct": (0.0, 1.0, 6.0),
    "all": (72.50, 2.0, 43.0),
}


async def test_a_replayed_history_gives_the_hand_computed_figures(
    deployment: Deployment, tmp_path: Path
) -> None:
    history = write(tmp_path / "history.jsonl", HISTORY)

    result = await run_replay(deployment.env, str(history))

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1].endswith(
        "published 6 events ("
        + ", ".join(
            f"{deployment.prefix}{t} {n}"
            for t, n in [("ad-clicks", 1), ("ad-spend", 1), ("purchases", 4)]
        )
        + "), skipped 0 bad lines"
    )

    def customers_projected() -> bool:
        return all(deployment.redis_hash(f"customer:{c}") == v for c, v in CUSTOMERS.items())

    await wait_until(customers_projected, what="both customers in Redis")

    def gauge(name: str, **labels: str) -> float | None:
        return deployment.gauges(name).get(label_set(**labels))

    def channels_settled() -> bool:
        return all(
            gauge("ltvcac_lifetime_value", channel=c, model=LAST, method="historical") == ltv
            and gauge("ltvcac_new_customers", channel=c, window="lifetime", model=LAST) == customers
            for c, (_, customers, ltv) in LIFETIME.items()
        )

    await wait_until(channels_settled, what="the channel gauges")
    for channel, (spend, customers, ltv) in LIFETIME.items():
        assert gauge("ltvcac_spend", channel=channel, window="lifetime") == pytest.approx(spend)
        ratio = gauge(
            "ltvcac_ltv_cac_ratio",
            channel=channel,
            window="lifetime",
            model=LAST,
            method="historical",
        )
        assert ratio == (pytest.approx(ltv / (spend / customers)) if spend else None)
