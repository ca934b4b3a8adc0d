"""Bad input, generated, on a real worker: each bad message is exactly one dead letter with
its reason and its exact bytes, every valid neighbour counts, and the worker stays up.

One worker serves all examples; each example draws a batch of bad messages from every
family on every source topic, interleaved with valid purchases, clicks and spend, under
ids unique to the example (``nonce``), and waits for its own results. The bad messages
are about the same customers and channels as the valid ones, so a bad message that was
applied would also show in their figures. Expected figures are summed here from the
valid messages, by hand.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stream.devstack import StackEndpoints
from stream.worker_process import label_set
from tests.integration.conftest import Deployment, wait_until

pytestmark = pytest.mark.integration

LIMIT_BYTES = 64 * 1024
KEPT_BYTES = 256 * 1024  # of a value longer than this a dead letter keeps only the start
SOURCE_TOPICS = ("purchases", "ad-clicks", "referrals", "ad-spend", "identities", "fx-rates")
KEY_FIELD = {
    "purchase": "customer_id",
    "refund": "customer_id",
    "ad_click": "visitor_id",
    "ad_spend": "channel",
    "referral": "referred_visitor_id",
    "identify": "visitor_id",
    "fx_rate": "currency",
}
TOPIC_OF = {
    "purchase": "purchases",
    "refund": "purchases",
    "ad_click": "ad-clicks",
    "ad_spend": "ad-spend",
    "referral": "referrals",
    "identify": "identities",
    "fx_rate": "fx-rates",
}
MONEY = {"purchase": "amount", "refund": "amount", "ad_click": "cost", "ad_spend": "amount"}
MONEY["referral"] = "reward_cost"
MONEY["fx_rate"] = "rate"
BAD_MONEY = [  # JSON text: NaN, Infinity, negative, huge, too precise, not plain decimals
    '"NaN"',
    "NaN",
    '"Infinity"',
    "-Infinity",
    "1e400",
    '"-5.00"',
    "-0.01",
    '"1000000000.01"',
    "1e12",
    '"1.001"',
    '"1_000"',
    '" 10"',
    '"1E+2"',
]
# a rate may have 12 decimals, and no more than 1,000,000
BAD_RATES = [
    *(money for money in BAD_MONEY if money != '"1.001"'),
    '"1.0000000000001"',
    "1000000.5",
]


@dataclass(frozen=True)
class Sent:
    """One message as published: the exact key and value bytes."""

    topic: str
    key: bytes | None
    value: bytes | None
    reason: str | None = None  # the dead letter it must become; None for a valid one
    field_name: str | None = None  # the field an ``invalid_event`` detail starts with

    def __repr__(self) -> str:  # oversized values would flood a failure report
        value = self.value if self.value is None else self.value[:300]
        size = None if self.value is None else len(self.value)
        return f"Sent({self.topic}, {self.key!r}, {value!r} ({size} bytes), {self.reason})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis's printer
        printer.text(repr(self))


@dataclass
class Batch:
    messages: list[Sent]
    revenue: dict[str, Decimal] = field(default_factory=dict)  # customer -> revenue
    profit: dict[str, Decimal] = field(default_factory=dict)
    orders: Counter[str] = field(default_factory=Counter)
    spend: dict[str, Decimal] = field(default_factory=dict)  # channel -> lifetime spend

    @property
    def bad(self) -> list[Sent]:
        return [m for m in self.messages if m.reason is not None]


def timestamp(seconds: int) -> str:
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def cents(value: int) -> str:
    return f"{value // 100}.{value % 100:02d}"


def body(event_type: str, event_id: str, at: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "event_id": event_id,
        "occurred_at": timestamp(at),
        "schema_version": 1,
        **fields,
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def keyed(event: dict[str, Any], **override: Any) -> Sent:
    """The event on its own topic with its own key: valid unless ``override`` says why not."""
    key = str(event[KEY_FIELD[event["type"]]]).encode()
    return Sent(TOPIC_OF[event["type"]], key, encode(event), **override)


@st.composite
def batches(draw: st.DrawFn, nonce: str) -> Batch:
    """Valid neighbours and bad messages of every family, shuffled together."""
    ids = iter(range(1_000_000))

    def uid(prefix: str) -> str:
        return f"{prefix}-{nonce}-{next(ids)}"

    customers = [f"c-{nonce}-{i}" for i in range(draw(st.integers(1, 4)))]
    channels = [f"ch-{nonce}-{i}" for i in range(draw(st.integers(1, 3)))]
    at = st.integers(0, 180 * 86_400)
    money = st.integers(1, 500_00)
    batch = Batch([])

    # -- valid neighbours
    for _ in range(draw(st.integers(3, 8))):
        customer, amount = draw(st.sampled_from(customers)), draw(money)
        cost = draw(st.integers(0, amount))
        event = body(
            "purchase",
            uid("e"),
            draw(at),
            customer_id=customer,
            order_id=uid("o"),
            amount=cents(amount),
            currency="USD",
            cost_of_goods=cents(cost),
        )
        batch.messages.append(keyed(event))
        batch.revenue[customer] = batch.revenue.get(customer, Decimal(0)) + Decimal(amount) / 100
        batch.profit[customer] = (
            batch.profit.get(customer, Decimal(0)) + Decimal(amount - cost) / 100
        )
        batch.orders[customer] += 1
    for _ in range(draw(st.integers(2, 6))):
        channel, cost = draw(st.sampled_from(channels)), draw(st.integers(0, 5_00))
        click = body(
            "ad_click",
            uid("e"),
            draw(at),
            visitor_id=uid("v"),
            channel=channel,
            cost=cents(cost),
            currency="USD",
        )
        batch.messages.append(keyed(click))
        batch.spend[channel] = batch.spend.get(channel, Decimal(0)) + Decimal(cost) / 100
    for _ in range(draw(st.integers(1, 4))):
        channel, amount = draw(st.sampled_from(channels)), draw(money)
        start = dt.date(2026, 1, 1) + dt.timedelta(days=draw(st.integers(0, 150)))
        end = start + dt.timedelta(days=draw(st.integers(0, 30)))
        spend = body(
            "ad_spend",
            uid("e"),
            draw(at),
            channel=channel,
            amount=cents(amount),
            currency="USD",
            category=draw(st.sampled_from(["media", "salaries", "tools", "agency", "other"])),
            period_start=start.isoformat(),
            period_end=end.isoformat(),
        )
        batch.messages.append(keyed(spend))
        batch.spend[channel] = batch.spend.get(channel, Decimal(0)) + Decimal(amount) / 100

    # -- bad messages: well-formed events about the same customers and channels, each
    # with exactly one defect
    def template(event_type: str) -> dict[str, Any]:
        channel, customer = draw(st.sampled_from(channels)), draw(st.sampled_from(customers))
        fields: dict[str, Any] = {
            "purchase": {"customer_id": customer, "order_id": uid("o"), "amount": "10.00"},
            "refund": {"customer_id": customer, "order_id": uid("o"), "amount": "1.00"},
            "ad_click": {"visitor_id": uid("v"), "channel": channel, "cost": "0.50"},
            "ad_spend": {
                "channel": channel,
                "amount": "20.00",
                "category": "media",
                "period_start": "2026-02-01",
                "period_end": "2026-02-02",
            },
            "referral": {
                "referrer_customer_id": customer,
                "referred_visitor_id": uid("v"),
                "reward_cost": "5.00",
            },
            "identify": {"visitor_id": uid("v"), "customer_id": customer},
            # the worker has no rates: no valid rate is sent, so none is ever in force
            "fx_rate": {"rate": "1.10", "effective_date": "2026-01-01"},
        }[event_type]
        if event_type == "fx_rate":
            fields["currency"] = "EUR"
        elif event_type != "identify":
            fields["currency"] = "USD"
        return body(event_type, uid("e"), draw(at), **fields)

    event_types = st.sampled_from(sorted(TOPIC_OF))

    def arbitrary_bytes() -> Sent:
        raw = draw(st.binary(min_size=1, max_size=200).filter(not_json))
        return Sent(draw(st.sampled_from(SOURCE_TOPICS)), draw(keys), raw, "invalid_json")

    def null_value() -> Sent:  # a tombstone: Kafka needs a key then
        key = draw(keys.filter(lambda k: k is not None))
        return Sent(draw(st.sampled_from(SOURCE_TOPICS)), key, None, "invalid_json")

    def not_an_object() -> Sent:
        value = draw(st.lists(st.integers(), max_size=3) | st.text(max_size=10) | st.none())
        topic = draw(st.sampled_from(SOURCE_TOPICS))
        return Sent(topic, draw(keys), json.dumps(value).encode(), "invalid_event", "(event)")

    def unknown_type() -> Sent:
        event = template(draw(event_types))
        bad = draw(st.none() | st.text(max_size=10).filter(lambda t: t not in TOPIC_OF))
        if bad is None:
            del event["type"]
        else:
            event["type"] = bad
        return Sent(draw(st.sampled_from(SOURCE_TOPICS)), draw(keys), encode(event), "unknown_type")

    def wrong_json_type() -> Sent:
        event = template(draw(event_types))
        name = draw(st.sampled_from(sorted(set(event) - {"type"})))
        wrong: Any = draw(st.sampled_from([True, None, [1], {"a": 1}]))
        if name == "occurred_at":
            wrong = draw(st.sampled_from([1772359200, 1772359200000, "1772359200", None]))
        if name == "schema_version":
            wrong = draw(st.sampled_from(["1", 1.0, True]))
        return keyed({**event, name: wrong}, reason="invalid_event", field_name=name)

    def missing_field() -> Sent:
        event = template(draw(event_types))
        key = str(event[KEY_FIELD[event["type"]]]).encode()
        name = draw(st.sampled_from(sorted(set(event) - {"type"})))
        del event[name]
        return Sent(TOPIC_OF[event["type"]], key, encode(event), "invalid_event", name)

    def extra_field() -> Sent:
        event = template(draw(event_types))
        name = draw(st.text(min_size=1, max_size=20).filter(lambda n: n not in event))
        event[name] = draw(st.integers() | st.text(max_size=5))
        return keyed(event, reason="invalid_event", field_name=name)

    def bad_money() -> Sent:
        event = template(draw(st.sampled_from(sorted(MONEY))))
        name = MONEY[event["type"]]
        raw = draw(st.sampled_from(BAD_RATES if name == "rate" else BAD_MONEY))
        placeholder = "\u0001money\u0001"
        text = json.dumps({**event, name: placeholder}).replace(json.dumps(placeholder), raw)
        return Sent(
            TOPIC_OF[event["type"]],
            str(event[KEY_FIELD[event["type"]]]).encode(),
            text.encode(),
            "invalid_event",
            name,
        )

    def bad_currency() -> Sent:
        event = template(draw(st.sampled_from(sorted(MONEY))))
        code = draw(st.sampled_from(["usd", "US", "USDT", "", "U$D", "EUR", "GBP", "XXX", "JPY"]))
        if event["type"] == "fx_rate":
            if code in ("usd", "US", "USDT", "", "U$D"):  # malformed (the key is the old code)
                key = str(event["currency"]).encode()
                bad = encode({**event, "currency": code})
                return Sent("fx-rates", key, bad, "invalid_event", "currency")
            code = "USD"  # well formed, but the reporting currency
            return keyed({**event, "currency": code}, reason="invalid_event", field_name="currency")
        if code in ("EUR", "GBP", "XXX", "JPY"):  # well formed, but no rates at all
            # a refund is of an order never bought, which is checked before its currency
            reason = "unknown_order" if event["type"] == "refund" else "unknown_currency"
            return keyed({**event, "currency": code}, reason=reason)
        return keyed({**event, "currency": code}, reason="invalid_event", field_name="currency")

    def bad_channel() -> Sent:
        event = template(draw(st.sampled_from(["ad_click", "ad_spend"])))
        name = draw(st.sampled_from(["all", "Search", "sea rch", "-x", "", "x" * 65, "séarch"]))
        return keyed({**event, "channel": name}, reason="invalid_event", field_name="channel")

    def bad_time() -> Sent:
        event = template(draw(event_types))
        ancient = draw(st.integers(1, 1999))
        future = draw(st.integers(2100, 9999))
        when = draw(st.sampled_from([ancient, future]))
        event["occurred_at"] = f"{when:04d}-06-01T12:00:00Z"
        return keyed(event, reason="invalid_event", field_name="occurred_at")

    def bad_period() -> Sent:
        event = template("ad_spend")
        name = draw(st.sampled_from(["period_start", "period_end"]))
        event[name] = draw(
            st.sampled_from(["1999-12-31", "2100-01-01", "0001-01-01", "9999-12-31"])
        )
        return keyed(event, reason="invalid_event", field_name=name)

    def oversized() -> Sent:
        event = template(draw(event_types))
        event["padding"] = "x" * draw(st.integers(LIMIT_BYTES, 3 * LIMIT_BYTES))
        return Sent(TOPIC_OF[event["type"]], draw(keys), encode(event), "oversized")

    def huge() -> Sent:  # near Kafka's 1 MB: the dead letter keeps the first KEPT_BYTES
        chunk, size = (
            draw(st.binary(min_size=1, max_size=100)),
            draw(st.integers(KEPT_BYTES + 1, 900_000)),
        )
        value = (chunk * (size // len(chunk) + 1))[:size]
        return Sent(draw(st.sampled_from(SOURCE_TOPICS)), draw(keys), value, "oversized")

    def wrong_key() -> Sent:
        event = template(draw(event_types))
        right = str(event[KEY_FIELD[event["type"]]]).encode()
        key = draw(
            st.sampled_from([None, b"", right + b" ", b"\xff" + right, right.upper()])
            | st.binary(max_size=10)
        )
        if key == right:
            key = None
        return Sent(TOPIC_OF[event["type"]], key, encode(event), "key_mismatch")

    def wrong_topic() -> Sent:
        event = template(draw(event_types))
        topic = draw(st.sampled_from([t for t in SOURCE_TOPICS if t != TOPIC_OF[event["type"]]]))
        return Sent(
            topic, str(event[KEY_FIELD[event["type"]]]).encode(), encode(event), "wrong_topic"
        )

    def unknown_order() -> Sent:
        return keyed(template("refund"), reason="unknown_order")

    keys = st.none() | st.sampled_from([c.encode() for c in customers]) | st.binary(max_size=12)
    families = [
        arbitrary_bytes,
        null_value,
        not_an_object,
        unknown_type,
        wrong_json_type,
        missing_field,
        extra_field,
        bad_money,
        bad_currency,
        bad_channel,
        bad_time,
        bad_period,
        oversized,
        huge,
        wrong_key,
        wrong_topic,
        unknown_order,
    ]
    for family in families:  # every family at least once, then more at random
        batch.messages.append(family())
    for _ in range(draw(st.integers(0, 20))):
        batch.messages.append(draw(st.sampled_from(families))())
    batch.messages = draw(st.permutations(batch.messages))
    return batch


def not_json(raw: bytes) -> bool:
    try:
        json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        return True
    return False


# -- one worker for every example


# Valid events fall anywhere in 180 days, in random order: none of them is too late.
LATENESS = {"LTVCAC_ALLOWED_LATENESS_SECONDS": str(365 * 86_400)}


@pytest.fixture(scope="module")
def worker(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployed = Deployment(stack, tmp_path_factory.mktemp("bad-input"), extra_env=LATENESS)
    deployed.worker.start()
    try:
        yield deployed
    finally:
        deployed.cleanup()


def events_by(deployment: Deployment) -> Counter[tuple[str, str]]:
    """ltvcac_events_total as (topic, outcome) -> count."""
    counts: Counter[tuple[str, str]] = Counter()
    for labels, value in deployment.gauges("ltvcac_events_total").items():
        found = dict(labels)
        counts[(found["topic"], found["outcome"])] = int(value)
    return counts


def dead_letters_by_reason(deployment: Deployment) -> Counter[str]:
    counts: Counter[str] = Counter()
    for labels, value in deployment.gauges("ltvcac_dead_letters_total").items():
        counts[dict(labels)["reason"]] = int(value)
    return counts


async def publish(deployment: Deployment, messages: list[Sent]) -> list[tuple[str, int, int]]:
    """Send in order, exact key and value bytes; (topic, partition, offset) of each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=deployment.stack.kafka_bootstrap, max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [
            await producer.send(deployment.prefix + m.topic, value=m.value, key=m.key)
            for m in messages
        ]
        await producer.flush()
        placed = [await future for future in futures]
    finally:
        await producer.stop()
    return [
        (m.topic, meta.partition, meta.offset) for m, meta in zip(messages, placed, strict=True)
    ]


