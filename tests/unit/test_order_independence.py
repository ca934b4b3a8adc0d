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
from stream.domain import customer
from stream.domain.attribution import MODELS
from stream.domain.channel import ChannelDelta, ChannelRecord, Source
from stream.domain.customer import (
    CustomerRecord,
    CustomerRules,
    handle_attribution,
    handle_purchase,
    handle_referred,
    handle_refund,
)
from stream.domain.fx import FxRates
from stream.domain.outcome import Outcome
from stream.domain.spend import handle_ad_spend
from stream.domain.visitor import VisitorRecord, VisitorRules, handle_conversion, handle_touch
from tests.reference import Truth, ground_truth, seconds

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
    visitor_rules: VisitorRules = field(default_factory=VisitorRules)

    def send(self, topic: str, key: str, value: Any) -> None:
        partition = sum(key.encode()) % PARTITIONS
        self.logs.setdefault((topic, partition), []).append((key, value))

    def pending(self) -> list[tuple[str, int]]:
        return [stream for stream, log in self.logs.items() if self.read.get(stream, 0) < len(log)]

    def step(self, stream: tuple[str, int], lose_outputs: bool) -> None:
        """Handle the next message of ``stream``; with ``lose_outputs`` the outputs are
        lost and the message is read again later, as after a crash. The opposite (outputs
        kept, state lost) cannot happen: a batch sends its outputs only once the broker
        has its records (``stream.agents.common.handle_batch``)."""
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
            if value["type"] == "referred":
                changes = {int(day): change for day, change in value["days"].items()}
                origin = Source(*value["origin"])
                return handle_referred(customer, value["referred_id"], changes, origin, source)
            args = (value["visitor_id"], value["converted_at"], value["weights"], source)
            return handle_attribution(customer, *args, value["campaigns"], value["referrer"])
        if topic in ("ad-clicks", "referrals"):
            visitor = self.visitors.setdefault(key, VisitorRecord(key))
            return handle_touch(visitor, value, source, self.visitor_rules)
        if topic == "visitor-updates":
            visitor = self.visitors.setdefault(key, VisitorRecord(key))
            args = (value["customer_id"], value["converted_at"], source, self.visitor_rules)
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
    assert_referral_tree(topology, truth)
    assert max(r.watermark for r in topology.channels.values()) == truth.watermark


def assert_referral_tree(topology: Topology, truth: Truth) -> None:
    """Who referred whom, on both ends, equals the ground truth."""
    for customer_id, expected in truth.customers.items():
        assert topology.customers[customer_id].referred_by == expected.referred_by
    referrers = {
        customer_id: record.referrals
        for customer_id, record in topology.customers.items()
        if record.referrals.count or record.referrals.days
    }
    assert sorted(referrers) == sorted(truth.referrals)
    for referrer, referred in truth.referrals.items():
        assert referrers[referrer].customers() == sorted(referred)
        assert referrers[referrer].count == len(referred)


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(seed=st.integers(1, 10_000), schedule_seed=st.integers(0, 2**32))
def test_deltas_from_the_changed_days_equal_those_from_the_whole_history(
    seed: int, schedule_seed: int
) -> None:
    """A customer's deltas are computed on the days its input changed only; at every
    version of every customer (late orders, refunds, attributions, referrals) they equal
    the difference of its whole contributions before and after."""
    schedule = random.Random(schedule_seed)
    topology = Topology()
    publish(topology, shuffled(history(seed, 40), schedule))
    topology.run(schedule, loss_rate=0.0)
    source = Source("purchases", 0, 0)
    versions = 0
    for record in topology.customers.values():
        for version in range(1, record.version + 1):
            restricted = customer._deltas(record, version, source)
            original = customer._changed_days
            try:
                customer._changed_days = lambda *_: None  # type: ignore[assignment]
                whole = customer._deltas(record, version, source)
            finally:
                customer._changed_days = original  # type: ignore[assignment]
            assert restricted == whole
            versions += 1
    assert versions > len(topology.customers)  # repeat inputs were compared too


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


