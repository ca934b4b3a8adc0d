"""Publish-to-gauge latency at fixed input rates: how long after an event is published
does the worker's ``/metrics`` show its effect, while a steady background load of a live
shop's events arrives at 500, 1,000, 2,000 ... events/s.

Each rate step has an ``ltvcac worker`` process of its own on fresh topics (unique
prefix, app id and Redis key prefix). The embedded broker (Tansu 0.6, memory storage)
keeps each produced batch as one object and lists every object of a partition on every
fetch (``DynoStore::fetch`` in tansu-storage/src/dynostore.rs), so its cost per fetch
grows with the partition's history, which no Kafka broker does: steps sharing topics
measured the broker's growing history as much as the worker (three 2,000 events/s steps
in a row: broker CPU 0.30 -> 0.63 cores, worker flat, p99 0.80 -> 1.25 -> 1.77 s). Each
step publishes the background mix of
``bench.live_events`` at its rate with one aiokafka producer (linger 5 ms, acks=1), paced
by the monotonic clock, and among it three kinds of probe, 5 per second each, on two
channels that only probes touch, so that each probe moves one gauge by a known amount
and nothing else moves it:

- ``ad spend``: an ad_spend of 1.00 on channel ``probe-acquire``, read by the channels
  agent straight from the ad-spend topic (one stage). Gauge:
  ``ltvcac_spend{window="lifetime"}``, up 1.00 per probe.
- ``repeat purchase``: an order of 10.00 (cost of goods 0.00) by the one customer of
  channel ``probe-repeat`` (acquired before the step by a click and a first order):
  customers agent -> channel-deltas -> channels agent (two stages). Gauge:
  ``ltvcac_lifetime_value{model="last_touch",method="historical"}``, the channel's gross
  profit per customer, up 10.00 per probe.
- ``new customer``: the first order of a new customer whose visitor clicked an ad of
  ``probe-acquire`` before the step (seeded clicks, so that during the step that
  channel's spend moves with the spend probes only): customers -> visitor-updates ->
  visitors (attribution) -> customer-updates -> customers -> channel-deltas -> channels
  (five stages, the acquisition path). Gauge:
  ``ltvcac_new_customers{window="lifetime",model="last_touch"}``, up 1 per probe.

Each step reads the gauges' values once its seeds show and counts from there. Only two
probe channels: each channel adds about 300 series to every scrape, and scrape cost is
what this benchmark has to keep small (below).

The probes of one path are keyed so that every stage reads them in publish order (one
customer, one channel, or ids chosen to hash to one partition of each topic), so the
gauge reaching the k-th expected value means exactly that the k-th probe is applied.

A probe's publish time is when the producer's ``send`` future resolved with the broker's
ack: from then on the event is stored and readable, which is what a shop backend calls
published; the time before it is the producer's own batching (its linger), not the
service's. Latencies from the ``send`` call are kept in the raw data beside them.

A thread scrapes ``/metrics`` every ``scrape_interval`` and a probe counts as seen at the
end of the first scrape that shows its step: the figures are an upper bound, late by at
most one scrape interval plus one scrape (both reported). A scrape is not cheap for the
worker: it computes the figures of every channel that changed and formats some 3,000
series (about 300 per channel, 330 kB), 40-70 ms of its single event loop on a shared
2-core machine, during which no agent runs. Scraped every 20 ms at 500 events/s, the
worker spent three quarters of the step answering scrapes, fell behind and showed a p99
five times the one at 250 ms; so the default interval is 250 ms: a coarser resolution,
and a measurement that loads the worker about a fifth (the share of each step spent
answering scrapes is reported, as is the CPU the worker used). Prometheus
scrapes every 15 s or so.

After each step: the input rate achieved (messages acked / first send to last ack), the
consumer lag on ``/metrics`` (``ltvcac_consumer_lag_messages``, end offset - committed,
summed; it includes what is handled but not committed yet, up to one commit interval),
and the source events published but not yet counted in ``ltvcac_events_total`` (what the
worker has really not handled yet). The next step starts once the worker has caught up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import re
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaProducer

from bench.common import RESULTS_DIR, BenchError, Section, cpu_seconds, run_async, wait_for
from bench.live_events import (
    BackgroundMix,
    Outgoing,
    click,
    encoded,
    ids_in_partition,
    purchase,
    spend,
)
from bench.pipeline import PipelineOptions, _delete_keys, log_problems, worker_env
from schemas.topics import AD_CLICKS, AD_SPEND, PURCHASES
from stream.config import Settings
from stream.devstack import StackEndpoints
from stream.kafka_admin import ensure_topics
from stream.worker_process import WorkerProcess

log = logging.getLogger("bench.latency")

TITLE = "publish-to-gauge latency"
COLUMNS = [
    "rate",
    "path",
    "achieved rate",
    "probes",
    "p50",
    "p95",
    "p99",
    "max",
    "lag at end",
    "unhandled at end",
]
PARTITIONS = 4
PROBES_PER_SECOND = 5  # per path: 100 probes in a 20 s step, enough for a p99
SCRAPE_INTERVAL = 0.25  # see the module docstring: every scrape stalls the worker
LINGER_MS = 5
MODEL = "last_touch"  # the worker's default primary model; one touch weighs 1 in all
SOURCE_TOPICS = (PURCHASES.name, AD_CLICKS.name, AD_SPEND.name)
PROBE_AMOUNT = Decimal("10.00")
PROBE_SPEND = Decimal("1.00")
PROBE_CLICK_COST = Decimal("0.01")
SEED_LEAD = dt.timedelta(minutes=2)
_TOLERANCE = 1e-6  # gauges are floats of exact cents
_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


# -- what /metrics shows ---------------------------------------------------------------

SeriesKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass(frozen=True)
class Snapshot:
    """What one scrape showed: the probe channels' series, the summed consumer lag, and
    the events handled per source topic; ``started``/``ended`` on the monotonic clock."""

    started: float
    ended: float
    probes: dict[SeriesKey, float]
    lag: float | None
    handled: dict[str, float]
    dead_letters: float

    def value(self, series: SeriesKey) -> float:
        """The series' value; 0 while it is absent (no such figure yet)."""
        return self.probes.get(series, 0.0)