async def read_dead_letters(
    deployment: Deployment, wanted: set[tuple[str, int, int]], timeout: float = 60.0
) -> list[dict[str, Any]]:
    """Every dead letter of an input at one of ``origins`` (topic, partition, offset).

    Reads the whole topic (ListOffsets of the embedded broker can lag, so no end offsets)
    until the letters of ``wanted`` are all there and a fetch finds nothing newer.
    """
    topic = deployment.prefix + "dead-letters"
    count = int(deployment.env["LTVCAC_TOPIC_PARTITIONS"])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=deployment.stack.kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(count)])
        await consumer.seek_to_beginning()

        async def until_complete() -> None:
            while True:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    found.extend(json.loads(record.value) for record in records)
                origins = {(f["topic"], f["partition"], f["offset"]) for f in found}
                if not batches and wanted <= origins:
                    return

        try:
            await asyncio.wait_for(until_complete(), timeout)
        except TimeoutError:
            pytest.fail(f"timed out after {timeout}s: {len(found)} dead letters, some missing")
    finally:
        await consumer.stop()
    return found


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def spend_gauge(deployment: Deployment, channel: str) -> float | None:
    return deployment.gauges("ltvcac_spend").get(label_set(channel=channel, window="lifetime"))


@settings(
    max_examples=8,
    deadline=None,
    phases=[Phase.generate],  # shrinking would replay against the worker for minutes
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
async def test_every_bad_message_is_one_dead_letter_and_neighbours_count(
    worker: Deployment, data: st.DataObject
) -> None:
    nonce = uuid.uuid4().hex[:8]
    batch = data.draw(batches(nonce))
    bad = batch.bad
    letters_before = dead_letters_by_reason(worker)
    events_before = events_by(worker)

    placed = await publish(worker, batch.messages)
    where = dict(zip(placed, batch.messages, strict=True))

    def handled() -> bool:
        done = events_by(worker) - events_before
        total = sum(n for (topic, _), n in done.items() if topic in SOURCE_TOPICS)
        letters = sum((dead_letters_by_reason(worker) - letters_before).values())
        return total >= len(batch.messages) and letters >= len(bad)

    await wait_until(handled, what="every message to be handled")

    # exactly one dead letter per bad message, with its reason and exact bytes
    bad_origins = {origin for origin, sent in where.items() if sent.reason is not None}
    letters = [
        letter
        for letter in await read_dead_letters(worker, bad_origins)
        if (letter["topic"], letter["partition"], letter["offset"]) in where
    ]
    seen: Counter[tuple[str, int, int]] = Counter()
    for letter in letters:
        origin = (letter["topic"], letter["partition"], letter["offset"])
        seen[origin] += 1
        sent = where[origin]
        assert sent.reason is not None, f"a valid message was dead-lettered: {letter}"
        assert letter["reason"] == sent.reason, (letter, sent)
        size = None if sent.value is None else len(sent.value)
        kept = None if sent.value is None else sent.value[:KEPT_BYTES]
        assert letter["value_b64"] == b64(kept), letter["reason"]
        assert letter["value_bytes"] == size
        assert letter["value_truncated"] == (size is not None and size > KEPT_BYTES)
        assert letter["key_b64"] == b64(sent.key)
        assert letter["detail"]
        if sent.field_name is not None:
            assert letter["detail"].startswith(f"{sent.field_name}: "), (letter["detail"], sent)
    assert set(seen) == bad_origins
    assert sorted(seen.values()) == [1] * len(bad), "more than one dead letter of a message"

    # the counters say the same
    by_reason = dead_letters_by_reason(worker) - letters_before
    assert by_reason == Counter(sent.reason for sent in bad)
    events = events_by(worker) - events_before
    for topic in SOURCE_TOPICS:
        valid = sum(1 for m in batch.messages if m.topic == topic and m.reason is None)
        rejected = sum(1 for m in bad if m.topic == topic)
        assert events[(topic, "applied")] == valid, topic
        assert events[(topic, "rejected")] == rejected, topic
        assert events[(topic, "duplicate")] == events[(topic, "redelivered")] == 0

    # every valid neighbour counted, nothing of the bad ones
    def projected() -> bool:
        for customer, revenue in batch.revenue.items():
            record = worker.redis_hash(f"customer:{customer}")
            if not record or Decimal(record["revenue"]) != revenue:
                return False
        return all(
            spend_gauge(worker, channel) == pytest.approx(float(total))
            for channel, total in batch.spend.items()
        )

    await wait_until(projected, what="the valid neighbours in Redis and the gauges")
    for customer, revenue in batch.revenue.items():
        record = worker.redis_hash(f"customer:{customer}")
        assert Decimal(record["revenue"]) == revenue
        assert Decimal(record["gross_profit"]) == batch.profit[customer]
        assert int(record["orders"]) == batch.orders[customer]
        assert record["refunds"] == "0"
    for channel, total in batch.spend.items():
        assert spend_gauge(worker, channel) == pytest.approx(float(total))

    # the worker is still up and serving
    assert worker.worker.samples()
    log = worker.worker.log_tail(lines=1_000_000)
    assert "Traceback" not in log and "Crashed" not in log
