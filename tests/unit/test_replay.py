"""``ltvcac replay``: lines -> (topic, key, exact bytes) or ``FILE:LINE: FIELD: message``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownError

from stream import cli
from stream.config import Settings
from stream.domain.ingest import MAX_MESSAGE_BYTES
from stream.replay import (
    BrokerUnavailable,
    Delivery,
    LineError,
    PublishFailed,
    Record,
    build_plan,
    check_line,
    error_lines,
    missing_topics,
    summary,
)

HEAD = '"event_id": "e1", "occurred_at": "2026-03-01T10:00:00Z", "schema_version": 1'
PURCHASE = (
    '{"type": "purchase", ' + HEAD + ', "customer_id": "c-7", "order_id": "o-1", '
    '"amount": "100.00", "currency": "USD"}'
)
REFUND = (
    '{"type": "refund", ' + HEAD + ', "customer_id": "c-8", "order_id": "o-1", '
    '"amount": 5, "currency": "USD"}'
)
AD_CLICK = (
    '{"type": "ad_click", ' + HEAD + ', "visitor_id": "v-1", "channel": "search", '
    '"cost": "0.40", "currency": "USD"}'
)
AD_SPEND = (
    '{"type": "ad_spend", ' + HEAD + ', "channel": "social", "amount": "70.00", '
    '"currency": "USD", "category": "agency", "period_start": "2026-03-01", '
    '"period_end": "2026-03-07"}'
)
REFERRAL = (
    '{"type": "referral", ' + HEAD + ', "referrer_customer_id": "c-1", '
    '"referred_visitor_id": "v-9", "reward_cost": "5.00", "currency": "USD"}'
)
IDENTIFY = '{"type": "identify", ' + HEAD + ', "visitor_id": "v-2", "customer_id": "c-2"}'
FX_RATE = (
    '{"type": "fx_rate", ' + HEAD + ', "currency": "EUR", "rate": "1.0825", '
    '"effective_date": "2026-03-01"}'
)


def line(text: str) -> bytes:
    return text.encode() + b"\n"


def with_fields(text: str, **changes: Any) -> str:
    """``text`` with fields replaced (``None`` removes one); for bad-line cases."""
    event = json.loads(text)
    for name, value in changes.items():
        if value is None:
            del event[name]
        else:
            event[name] = value
    return json.dumps(event)


@pytest.mark.parametrize(
    ("text", "topic", "key"),
    [
        (PURCHASE, "shop.purchases", b"c-7"),
        (REFUND, "shop.purchases", b"c-8"),
        (AD_CLICK, "shop.ad-clicks", b"v-1"),
        (AD_SPEND, "shop.ad-spend", b"social"),
        (REFERRAL, "shop.referrals", b"v-9"),
        (IDENTIFY, "shop.identities", b"v-2"),
    ],
)
def test_each_event_type_goes_to_its_topic_with_its_key(text: str, topic: str, key: bytes) -> None:
    plan = build_plan([line(text)], topic_prefix="shop.")
    assert plan.errors == []
    assert plan.records == [Record(1, topic, key, text.encode())]


def test_the_exact_line_bytes_are_published_without_the_line_terminator() -> None:
    spaced = '  {"type": "identify",   ' + HEAD + ', "visitor_id": "v-2", "customer_id": "c-2"} '
    plan = build_plan([spaced.encode() + b"\r\n", IDENTIFY.encode()])  # last line: no newline
    assert [r.value for r in plan.records] == [spaced.encode(), IDENTIFY.encode()]
    assert [r.topic for r in plan.records] == ["identities", "identities"]


def test_a_non_ascii_key_is_utf8() -> None:
    text = with_fields(PURCHASE, customer_id="kunde-ä")
    record = check_line(text.encode(), 1)
    assert isinstance(record, Record)
    assert record.key == b"kunde-\xc3\xa4"


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b"{not json", "(line)", "Invalid JSON"),
        (b"\xff\xfe{}", "(line)", "not UTF-8 text (invalid byte at column 1)"),
        (b"\xef\xbb\xbf" + IDENTIFY.encode(), "(line)", "byte order mark"),
        (b"[1, 2]", "(line)", "not a JSON object"),
        (b'"purchase"', "(line)", "not a JSON object"),
        (b'{"event_id": "e1"}', "(event)", "field 'type' is missing"),
        (b'{"type": "teleport"}', "(event)", "unknown event type 'teleport'"),
        (with_fields(PURCHASE, amount=None).encode(), "amount", "Field required"),
        (with_fields(PURCHASE, amount="-5.00").encode(), "amount", "greater than 0"),
        (with_fields(PURCHASE, amount="1.234").encode(), "amount", ""),
        (
            with_fields(PURCHASE, occurred_at="2026-03-01T10:00:00").encode(),
            "occurred_at",
            "",
        ),
        (with_fields(PURCHASE, surprise=1).encode(), "surprise", "Extra inputs"),
        (with_fields(PURCHASE, schema_version=2).encode(), "schema_version", ""),
        (with_fields(AD_CLICK, channel="all").encode(), "channel", "reserved"),
        (
            with_fields(PURCHASE, cost_of_goods="10.00", margin="0.5").encode(),
            "(event)",
            "give cost_of_goods or margin, not both",
        ),
        (
            with_fields(AD_SPEND, period_end="2026-02-01").encode(),
            "(event)",
            "period_end is before period_start",
        ),
        (
            with_fields(IDENTIFY, padding="x" * MAX_MESSAGE_BYTES).encode(),
            "(line)",
            f"over the {MAX_MESSAGE_BYTES} limit",
        ),
        (
            with_fields(FX_RATE, currency="USD").encode(),
            "currency",
            "USD is the reporting currency; it always converts at 1",
        ),
        (with_fields(FX_RATE, rate="0").encode(), "rate", "greater than 0"),
    ],
)
def test_each_kind_of_bad_line_names_its_field(raw: bytes, field: str, message: str) -> None:
    """``message``: what replay itself words, or a stable part of the contract's message."""
    plan = build_plan([b"\n", raw + b"\n"], reporting_currency="USD")
    assert plan.records == []
    assert plan.bad_lines == 1
    assert [(e.line, e.field) for e in plan.errors] == [(2, field)]
    assert message in plan.errors[0].message
    assert plan.errors[0].render("history.jsonl").startswith(f"history.jsonl:2: {field}: ")