def parse_metrics(text: str, started: float, ended: float) -> Snapshot:
    """Only the lines the benchmark reads: a full parse would cost more than the scrape."""
    probes: dict[SeriesKey, float] = {}
    handled: dict[str, float] = {}
    lag: float | None = None
    dead = 0.0
    for line in text.splitlines():
        if not line.startswith("ltvcac_"):
            continue
        probe = 'channel="probe-' in line
        lagging = line.startswith("ltvcac_consumer_lag_messages{")
        counted = line.startswith(("ltvcac_events_total{", "ltvcac_dead_letters_total{"))
        if not (probe or lagging or counted):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, value = match["name"], float(match["value"])
        labels = dict(_LABEL.findall(match["labels"] or ""))
        if probe:
            probes[(name, frozenset(labels.items()))] = value
        elif lagging:
            lag = (lag or 0.0) + value
        elif name == "ltvcac_events_total":
            handled[labels["topic"]] = handled.get(labels["topic"], 0.0) + value
        else:
            dead += value
    return Snapshot(started, ended, probes, lag, handled, dead)


class GaugeWatch:
    """Scrapes ``/metrics`` every ``interval`` seconds in a thread of its own (so the
    producer's event loop is never held up by it) and keeps every snapshot."""

    def __init__(self, url: str, interval: float) -> None:
        self.url = url
        self.interval = interval
        self.snapshots: list[Snapshot] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gauge-watch", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)

    def since(self, moment: float) -> list[Snapshot]:
        """Snapshots of scrapes that started at or after ``moment``, oldest first."""
        with self._lock:
            return [s for s in self.snapshots if s.started >= moment]

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self.snapshots[-1] if self.snapshots else None

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    text = response.read().decode()
                ended = time.monotonic()
                snapshot = parse_metrics(text, started, ended)
                with self._lock:
                    self.snapshots.append(snapshot)
            except OSError:
                self.failures += 1  # the step's checks notice a worker that is gone
            # a fixed cadence, not a fixed pause: a slow scrape does not shift the next
            next_at = max(next_at + self.interval, time.monotonic())
            self._stop.wait(next_at - time.monotonic())


