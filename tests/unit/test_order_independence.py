"""The domain rules give the ground truth whatever the order and however often inputs
arrive: the topology is simulated in memory (topics as lists, one record store per
agent), fed in random interleavings, with redelivery after lost outputs."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from schemas.events import AdSpend, Purchase, Refund, parse_event
from stream.demo import demo_events
from stream.domain.channel import ChannelDelta, ChannelRecord, Source
from stream.domain.customer import (
    CustomerRecord,
    CustomerRules,
    handle_attribution,
    handle_purchase,
    handle_refund,
)
from stream.domain.fx import FxRates
from stream.domain.outcome import Outcome
from stream.domain.spend import handle_ad_spend
from stream.domain.visitor import VisitorRecord, VisitorRules, handle_conversion, handle_touch
from tests.reference import ground_truth, seconds

PARTITIONS = 2
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass
class Topology:
    """Topics as append-only lists per partition, consumed by the three agents."""

    logs: dict[tuple[str, int], list[tuple[str, Any]]] = field(default_factory=dict)
    read: dict[tuple[str, int], int] = field(default_factory=dict)
    customers: dict[str, CustomerRecord] = field(default_factory=dict)
    visitors: dict[str, VisitorRecord] = field(default_factory=dict)
    channels: dict[str, ChannelRecord] = field(default_factory=dict)

    def send(self, topic: str, key: str, value: Any) -> None:
        partition = sum(key.encode()) % PARTITIONS
        self.logs.setdefault((topic, partition), []).append((key, value))

    def pending(self) -> list[tuple[str, int]]:
        return [stream for stream, log in self.logs.items() if self.read.get(stream, 0) < len(log)]

    def step(self, stream: tuple[str, int], lose_outputs: bool) -> None:
        """Handle the next message of ``stream``; with ``lose_outputs`` the outputs are
        lost and the message is read again later, as after a crash."""
        offset = self.read.get(stream, 0)
        key, value = self.logs[stream][offset]
        outcome = self.handle(stream, offset, key, value)
        if lose_outputs:
            return  # state kept, outputs lost, offset not committed
        self.read[stream] = offset + 1
        for delta in outcome.deltas:
            self.send("channel-deltas", delta.channel, delta)
        for message in outcome.messages:
            self.send(message.topic, message.key, message.value)

    def handle(self, stream: tuple[str, int], offset: int, key: str, value: Any) -> Outcome:
        topic, partition = stream
        source = Source(topic, partition, offset)
        if topic == "purchases":
            customer = self.customers.setdefault(key, CustomerRecord(key))
            if isinstance(value, Purchase):
                return handle_purchase(customer, value, source, CustomerRules())
            assert isinstance(value, Refund)
            return handle_refund(customer, value, source, CustomerRules())
        if topic == "customer-updates":
            customer = self.customers.setdefault(key, CustomerRecord(key))
            args = (value["visitor_id"], value["converted_at"], value["weights"], source)
            return handle_attribution(customer, *args, value["campaigns"])
        if topic in ("ad-clicks", "referrals"):
            visitor = self.visitors.setdefault(key, VisitorRecord(key))
            return handle_touch(visitor, value, source, VisitorRules())
        if topic == "visitor-updates":
            visitor = self.visitors.setdefault(key, VisitorRecord(key))
            args = (value["customer_id"], value["converted_at"], source, VisitorRules())
            return handle_conversion(visitor, *args)
        channel = self.channels.setdefault(key, ChannelRecord(key))
        if isinstance(value, AdSpend):
            return handle_ad_spend(channel, value, source, FxRates("USD"))
        assert isinstance(value, ChannelDelta)
        channel.apply(value)
        return Outcome("applied")

    def run(self, rng: random.Random, loss_rate: float) -> None:
        """Streams advance at random relative speeds; a lost output is redelivered, and
        sometimes a stream is read again from a few messages back (an older commit)."""
        while streams := self.pending():
            stream = rng.choice(sorted(streams))
            if rng.random() < loss_rate / 3:
                self.read[stream] = max(self.read.get(stream, 0) - rng.randint(1, 5), 0)
            self.step(stream, rng.random() < loss_rate)


def history(seed: int, days: int) -> list[tuple[str, str, dict[str, Any]]]:
    return list(demo_events(seed, START, days))


def channel_buckets(topology: Topology) -> dict[str, dict[int, dict[str, int]]]:
    """Channel buckets as counters, to compare with the ground truth."""
    return {
        name: {day: bucket.counts for day, bucket in record.buckets.items()}
        for name, record in topology.channels.items()
        if record.buckets
    }


def channel_cohorts(topology: Topology) -> dict[str, dict[int, dict[str, int]]]:
    """Channel cohorts as counters by acquisition month, to compare with the ground truth."""
    return {
        name: {month: cohort.counts for month, cohort in record.cohorts.items()}
        for name, record in topology.channels.items()
        if record.cohorts
    }


def shuffled(
    events: list[tuple[str, str, dict[str, Any]]], rng: random.Random
) -> list[tuple[str, str, dict[str, Any]]]:
    """Events moved up to three days from their time; a customer's purchases and refunds
    only by an hour, as a shop's producer keeps them in order."""

    def late(item: tuple[str, str, dict[str, Any]]) -> float:
        jitter = 3600 if item[0] == "purchases" else 3 * 86400
        return seconds(item[2]["occurred_at"]) + rng.uniform(0, jitter)

    return sorted(events, key=late)