def test_the_size_limit_is_the_workers() -> None:
    def padded(size: int) -> bytes:  # JSON whitespace inside the object, still a valid event
        return IDENTIFY.replace(", ", "," + " " * (size - len(IDENTIFY) + 1), 1).encode()

    assert len(padded(MAX_MESSAGE_BYTES)) == MAX_MESSAGE_BYTES
    assert isinstance(check_line(padded(MAX_MESSAGE_BYTES), 1), Record)
    assert check_line(padded(MAX_MESSAGE_BYTES + 1), 1) == [
        LineError(1, "(line)", "65537 bytes is over the 65536 limit")
    ]


def test_other_currencies_are_left_to_the_worker_which_knows_the_rates() -> None:
    euro = with_fields(AD_CLICK, currency="EUR").encode()
    assert check_line(euro, 1, reporting_currency="USD") == Record(1, "ad-clicks", b"v-1", euro)
    rate = FX_RATE.encode()
    assert check_line(rate, 2, "t.", reporting_currency="USD") == Record(
        2, "t.fx-rates", b"EUR", rate
    )
    # a rate for the reporting currency is only judged when one is given
    assert isinstance(check_line(rate, 1, reporting_currency="EUR"), list)
    assert isinstance(check_line(rate, 1), Record)


def test_every_defect_of_a_line_is_reported() -> None:
    raw = with_fields(PURCHASE, amount="0", currency="usd", occurred_at="yesterday").encode()
    errors = check_line(raw, 7)
    assert isinstance(errors, list)
    assert [(e.line, e.field) for e in errors] == [
        (7, "occurred_at"),
        (7, "amount"),
        (7, "currency"),
    ]
    assert all(e.message for e in errors)


MIXED = [
    line(PURCHASE),  # 1
    b"\n",  # 2
    line(with_fields(REFUND, amount="-1")),  # 3: bad
    b"   \t\n",  # 4
    line(AD_CLICK),  # 5
    b"{oops\n",  # 6: bad
    line(IDENTIFY),  # 7
]