# -- the probes ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbePath:
    """One way into the gauges: the series a probe moves, its value before the first
    probe and its step per probe, and where in each probe interval its probes fall."""

    name: str
    series: SeriesKey
    base: float
    per_probe: float
    phase: float  # fraction of the probe interval

    def expected(self, number: int) -> float:
        """The gauge once probes 1..``number`` are applied."""
        return self.base + number * self.per_probe


@dataclass(frozen=True)
class Probe:
    path: int  # index into the step's paths
    number: int  # 1, 2, ... within its path


ACQUIRE_CHANNEL = "probe-acquire"  # moved by the ad spend and new customer probes
REPEAT_CHANNEL = "probe-repeat"  # moved by the repeat purchase probes
REPEAT_CUSTOMER, REPEAT_VISITOR = "c-probe-repeat", "v-probe-repeat"
LIFETIME = {"window": "lifetime"}


def _series(name: str, channel: str, **labels: str) -> SeriesKey:
    return name, frozenset({"channel": channel, **labels}.items())


ACQUIRE_SPEND = _series("ltvcac_spend", ACQUIRE_CHANNEL, **LIFETIME)
REPEAT_SPEND = _series("ltvcac_spend", REPEAT_CHANNEL, **LIFETIME)
REPEAT_LTV = _series("ltvcac_lifetime_value", REPEAT_CHANNEL, model=MODEL, method="historical")
NEW_CUSTOMERS = _series("ltvcac_new_customers", ACQUIRE_CHANNEL, **LIFETIME, model=MODEL)
# Two channels for three paths: each probe channel adds some 300 series to every
# scrape. The clicks of the new customers are seeded before the step, so during it the
# acquisition channel's spend moves with the spend probes only.
PATHS = (
    ProbePath("ad spend", ACQUIRE_SPEND, 0.0, float(PROBE_SPEND), 0.0),
    ProbePath("repeat purchase", REPEAT_LTV, 0.0, float(PROBE_AMOUNT), 1 / 3),
    ProbePath("new customer", NEW_CUSTOMERS, 0.0, 1.0, 2 / 3),
)


@dataclass
class StepPlan:
    """The probes of one rate step and the seed events that prepare them: clicks for the
    step's new customers and the repeat customer's click and first order, with the gauge
    values that show the seeds applied."""

    tag: str
    seed_clicks: list[Outgoing]
    seed_orders: list[Outgoing]
    probes: list[tuple[Outgoing, Probe]]
    clicks_shown: list[tuple[SeriesKey, float]]
    orders_shown: list[tuple[SeriesKey, float]]
    paths: list[ProbePath] = field(default_factory=list)  # with their values once seeded


def plan_step(tag: str, seconds: float, start: dt.datetime, before: Snapshot) -> StepPlan:
    """Seeds and probes of the step ``tag`` lasting ``seconds``; ``before``: a scrape
    taken before its seeds were published."""
    count = max(1, round(seconds * PROBES_PER_SECOND))
    # Every stage reads one partition of each topic for these: probes stay in order.
    customers = ids_in_partition(f"c-probe-{tag}", count, PARTITIONS)
    visitors = ids_in_partition(f"v-probe-{tag}", count, PARTITIONS)
    # Seeds happened well before the step in event time: a probe order in the seed's
    # second could otherwise count as the customer's first (earliest) order.
    clicked_at, ordered_at = start - SEED_LEAD, start - SEED_LEAD / 2
    clicks = [_probe_click(f"{tag}-{v}", v, ACQUIRE_CHANNEL, clicked_at) for v in visitors]
    clicks_shown = [(ACQUIRE_SPEND, before.value(ACQUIRE_SPEND) + count * float(PROBE_CLICK_COST))]
    orders: list[Outgoing] = []
    orders_shown: list[tuple[SeriesKey, float]] = []
    if before.value(REPEAT_LTV) == 0:  # acquire the repeat customer
        clicks.append(_probe_click(tag, REPEAT_VISITOR, REPEAT_CHANNEL, clicked_at))
        clicks_shown.append((REPEAT_SPEND, float(PROBE_CLICK_COST)))
        first = _probe_order(f"{tag}-0", REPEAT_CUSTOMER, ordered_at, REPEAT_VISITOR)
        orders.append(encoded(PURCHASES, REPEAT_CUSTOMER, first, 0.0))
        orders_shown.append((REPEAT_LTV, float(PROBE_AMOUNT)))
    interval = 1 / PROBES_PER_SECOND
    probes: list[tuple[Outgoing, Probe]] = []
    for number in range(1, count + 1):
        for index, path in enumerate(PATHS):
            due = (number - 1 + path.phase) * interval
            at = start + dt.timedelta(seconds=due)
            event_id = f"{tag}-{index}-{number}"
            if index == 0:
                event = spend(f"e-probe-{event_id}", ACQUIRE_CHANNEL, "media", PROBE_SPEND, at)
                message = encoded(AD_SPEND, ACQUIRE_CHANNEL, event, due)
            else:
                customer, visitor = (
                    (REPEAT_CUSTOMER, None)
                    if index == 1
                    else (customers[number - 1], visitors[number - 1])
                )
                event = _probe_order(event_id, customer, at, visitor)
                message = encoded(PURCHASES, customer, event, due)
            probes.append((message, Probe(index, number)))
    return StepPlan(tag, clicks, orders, probes, clicks_shown, orders_shown)