def publish(topology: Topology, events: list[tuple[str, str, dict[str, Any]]]) -> None:
    for topic, key, event in events:
        topology.send(topic, key, parse_event(json.dumps(event).encode()))


# No shrinking: a smaller history rarely explains more, and shrinking one takes minutes.
@settings(max_examples=25, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    seed=st.integers(1, 10_000),
    schedule_seed=st.integers(0, 2**32),
    shuffle=st.booleans(),
    loss_rate=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_any_interleaving_with_redelivery_gives_the_ground_truth(
    seed: int, schedule_seed: int, shuffle: bool, loss_rate: float
) -> None:
    schedule = random.Random(schedule_seed)
    events = history(seed, 40)
    duplicates = [schedule.choice(events) for _ in range(len(events) // 20)]
    inputs = events + duplicates
    topology = Topology()
    publish(topology, shuffled(inputs, schedule) if shuffle else inputs)
    topology.run(schedule, loss_rate)

    truth = ground_truth(event for _, _, event in events)
    assert channel_buckets(topology) == {
        channel: days for channel, days in truth.buckets.items() if days
    }
    assert channel_cohorts(topology) == {
        channel: months for channel, months in truth.cohorts.items() if months
    }
    for customer_id, expected in truth.customers.items():
        record = topology.customers[customer_id]
        assert (record.revenue_cents, record.gross_profit_cents, record.orders) == (
            expected.revenue_cents,
            expected.profit_cents,
            expected.orders,
        )
        assert record.model_weights == expected.weights
        assert record.acquisition_channel("last_touch") == expected.channel
    assert max(r.watermark for r in topology.channels.values()) == truth.watermark


def test_the_simulation_can_tell_a_wrong_result() -> None:
    """Without de-duplication of deltas the same history no longer matches."""
    events = history(3, 20)
    topology = Topology()
    publish(topology, events)
    original = ChannelRecord.seen
    try:
        ChannelRecord.seen = lambda self, source: False  # type: ignore[method-assign]
        topology.run(random.Random(1), loss_rate=0.3)
    finally:
        ChannelRecord.seen = original  # type: ignore[method-assign]
    truth = ground_truth(event for _, _, event in events)
    assert channel_buckets(topology)["all"] != truth.buckets["all"]
    assert channel_cohorts(topology)["all"] != truth.cohorts["all"]