def test_default_mode_keeps_the_good_lines_and_reports_every_bad_one() -> None:
    plan = build_plan(MIXED, topic_prefix="p.")
    assert [(r.line, r.topic, r.key) for r in plan.records] == [
        (1, "p.purchases", b"c-7"),
        (5, "p.ad-clicks", b"v-1"),
        (7, "p.identities", b"v-2"),
    ]
    assert [(e.line, e.field) for e in plan.errors] == [(3, "amount"), (6, "(line)")]
    assert (plan.bad_lines, plan.lines_read, plan.stopped_at, plan.ok) == (2, 7, None, False)


def test_strict_mode_stops_at_the_first_bad_line_and_plans_nothing() -> None:
    read: list[int] = []

    def lines() -> Any:
        for number, raw in enumerate(MIXED, start=1):
            read.append(number)
            yield raw

    plan = build_plan(lines(), strict=True)
    assert plan.records == []
    assert [(e.line, e.field) for e in plan.errors] == [(3, "amount")]
    assert (plan.bad_lines, plan.stopped_at, plan.lines_read) == (1, 3, 3)
    assert read == [1, 2, 3]  # nothing after the bad line was even read


def test_a_good_file_is_the_same_in_both_modes() -> None:
    good = [line(PURCHASE), b"\n", line(AD_SPEND)]
    assert build_plan(good, strict=True) == build_plan(good)
    assert build_plan(good).ok


def test_the_summary_shows_twenty_errors_and_counts_the_rest() -> None:
    plan = build_plan([b"nope\n"] * 23 + [line(PURCHASE), line(IDENTIFY)])
    shown = error_lines("f.jsonl", plan)
    assert shown[0] == "f.jsonl:1: (line): Invalid JSON: expected ident at line 1 column 2"
    assert shown[19].startswith("f.jsonl:20: (line): ")
    assert shown[20:] == ["... and 3 more errors"]
    assert summary("f.jsonl", plan, Delivery(total=2, published=2)) == (
        "f.jsonl: published 2 events (identities 1, purchases 1), skipped 23 bad lines"
    )


def test_missing_topics_are_named() -> None:
    records = build_plan([line(PURCHASE), line(AD_CLICK), line(REFUND)], topic_prefix="x.").records
    assert missing_topics(records, ["x.purchases", "purchases", "ad-clicks"]) == ["x.ad-clicks"]


# The publisher with a stand-in for the Kafka client: the failure paths that a live
# broker cannot be made to take on demand.


class FakeProducer:
    """Acknowledges sends in order; fails the send with index ``fail_at``."""

    instances: list[FakeProducer] = []
    fail_at: int | None = None  # this send's acknowledgement is an error
    silent_at: int | None = None  # this send is never acknowledged
    raise_at: int | None = None  # this send raises
    unreachable = False
    refuse_idempotence = True

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.stopped = False
        self.client = self
        FakeProducer.instances.append(self)

    async def start(self) -> None:
        if self.unreachable:
            raise KafkaConnectionError("Unable to bootstrap from kafka-1:9092")
        if self.options["enable_idempotence"] and self.refuse_idempotence:
            raise UnknownError()

    async def stop(self) -> None:
        self.stopped = True

    async def fetch_all_metadata(self) -> FakeProducer:
        return self

    def topics(self) -> set[str]:
        return {"p.purchases", "p.ad-clicks", "p.identities"}

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        if len(self.sent) == self.raise_at:
            raise KafkaTimeoutError("no metadata for the topic")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if len(self.sent) == self.fail_at:
            future.set_exception(KafkaTimeoutError("Batch expired"))
        elif len(self.sent) != self.silent_at:
            future.set_result(None)
        self.sent.append((topic, key, value))
        return future


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    import aiokafka

    FakeProducer.instances = []
    FakeProducer.fail_at = FakeProducer.silent_at = FakeProducer.raise_at = None
    FakeProducer.unreachable = False
    monkeypatch.setattr(aiokafka, "AIOKafkaProducer", FakeProducer)
    return FakeProducer