def _probe_order(
    event_id: str, customer: str, at: dt.datetime, visitor: str | None
) -> dict[str, Any]:
    """An order whose gross profit is its amount (no cost of goods)."""
    order, goods = f"o-probe-{event_id}", Decimal("0.00")
    return purchase(f"e-probe-{event_id}", customer, order, PROBE_AMOUNT, at, goods, visitor)


def _probe_click(event_id: str, visitor: str, channel: str, at: dt.datetime) -> Outgoing:
    event = click(f"e-probe-{event_id}", visitor, channel, "probe", PROBE_CLICK_COST, at)
    return encoded(AD_CLICKS, visitor, event, 0.0)


# -- publishing ------------------------------------------------------------------------


@dataclass
class PaceLog:
    """What the paced producer did: when each probe's send was called and acked, how
    many messages went out per topic, and over what time (monotonic clock)."""

    sent_at: dict[tuple[int, int], float] = field(default_factory=dict)
    acked_at: dict[tuple[int, int], float] = field(default_factory=dict)
    published: Counter[str] = field(default_factory=Counter)
    first_send: float = 0.0
    last_send: float = 0.0
    last_ack: float = 0.0
    behind_at_end: float = 0.0  # seconds the last send was called after it was due

    @property
    def achieved_rate(self) -> float:
        span = self.last_ack - self.first_send
        return sum(self.published.values()) / span if span > 0 else 0.0


def _producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=LINGER_MS, acks=1)


async def publish_now(bootstrap: str, prefix: str, messages: Sequence[Outgoing]) -> None:
    """Send ``messages`` and wait for every ack."""
    producer = _producer(bootstrap)
    try:  # start() inside: a deadline may cancel it halfway
        await producer.start()
        acks = [await producer.send(prefix + m.contract.name, m.value, key=m.key) for m in messages]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def publish_paced(
    bootstrap: str, prefix: str, schedule: Sequence[tuple[Outgoing, Probe | None]]
) -> PaceLog:
    """Send each message when it is due (``due`` seconds after the first), by the
    monotonic clock; record the probes' send and ack times."""
    producer = _producer(bootstrap)
    paced = PaceLog()
    try:
        await producer.start()
        acks = []
        began = time.monotonic()
        paced.first_send = began
        for message, probe in schedule:
            delay = began + message.due - time.monotonic()
            if delay > 0.001:  # a millisecond early is on time: no sleep per message
                await asyncio.sleep(delay)
            called = time.monotonic()
            ack = await producer.send(
                prefix + message.contract.name, message.value, key=message.key
            )
            if probe is not None:
                key = (probe.path, probe.number)
                paced.sent_at[key] = called
                ack.add_done_callback(lambda _, key=key: _acked(paced, key))
            paced.published[message.contract.name] += 1
            acks.append(ack)
        paced.last_send = time.monotonic()
        paced.behind_at_end = paced.last_send - (began + schedule[-1][0].due)
        await asyncio.gather(*acks)
        paced.last_ack = time.monotonic()
    finally:
        await producer.stop()
    return paced


def _acked(paced: PaceLog, key: tuple[int, int]) -> None:
    paced.acked_at[key] = time.monotonic()