def referral_contest(rng: random.Random) -> list[tuple[str, str, dict[str, Any]]]:
    """Customers c1-c6 buy through visitors with clicks and competing referrals (c1-c7
    refer, c7 never buys: chains, a referrer without orders and self-referrals happen),
    touches up to 40 days before orders, a customer's earliest order sometimes through
    another visitor, refunds. Whole hours, so touches tie in time."""
    events: list[tuple[str, str, dict[str, Any]]] = []

    def add(topic: str, key: str, kind: str, hour: int, **fields: Any) -> None:
        at = (START + dt.timedelta(hours=hour)).isoformat().replace("+00:00", "Z")
        body = {"type": kind, "event_id": f"e{len(events):03d}", "occurred_at": at}
        events.append((topic, key, {**body, "schema_version": 1, "currency": "USD", **fields}))

    for n in range(1, 7):
        visitor = f"v{n}"
        for _ in range(rng.randint(0, 4)):
            hour = rng.randint(0, 40 * 24)
            if rng.random() < 0.6:
                referrer = f"c{rng.randint(1, 7)}"
                add(
                    "referrals",
                    visitor,
                    "referral",
                    hour,
                    referrer_customer_id=referrer,
                    referred_visitor_id=visitor,
                    reward_cost="2.00",
                )
            else:
                channel = rng.choice(["search", "social"])
                add(
                    "ad-clicks",
                    visitor,
                    "ad_click",
                    hour,
                    visitor_id=visitor,
                    channel=channel,
                    cost="0.50",
                )
        for k in range(rng.randint(1, 3)):
            hour = rng.randint(30 * 24, 42 * 24)
            through = visitor if rng.random() < 0.8 else f"v{rng.randint(1, 6)}"
            order = f"o{n}-{k}"
            add(
                "purchases",
                f"c{n}",
                "purchase",
                hour,
                customer_id=f"c{n}",
                order_id=order,
                amount=f"{rng.randint(10, 90)}.00",
                visitor_id=through,
            )
            if rng.random() < 0.2:
                add(
                    "purchases",
                    f"c{n}",
                    "refund",
                    hour + 24,
                    customer_id=f"c{n}",
                    order_id=order,
                    amount="5.00",
                )
    return events


def arrival_order(
    events: list[tuple[str, str, dict[str, Any]]], rng: random.Random
) -> list[tuple[str, str, dict[str, Any]]]:
    """Any order, except that purchases and refunds keep theirs (a refund never comes
    before its purchase); orders were drawn in no time order, so an earlier order often
    arrives after a later one."""
    shuffled = rng.sample(events, len(events))
    purchases = iter([item for item in events if item[0] == "purchases"])
    return [next(purchases) if item[0] == "purchases" else item for item in shuffled]


@settings(max_examples=40, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(
    seed=st.integers(0, 2**32),
    primary=st.sampled_from(sorted(MODELS)),
    loss_rate=st.sampled_from([0.0, 0.1, 0.3]),
)
def test_competing_referrals_give_the_ground_truth_tree(
    seed: int, primary: str, loss_rate: float
) -> None:
    """Referrals and clicks competing for customers, in any order with redelivery: who
    referred whom and every channel counter equal the ground truth, for every primary
    model (which decides the referrer)."""
    rng = random.Random(seed)
    events = arrival_order(referral_contest(rng), rng)
    topology = Topology(visitor_rules=VisitorRules(primary_model=primary))
    publish(topology, events)
    topology.run(rng, loss_rate)

    truth = ground_truth((event for _, _, event in events), primary=primary)
    assert channel_buckets(topology) == {
        channel: days for channel, days in truth.buckets.items() if days
    }
    for customer_id, expected in truth.customers.items():
        record = topology.customers[customer_id]
        assert record.acquisition_channel(primary) == expected.channel
    assert_referral_tree(topology, truth)