SETTINGS = Settings(kafka_bootstrap_servers="kafka-1:9092", topic_prefix="p.")
GOOD = [line(PURCHASE), line(AD_CLICK), line(IDENTIFY), line(REFUND), line(PURCHASE)]


async def test_publishes_in_file_order_with_acks_all(fake_kafka: type[FakeProducer]) -> None:
    records = build_plan(GOOD, topic_prefix="p.").records
    delivery = Delivery(total=5)
    await cli.publish_records(
        SETTINGS, records, delivery, connect_timeout=1.0, delivery_timeout=1.0
    )
    first, second = fake_kafka.instances  # idempotence refused -> acks=all only
    assert first.options["enable_idempotence"] and not second.options["enable_idempotence"]
    assert second.options["acks"] == "all" and second.stopped
    assert second.sent == [(r.topic, r.key, r.value) for r in records]
    assert delivery.published == 5


async def test_a_failure_part_way_says_how_many_were_published(
    fake_kafka: type[FakeProducer],
) -> None:
    fake_kafka.fail_at = 2
    delivery = Delivery(total=5)
    with pytest.raises(PublishFailed) as failure:
        await cli.publish_records(
            SETTINGS,
            build_plan(GOOD, topic_prefix="p.").records,
            delivery,
            connect_timeout=1.0,
            delivery_timeout=1.0,
        )
    # the lines after the failed one were already on their way, and were acknowledged
    assert failure.value.published == delivery.published == 4
    message = str(failure.value)
    assert message.startswith(
        "Kafka failed after 4 of 5 events were published (line 3 to p.identities: "
    )
    assert "KafkaTimeoutError: Batch expired" in message
    assert "Re-running the same file is safe" in message


async def publish(records: list[Record], delivery: Delivery, timeout: float = 1.0) -> None:
    await cli.publish_records(
        SETTINGS, records, delivery, connect_timeout=timeout, delivery_timeout=timeout
    )


async def test_no_acknowledgement_within_the_delivery_timeout_is_a_failure(
    fake_kafka: type[FakeProducer],
) -> None:
    fake_kafka.silent_at = 1
    delivery = Delivery(total=5)
    with pytest.raises(PublishFailed) as failure:
        await publish(build_plan(GOOD, topic_prefix="p.").records, delivery, timeout=0.2)
    assert delivery.published == 4
    assert str(failure.value).startswith(
        "Kafka failed after 4 of 5 events were published (line 2 to p.ad-clicks: "
        "no answer within 0.2 s)"
    )


async def test_a_send_that_raises_stops_the_replay(fake_kafka: type[FakeProducer]) -> None:
    fake_kafka.raise_at = 3
    delivery = Delivery(total=5)
    with pytest.raises(PublishFailed) as failure:
        await publish(build_plan(GOOD, topic_prefix="p.").records, delivery)
    assert len(fake_kafka.instances[-1].sent) == 3  # nothing sent after the failed send
    assert delivery.published == 3
    assert "after 3 of 5 events were published (line 4 to p.purchases: " in str(failure.value)


async def test_an_unreachable_broker_is_reported_after_the_connect_timeout(
    fake_kafka: type[FakeProducer],
) -> None:
    fake_kafka.unreachable = True
    with pytest.raises(BrokerUnavailable) as failure:
        await publish(build_plan(GOOD, topic_prefix="p.").records, Delivery(total=5), 0.3)
    assert str(failure.value).startswith("Kafka at kafka-1:9092 not reachable within 0.3 s (")
    assert str(failure.value).endswith("; nothing was published")
    assert len(fake_kafka.instances) > 1  # it retried
    assert all(not producer.sent for producer in fake_kafka.instances)


async def test_a_missing_topic_stops_the_replay_before_anything_is_sent(
    fake_kafka: type[FakeProducer],
) -> None:
    records = build_plan(
        [line(PURCHASE), line(AD_SPEND), line(REFERRAL)], topic_prefix="p."
    ).records
    with pytest.raises(BrokerUnavailable) as failure:
        await publish(records, Delivery(total=3))
    assert str(failure.value).startswith("topics p.ad-spend, p.referrals not found on Kafka;")
    assert all(not producer.sent for producer in fake_kafka.instances)