def merged_schedule(
    background: Iterable[Outgoing], probes: Iterable[tuple[Outgoing, Probe]]
) -> list[tuple[Outgoing, Probe | None]]:
    items: list[tuple[Outgoing, Probe | None]] = [(m, None) for m in background]
    items.extend(probes)
    items.sort(key=lambda item: item[0].due)  # stable: a probe follows its equal-due peer
    return items


# -- one rate step ---------------------------------------------------------------------


@dataclass
class StepResult:
    rate: int
    seconds: float
    paced: PaceLog
    latencies: dict[str, list[float]]  # path -> seconds from ack to seen, per seen probe
    from_send: dict[str, list[float]]  # path -> seconds from the send call to seen
    unseen: dict[str, int]
    lag_at_end: float | None
    unhandled_at_end: int | None
    caught_up_after: float | None
    scrapes: list[float]  # seconds each scrape of the step took
    scrape_gaps: list[float]  # seconds between the starts of consecutive scrapes
    worker_cpu: float | None = None  # CPU seconds per second the worker used in the step

    @property
    def scrape_share(self) -> float:
        """Share of the step the worker spent answering scrapes (their wall time)."""
        span = self.paced.last_ack - self.paced.first_send
        return sum(self.scrapes) / span if span > 0 else 0.0


@dataclass
class Run:
    """State of a step: the worker, its watcher, the background's customers and what has
    been published per source topic so far."""

    bootstrap: str
    prefix: str
    worker: WorkerProcess
    watch: GaugeWatch
    timeout: float
    mix: BackgroundMix = field(default_factory=lambda: BackgroundMix(seed=1))
    published: Counter[str] = field(default_factory=Counter)

    def context(self) -> str:
        return f"worker log tail:\n{self.worker.log_tail()}"

    def fresh(self) -> Snapshot | None:
        if not self.worker.running:
            raise BenchError(f"the worker exited; {self.context()}")
        return self.watch.latest()

    def first_scrape_after(self, moment: float) -> Snapshot | None:
        self.fresh()
        return next(iter(self.watch.since(moment)), None)

    def publish(self, messages: Sequence[Outgoing], what: str) -> None:
        run_async(publish_now(self.bootstrap, self.prefix, messages), self.timeout, what)
        self.published.update(m.contract.name for m in messages)

    def wait_for_gauges(self, targets: list[tuple[SeriesKey, float]], what: str) -> None:
        def reached() -> bool | None:
            latest = self.fresh()
            if latest is None:
                return None
            done = all(latest.value(key) >= value - _TOLERANCE for key, value in targets)
            return True if done else None

        wait_for(reached, self.timeout, what, SCRAPE_INTERVAL, self.context)

    def unhandled(self, snapshot: Snapshot) -> int:
        """Source events published but not counted as handled at ``snapshot``."""
        return int(sum(self.published[t] - snapshot.handled.get(t, 0.0) for t in SOURCE_TOPICS))


def run_step(run: Run, rate: int, seconds: float) -> StepResult:
    tag = f"r{rate}-{uuid.uuid4().hex[:4]}"
    start = dt.datetime.now(dt.UTC)
    before, _ = wait_for(run.fresh, run.timeout, "a first scrape", SCRAPE_INTERVAL, run.context)
    plan = plan_step(tag, seconds, start, before)
    run.publish(plan.seed_clicks, f"seeding the probe channels of step {tag}")
    run.wait_for_gauges(plan.clicks_shown, f"the seed clicks of step {tag} to show")
    if plan.seed_orders:
        run.publish(plan.seed_orders, "the first order of the repeat probe customer")
        run.wait_for_gauges(plan.orders_shown, "the repeat probe customer to show")
    seeded, _ = wait_for(run.fresh, run.timeout, "a scrape", SCRAPE_INTERVAL, run.context)
    plan.paths = [replace(path, base=seeded.value(path.series)) for path in PATHS]
    # Generated before the clock starts; event time is when generation began, a few
    # seconds before publication, as with any producer that buffers.
    schedule = merged_schedule(run.mix.events(rate, seconds, start), plan.probes)
    log.info("step %s: %d events at %d/s for %.0fs", tag, len(schedule), rate, seconds)
    cpu_before = cpu_seconds(run.worker.pid)
    paced = run_async(
        publish_paced(run.bootstrap, run.prefix, schedule),
        seconds + run.timeout,
        f"publishing step {tag}",
    )
    cpu_used = _difference(cpu_seconds(run.worker.pid), cpu_before)
    run.published.update(paced.published)
    at_end, _ = wait_for(
        lambda: run.first_scrape_after(paced.last_ack),
        run.timeout,
        "a scrape after the last message of the step",
        SCRAPE_INTERVAL,
        run.context,
    )
    seen = _await_probes(run, plan, paced)
    caught_up = _await_caught_up(run, paced.last_ack)
    result = _step_result(run, rate, seconds, plan, paced, seen, at_end, caught_up)
    span = paced.last_ack - paced.first_send
    result.worker_cpu = None if cpu_used is None or span <= 0 else cpu_used / span
    return result


def _difference(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def _await_probes(run: Run, plan: StepPlan, paced: PaceLog) -> dict[tuple[int, int], float]:
    """When each probe was first seen; stops at the deadline with whatever was seen."""
    total = len(plan.probes)
    deadline = time.monotonic() + run.timeout
    while True:
        seen = first_seen(plan.paths, run.watch.since(paced.first_send), total)
        if len(seen) == total or time.monotonic() >= deadline or not run.worker.running:
            return seen
        time.sleep(0.2)  # poll interval while the remaining probes travel


def first_seen(
    paths: Sequence[ProbePath], snapshots: Sequence[Snapshot], total: int
) -> dict[tuple[int, int], float]:
    """(path, probe number) -> end of the first scrape whose gauge includes the probe."""
    per_path = total // len(paths)
    seen: dict[tuple[int, int], float] = {}
    for index, path in enumerate(paths):
        number = 1
        for snapshot in snapshots:
            value = snapshot.value(path.series)
            while number <= per_path and value >= path.expected(number) - _TOLERANCE:
                seen[(index, number)] = snapshot.ended
                number += 1
    return seen


def _await_caught_up(run: Run, since: float) -> float | None:
    """Seconds from ``since`` to the first scrape at which every published source event
    was handled; None if that did not happen within the timeout."""

    def caught_up() -> float | None:
        run.fresh()  # fails early when the worker is gone
        done = (s for s in run.watch.since(since) if run.unhandled(s) <= 0)
        return next((s.ended for s in done), None)

    try:
        at, _ = wait_for(caught_up, run.timeout, "the worker to catch up", 0.2)
    except BenchError:
        return None
    return max(0.0, at - since)


def _step_result(
    run: Run,
    rate: int,
    seconds: float,
    plan: StepPlan,
    paced: PaceLog,
    seen: dict[tuple[int, int], float],
    at_end: Snapshot,
    caught_up: float | None,
) -> StepResult:
    latencies: dict[str, list[float]] = {path.name: [] for path in plan.paths}
    from_send: dict[str, list[float]] = {path.name: [] for path in plan.paths}
    unseen: Counter[str] = Counter()
    for _, probe in plan.probes:
        key, name = (probe.path, probe.number), plan.paths[probe.path].name
        if key not in seen or key not in paced.acked_at:
            unseen[name] += 1
            continue
        latencies[name].append(seen[key] - paced.acked_at[key])
        from_send[name].append(seen[key] - paced.sent_at[key])
    step_scrapes = [s for s in run.watch.since(paced.first_send) if s.ended <= paced.last_ack]
    return StepResult(
        rate,
        seconds,
        paced,
        latencies,
        from_send,
        dict(unseen),
        at_end.lag,
        run.unhandled(at_end),
        caught_up,
        [s.ended - s.started for s in step_scrapes],
        [b.started - a.started for a, b in itertools.pairwise(step_scrapes)],
    )


# -- the section -----------------------------------------------------------------------

PERCENTILES = (50, 95, 99)


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank: always an observed latency) and max, in seconds."""
    if not values:
        return {}
    array = np.asarray(values)
    figures = {f"p{q}": float(np.percentile(array, q, method="inverted_cdf")) for q in PERCENTILES}
    figures["max"] = float(array.max())
    return figures


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _cores(cores: float | None) -> str:
    return "-" if cores is None else f"{cores:.2f} cores"


def _rows(result: StepResult) -> list[list[str]]:
    rows = []
    for path, values in result.latencies.items():
        figures = percentiles(values)
        unseen = result.unseen.get(path, 0)
        probes = f"{len(values)}" + (f" (+{unseen} unseen)" if unseen else "")
        rows.append(
            [
                f"{result.rate:,}",
                path,
                f"{result.paced.achieved_rate:,.0f}",
                probes,
                *(_ms(figures.get(name)) for name in ("p50", "p95", "p99", "max")),
                "-" if result.lag_at_end is None else f"{result.lag_at_end:,.0f}",
                "-" if result.unhandled_at_end is None else f"{result.unhandled_at_end:,}",
            ]
        )
    return rows


def _step_data(result: StepResult) -> dict[str, Any]:
    def rounded(figures: dict[str, float]) -> dict[str, float]:
        return {k: round(v, 4) for k, v in figures.items()}

    scrapes = percentiles(result.scrapes)
    gaps = percentiles(result.scrape_gaps)
    send_to_ack = [
        result.paced.acked_at[k] - result.paced.sent_at[k]
        for k in result.paced.acked_at
        if k in result.paced.sent_at
    ]
    return {
        "rate": result.rate,
        "seconds": result.seconds,
        "achieved_rate": round(result.paced.achieved_rate, 1),
        "published": dict(result.paced.published),
        "behind_schedule_at_end_seconds": round(result.paced.behind_at_end, 4),
        "latency_from_ack_seconds": {
            p: rounded(percentiles(v)) for p, v in result.latencies.items()
        },
        "latency_from_send_seconds": {
            p: rounded(percentiles(v)) for p, v in result.from_send.items()
        },
        "probe_send_to_ack_seconds": rounded(percentiles(send_to_ack)),
        "unseen_probes": result.unseen,
        "consumer_lag_at_end": result.lag_at_end,
        "unhandled_source_events_at_end": result.unhandled_at_end,
        "caught_up_after_seconds": None
        if result.caught_up_after is None
        else round(result.caught_up_after, 3),
        "worker_cpu_cores": None if result.worker_cpu is None else round(result.worker_cpu, 3),
        "scrape_share_of_step": round(result.scrape_share, 3),
        "scrapes": len(result.scrapes),
        "scrape_seconds": rounded(scrapes),
        "scrape_interval_seconds": rounded(gaps),
        "raw_latencies_from_ack_seconds": {
            p: [round(v, 4) for v in values] for p, values in result.latencies.items()
        },
    }


def _notes(results: Sequence[StepResult], scrape_interval: float) -> list[str]:
    notes = [
        "latency = end of the first /metrics scrape showing the probe's step minus the "
        "broker's ack of the probe; upper bound, late by at most one scrape interval "
        f"({scrape_interval * 1000:.0f} ms) plus one scrape",
        "paths: ad spend (ad-spend -> channels), repeat purchase (purchases -> customers "
        "-> channel-deltas -> channels), new customer (purchases -> customers -> "
        "visitor-updates -> visitors -> customer-updates -> customers -> channel-deltas "
        "-> channels)",
        "lag at end: sum of ltvcac_consumer_lag_messages (end offset - committed) at the "
        "first scrape after the last ack of the step; unhandled at end: source events "
        "published but not yet in ltvcac_events_total at that scrape",
    ]
    for result in results:
        scrapes = percentiles(result.scrapes)
        caught = (
            "never (timeout)"
            if result.caught_up_after is None
            else (f"{result.caught_up_after:.2f}s")
        )
        notes.append(
            f"{result.rate:,}/s: caught up {caught} after the last ack; "
            f"{len(result.scrapes)} scrapes, each p50 {_ms(scrapes.get('p50'))} "
            f"max {_ms(scrapes.get('max'))} ({result.scrape_share:.0%} of the step spent "
            f"answering scrapes); worker CPU {_cores(result.worker_cpu)}; last send "
            f"{result.paced.behind_at_end * 1000:.0f} ms behind schedule"
        )
    return notes


def plot(results: Sequence[StepResult], path: Path) -> None:
    """Latency percentiles against the input rate, one colour per probe path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 5))
    names = list(results[0].latencies) if results else []
    styles = {"p50": ":", "p95": "-.", "p99": "-", "max": "--"}
    for colour, name in zip(("tab:blue", "tab:orange", "tab:green"), names, strict=False):
        for figure_name, style in styles.items():
            points = [
                (r.paced.achieved_rate, percentiles(r.latencies[name]).get(figure_name))
                for r in results
            ]
            xs = [x for x, y in points if y is not None]
            ys = [y for _, y in points if y is not None]
            axes.plot(xs, ys, style, marker="o", color=colour, label=f"{name} {figure_name}")
    axes.axhline(1.0, color="red", linewidth=0.8, label="target: p99 < 1 s")
    axes.set_xlabel("achieved input rate (events/s)")
    axes.set_ylabel("publish-to-gauge latency (s)")
    axes.set_yscale("log")
    axes.set_title("ltvcac publish-to-gauge latency")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def section(
    results: Sequence[StepResult], plot_name: str, extra: dict[str, Any], scrape_interval: float
) -> Section:
    return Section(
        TITLE,
        list(COLUMNS),
        [row for result in results for row in _rows(result)],
        notes=_notes(results, scrape_interval),
        data={"steps": [_step_data(r) for r in results], **extra},
        plots=[plot_name],
    )


# -- entry points ----------------------------------------------------------------------


def measure(
    endpoints: StackEndpoints,
    workdir: Path,
    rates: list[int],
    seconds: float,
    timeout: float,
    results_dir: Path = RESULTS_DIR,
    scrape_interval: float = SCRAPE_INTERVAL,
) -> list[Section]:
    """A step per rate, each with its own worker on its own topics (the module
    docstring says why); the section and ``latency.png`` in ``results_dir``."""
    results: list[StepResult] = []
    log_paths: list[Path] = []
    dead_letters: list[float | None] = []
    failed_scrapes = 0
    for number, rate in enumerate(rates, start=1):
        log_paths.append(workdir / f"latency-worker-{number}.log")
        result, watch = _measure_rate(
            endpoints, log_paths[-1], rate, seconds, timeout, scrape_interval
        )
        results.append(result)
        _log_step(result)
        latest = watch.latest()
        dead_letters.append(None if latest is None else latest.dead_letters)
        failed_scrapes += watch.failures
    plot_name = "latency.png"
    plot(results, results_dir / plot_name)
    extra = {
        "partitions": PARTITIONS,
        "probes_per_second_per_path": PROBES_PER_SECOND,
        "scrape_interval_seconds": scrape_interval,
        "producer": {"linger_ms": LINGER_MS, "acks": 1},
        "dead_letters_by_step": dead_letters,
        "failed_scrapes": failed_scrapes,
        "worker_log_problems": log_problems(log_paths),
    }
    return [section(results, plot_name, extra, scrape_interval)]


def _measure_rate(
    endpoints: StackEndpoints,
    log_path: Path,
    rate: int,
    seconds: float,
    timeout: float,
    scrape_interval: float,
) -> tuple[StepResult, GaugeWatch]:
    """One step on fresh topics (unique prefix, app id and Redis key prefix) with a
    worker of its own, stopped on every path out."""
    unique = uuid.uuid4().hex[:12]
    prefix = f"bench-latency-{unique[:8]}."
    env = worker_env(endpoints, prefix, PipelineOptions(PARTITIONS, timeout), unique)
    worker = WorkerProcess(env, log_path)
    watch = GaugeWatch(worker.metrics_url, scrape_interval)
    try:
        settings = Settings(
            kafka_bootstrap_servers=endpoints.kafka_bootstrap,
            topic_prefix=prefix,
            topic_partitions=PARTITIONS,
        )
        run_async(ensure_topics(settings), timeout, "creating topics")
        worker.start(timeout=timeout)
        watch.start()
        run = Run(endpoints.kafka_bootstrap, prefix, worker, watch, timeout)
        return run_step(run, rate, seconds), watch
    finally:
        watch.stop()
        worker.stop()
        _delete_keys(endpoints.redis_url, env["LTVCAC_REDIS_KEY_PREFIX"])


def _log_step(result: StepResult) -> None:
    for path, values in result.latencies.items():
        figures = percentiles(values)
        log.info(
            "%d/s %s: %d probes p50=%s p99=%s max=%s",
            result.rate,
            path,
            len(values),
            _ms(figures.get("p50")),
            _ms(figures.get("p99")),
            _ms(figures.get("max")),
        )
