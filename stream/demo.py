"""``ltvcac dev``: a simulated shop sending live traffic to a real worker, with a live table.

Two parts:

- `demo_events` is a pure, seeded traffic model of a small shop. Paid channels differ
  in click cost, conversion, order value, margin and repeat rate, so their LTV:CAC
  land on both sides of the 3:1 rule of thumb. On 180 days of history (historical
  LTV over CAC): ``search`` about 5-7, ``referral`` about 2.5, ``display`` about
  1.5 and ``social`` about 0.6; blended about 4. Younger histories show lower
  ratios, since historical LTV grows as customers come back.
  Organic (``direct``) customers buy without a click, referred visitors buy after a
  ``referral`` (its reward is referral spend), an agency invoices ``search`` weekly
  and a tool bills ``social`` monthly, and about 5% of orders are refunded in part
  or in full.
- `run_dev` starts the embedded broker and Redis (`DevStack`), a worker in a child
  process (`WorkerProcess`), replays the model through a real Kafka producer at a
  fixed rate (about 180 simulated days per minute at 200 events/s, then onwards),
  and prints the per-channel figures scraped from the worker's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import heapq
import itertools
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

import redis
from aiokafka import AIOKafkaProducer

from schemas.topics import AD_CLICKS, AD_SPEND, PURCHASES, REFERRALS
from stream.devstack import DevStack, free_port
from stream.errors import LtvCacError
from stream.worker_process import Sample, WorkerProcess, label_set

__all__ = ["DemoError", "DemoEvent", "demo_events", "render_table", "run_dev"]

JsonValue = str | int
# (topic, message key, event as a JSON object)
DemoEvent = tuple[str, str, dict[str, JsonValue]]

DAY = 86_400
HOUR = 3_600
CURRENCY = "USD"
REFUND_RATE = 0.05
REFERRALS_PER_DAY = 0.4
REFERRAL_REWARD = Decimal("10.00")
REFERRAL_PURCHASE_RATE = 0.7
SEARCH_AGENCY_FEE_PER_WEEK = Decimal("50.00")
SOCIAL_TOOL_FEE_PER_MONTH = Decimal("30.00")
RECLICK_RATE = 0.3  # converting visitors often come back through the same ad before buying
MAX_CLICK_TO_PURCHASE_DAYS = 20  # well inside the default 30-day attribution lookback


@dataclass(frozen=True)
class Profile:
    """How customers from one source behave."""

    order_value: float  # mean order amount; each order is 0.5x-1.5x of it
    margin: float  # typical gross margin of what they buy
    repeat: float  # probability that an order is followed by another one
    repeat_gap_days: float  # mean days between orders


@dataclass(frozen=True)
class PaidChannel:
    """A paid channel: clicks per day at a cost, a share of the clicking visitors buys."""

    name: str
    clicks_per_day: float
    cost_per_click: float  # mean; each click costs 0.5x-1.5x of it
    conversion: float
    buyer: Profile


# search: intent traffic, good baskets, loyal buyers -> LTV:CAC about 6 (incl. agency fee);
# display: average everything -> about 1.5; social: cheap clicks, impulse buys -> about 0.6
PAID_CHANNELS: tuple[PaidChannel, ...] = (
    PaidChannel("search", 14.0, 1.20, 0.12, Profile(100.0, 0.42, 0.72, 30.0)),
    PaidChannel("social", 24.0, 0.40, 0.025, Profile(35.0, 0.30, 0.15, 60.0)),
    PaidChannel("display", 12.0, 0.80, 0.045, Profile(60.0, 0.36, 0.45, 40.0)),
)
DIRECT_CUSTOMERS_PER_DAY = 0.8
DIRECT_BUYER = Profile(70.0, 0.35, 0.50, 40.0)
REFERRED_BUYER = Profile(70.0, 0.35, 0.50, 40.0)


@dataclass
class _Customer:
    customer_id: str
    profile: Profile
    orders: int = 0


@dataclass(order=True)
class _Scheduled:
    at: int
    seq: int
    action: Callable[[], DemoEvent] = field(compare=False)


def _timestamp(at: int) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(at: int) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).date().isoformat()


def _money(value: float | Decimal) -> Decimal:
    return Decimal(f"{value:.2f}")


class _Shop:
    """The simulation state behind `demo_events`; everything random comes from one RNG."""

    def __init__(self, seed: int, start: int) -> None:
        self._rng = random.Random(seed)
        self._tag = f"demo{seed}"
        self._start = start
        self._queue: list[_Scheduled] = []
        self._counters: dict[str, int] = {}
        self._seq = 0  # ties in time keep scheduling order
        self._referrers: list[str] = []  # customers with an order, who may refer friends

    def run(self, days: int) -> Iterator[DemoEvent]:
        for day in range(days):
            day_start = self._start + day * DAY
            self._plan_day(day, day_start)
            while self._queue and self._queue[0].at < day_start + DAY:
                yield heapq.heappop(self._queue).action()
        # Whatever is scheduled after the last day lies outside the simulated history.

    # -- identifiers and scheduling

    def _id(self, kind: str) -> str:
        number = self._counters.get(kind, 0) + 1
        self._counters[kind] = number
        return f"{self._tag}-{kind}{number:07d}"

    def _schedule(self, at: int, action: Callable[[], DemoEvent]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Scheduled(at, self._seq, action))

    def _event(self, event_type: str, at: int, **fields: JsonValue) -> dict[str, JsonValue]:
        return {
            "type": event_type,
            "event_id": self._id("e"),
            "occurred_at": _timestamp(at),
            "schema_version": 1,
            **fields,
        }

    def _poisson(self, mean: float) -> int:
        # Knuth's method: exact and fast enough for the small daily means used here.
        limit, count, product = math.exp(-mean), 0, self._rng.random()
        while product > limit:
            count += 1
            product *= self._rng.random()
        return count

    def _time_in_day(self, day_start: int) -> int:
        return day_start + self._rng.randrange(DAY)

    # -- what happens on a day

    def _plan_day(self, day: int, day_start: int) -> None:
        for channel in PAID_CHANNELS:
            for _ in range(self._poisson(channel.clicks_per_day)):
                at = self._time_in_day(day_start)
                self._schedule(at, functools.partial(self._click, channel, self._id("v"), at, True))
        for _ in range(self._poisson(DIRECT_CUSTOMERS_PER_DAY)):
            customer = _Customer(self._id("c"), DIRECT_BUYER)
            at = self._time_in_day(day_start)
            self._schedule(at, functools.partial(self._purchase, customer, at, None, None))
        if self._referrers:
            for _ in range(self._poisson(REFERRALS_PER_DAY)):
                at = self._time_in_day(day_start)
                self._schedule(at, functools.partial(self._referral, at))
        # Invoices for the period just ended, so the spend lands on days already seen.
        if day > 0 and day % 7 == 0:
            self._invoice(day_start + HOUR, "search", "agency", SEARCH_AGENCY_FEE_PER_WEEK, 7)
        if day > 0 and day % 30 == 0:
            self._invoice(day_start + 2 * HOUR, "social", "tools", SOCIAL_TOOL_FEE_PER_MONTH, 30)

    def _invoice(self, at: int, channel: str, category: str, amount: Decimal, days: int) -> None:
        """Spend for the ``days`` before the day of ``at``."""
        today = at - (at - self._start) % DAY
        period = (_date(today - days * DAY), _date(today - DAY))
        self._schedule(at, functools.partial(self._spend, at, channel, category, amount, period))

    def _click(self, channel: PaidChannel, visitor_id: str, at: int, first: bool) -> DemoEvent:
        cost = _money(channel.cost_per_click * self._rng.uniform(0.5, 1.5))
        event = self._event(
            "ad_click",
            at,
            visitor_id=visitor_id,
            channel=channel.name,
            campaign=f"{channel.name}-{self._rng.choice(('brand', 'generic', 'retarget'))}",
            cost=f"{cost}",
            currency=CURRENCY,
        )
        if first and self._rng.random() < channel.conversion:
            buy_at = self._conversion_time(at)
            if self._rng.random() < RECLICK_RATE:
                again = self._rng.randint(at, buy_at - 1)
                self._schedule(
                    again, functools.partial(self._click, channel, visitor_id, again, False)
                )
            customer = _Customer(self._id("c"), channel.buyer)
            self._schedule(
                buy_at, functools.partial(self._purchase, customer, buy_at, visitor_id, None)
            )
        return (AD_CLICKS.name, visitor_id, event)

    def _conversion_time(self, touched_at: int) -> int:
        # At least two simulated hours (tens of milliseconds in the replay), so the touch is
        # normally handled before the purchase's conversion reaches the visitor.
        delay = 2 * HOUR + int(self._rng.expovariate(1 / DAY))
        return touched_at + min(delay, MAX_CLICK_TO_PURCHASE_DAYS * DAY)

    def _referral(self, at: int) -> DemoEvent:
        referrer = self._rng.choice(self._referrers)
        visitor_id = self._id("v")
        event = self._event(
            "referral",
            at,
            referrer_customer_id=referrer,
            referred_visitor_id=visitor_id,
            reward_cost=f"{REFERRAL_REWARD}",
            currency=CURRENCY,
        )
        if self._rng.random() < REFERRAL_PURCHASE_RATE:
            buy_at = self._conversion_time(at)
            customer = _Customer(self._id("c"), REFERRED_BUYER)
            code = f"ref-{referrer}"
            self._schedule(
                buy_at, functools.partial(self._purchase, customer, buy_at, visitor_id, code)
            )
        return (REFERRALS.name, visitor_id, event)

    def _spend(
        self, at: int, channel: str, category: str, amount: Decimal, period: tuple[str, str]
    ) -> DemoEvent:
        event = self._event(
            "ad_spend",
            at,
            channel=channel,
            amount=f"{amount}",
            currency=CURRENCY,
            category=category,
            period_start=period[0],
            period_end=period[1],
        )
        return (AD_SPEND.name, channel, event)

    def _purchase(
        self, customer: _Customer, at: int, visitor_id: str | None, referral_code: str | None
    ) -> DemoEvent:
        profile = customer.profile
        amount = _money(max(5.0, profile.order_value * self._rng.uniform(0.5, 1.5)))
        fields: dict[str, JsonValue] = {
            "customer_id": customer.customer_id,
            "order_id": self._id("o"),
            "amount": f"{amount}",
            "currency": CURRENCY,
        }
        margin = min(0.9, max(0.05, self._rng.gauss(profile.margin, 0.05)))
        basis = self._rng.random()
        # Shops send cost of goods, a margin or nothing (the worker then assumes its default).
        if basis < 0.45:
            fields["cost_of_goods"] = f"{_money(float(amount) * (1 - margin))}"
        elif basis < 0.70:
            fields["margin"] = f"{margin:.3f}"
        if visitor_id is not None and customer.orders == 0:
            fields["visitor_id"] = visitor_id
        if referral_code is not None and customer.orders == 0:
            fields["referral_code"] = referral_code
        event = self._event("purchase", at, **fields)
        customer.orders += 1
        if customer.orders == 1:
            self._referrers.append(customer.customer_id)
        if self._rng.random() < REFUND_RATE:
            refund_at = at + DAY + self._rng.randrange(13 * DAY)
            refund = self._refund_amount(amount)
            self._schedule(
                refund_at,
                functools.partial(
                    self._refund, customer, str(fields["order_id"]), refund, refund_at
                ),
            )
        if self._rng.random() < profile.repeat:
            # A later simulated day: at least one day after this order.
            next_at = at + DAY + int(self._rng.expovariate(1 / (profile.repeat_gap_days * DAY)))
            self._schedule(
                next_at, functools.partial(self._purchase, customer, next_at, None, None)
            )
        return (PURCHASES.name, customer.customer_id, event)

    def _refund_amount(self, amount: Decimal) -> Decimal:
        if self._rng.random() < 0.4:
            return amount
        return max(Decimal("0.01"), _money(float(amount) * self._rng.uniform(0.1, 0.6)))

    def _refund(self, customer: _Customer, order_id: str, amount: Decimal, at: int) -> DemoEvent:
        event = self._event(
            "refund",
            at,
            customer_id=customer.customer_id,
            order_id=order_id,
            amount=f"{amount}",
            currency=CURRENCY,
        )
        return (PURCHASES.name, customer.customer_id, event)


def demo_events(seed: int, start: dt.datetime, days: int) -> Iterator[DemoEvent]:
    """The shop's events over ``days`` simulated days from ``start``, in event-time order.

    Pure and deterministic: the same arguments give the same events. Each item is
    ``(topic, key, event)``; ``event`` is a JSON object valid under `schemas.events`,
    ``key`` equals the field the topic contract keys by. Identifiers embed the seed,
    so runs with different seeds never share ids. Lazy: ``days`` may be large.
    A naive ``start`` is taken as UTC.
    """
    if days < 0:
        raise ValueError(f"days must be >= 0, got {days}")
    moment = start if start.tzinfo is not None else start.replace(tzinfo=dt.UTC)
    return _Shop(seed, int(moment.timestamp())).run(days)


# -- ltvcac dev: broker, Redis, worker, producer and a live table

DEMO_SEED = 7
REDIS_KEY_PREFIX = "ltvcac-demo:"
HISTORY_DAYS = 180  # replayed first; at 200 events/s that takes about a minute
TOPIC_PARTITIONS = 4
SESSION_TIMEOUT_SECONDS = 10
# Simulated time runs about three days per second at 200 events/s. Until the worker has
# joined its consumer group (ten seconds or more) the traffic piles up, and the worker
# reads that backlog topic by topic: the lateness covers the simulated weeks it spans.
LATENESS_SECONDS = 90 * DAY
REFRESH_SECONDS = 2.0
FIT_INTERVAL_SECONDS = 30  # the predictive LTV appears within a minute, and follows the shop
PRODUCE_TICK_SECONDS = 0.05
SCRAPE_FAILURES_TOLERATED = 3  # a busy worker may miss one scrape; three in a row is dead
CATCH_UP_SECONDS = 15.0
QUIET_SECONDS = 2.0  # several consumer fetch waits (500 ms each by default)
SOURCE_TOPICS = (PURCHASES.name, AD_CLICKS.name, REFERRALS.name, AD_SPEND.name)
ABSENT = "—"


class DemoError(LtvCacError):
    """The demo could not go on: the worker, the broker or Redis failed."""


@dataclass
class _Progress:
    sent: int = 0
    simulated_at: str = ""
    signals: int = 0  # Ctrl-C / SIGTERM received while the loop runs


@dataclass(frozen=True)
class _Setup:
    rate: float
    metrics_url: str
    redis_url: str
    log_path: Path


def _endless_events(seed: int, start: dt.datetime) -> Iterator[DemoEvent]:
    """Simulated days for as long as anyone watches; each chunk has its own ids."""
    chunk_days = 100 * 365
    for chunk in itertools.count():
        chunk_start = start + dt.timedelta(days=chunk * chunk_days)
        yield from demo_events(seed + chunk, chunk_start, chunk_days)


def _value(samples: dict[Sample, float], name: str, **labels: str) -> float | None:
    return samples.get((name, label_set(**labels)))


def _any(samples: dict[Sample, float], name: str, **labels: str) -> float | None:
    """The value of a series of ``name`` whose labels include ``labels``: payback has one
    series per channel, window and model, with a ``basis`` label besides."""
    wanted = set(labels.items())
    return next((v for (n, found), v in samples.items() if n == name and wanted <= found), None)


def _total(samples: dict[Sample, float], name: str, **labels: str) -> float:
    """Sum of every series of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or math.isnan(value):
        return ABSENT
    return f"{value:,.{digits}f}"


def _fmt_count(value: float | None) -> str:
    if value is not None and value == round(value):
        return _fmt(value, 0)
    return _fmt(value, 1)  # fractional attribution weights


TABLE_COLUMNS = (
    ("channel", 10),
    ("spend 90d", 11),
    ("new cust 90d", 13),
    ("CAC 90d", 9),
    ("LTV hist", 9),
    ("LTV pred", 9),
    ("LTV:CAC 90d", 12),
    ("payback 90d", 12),
)


def render_table(samples: dict[Sample, float]) -> list[str]:
    """Per-channel figures from a ``/metrics`` scrape; ``paid`` and ``all`` (blended) last.

    Money in the reporting currency; figures of the primary attribution model; CAC fully
    loaded; LTV is the ``historical`` method (and ``predictive`` beside it, once the model
    is fitted), LTV:CAC uses the historical one with the 90-day CAC; payback in months.
    Undefined figures show as a dash.
    """
    model = next(
        (
            dict(labels)["model"]
            for name, labels in samples
            if name == "ltvcac_attribution_model_info"
        ),
        "last_touch",
    )
    channels = sorted(
        {dict(labels)["channel"] for name, labels in samples if name == "ltvcac_spend"},
        key=lambda channel: (channel in ("all", "paid"), channel == "all", channel),
    )
    lines = ["".join(f"{title:>{width}}" for title, width in TABLE_COLUMNS)]
    for channel in channels:
        window = {"channel": channel, "window": "90d", "model": model}
        cells = (
            channel,
            _fmt(_value(samples, "ltvcac_spend", channel=channel, window="90d")),
            _fmt_count(_value(samples, "ltvcac_new_customers", **window)),
            _fmt(
                _value(samples, "ltvcac_customer_acquisition_cost", **window, cost="fully_loaded")
            ),
            _fmt(
                _value(
                    samples,
                    "ltvcac_lifetime_value",
                    channel=channel,
                    model=model,
                    method="historical",
                )
            ),
            _fmt(
                _value(
                    samples,
                    "ltvcac_lifetime_value",
                    channel=channel,
                    model=model,
                    method="predictive",
                )
            ),
            _fmt(_value(samples, "ltvcac_ltv_cac_ratio", **window, method="historical")),
            _fmt(_any(samples, "ltvcac_payback_months", **window), 1),
        )
        lines.append(
            "".join(
                f"{cell:>{width}}" for cell, (_, width) in zip(cells, TABLE_COLUMNS, strict=True)
            )
        )
    if not channels:
        lines.append("(no channel figures yet)")
    return lines


def _report(setup: _Setup, progress: _Progress, samples: dict[Sample, float], note: str) -> str:
    handled = sum(_total(samples, "ltvcac_events_total", topic=topic) for topic in SOURCE_TOPICS)
    dead = _total(samples, "ltvcac_dead_letters_total")
    header = [
        f"ltvcac dev: simulated shop at {setup.rate:g} events/s{note}",
        f"metrics:  {setup.metrics_url}",
        f"redis:    {setup.redis_url}  key prefix {REDIS_KEY_PREFIX}",
        f"worker log: {setup.log_path}",
        f"events sent {progress.sent:,}  worker handled {handled:,.0f}  dead letters {dead:,.0f}"
        f"  simulated time {progress.simulated_at or ABSENT}",
        "",
    ]
    return "\n".join([*header, *render_table(samples)])


def _print(text: str, out: TextIO) -> None:
    # Redraw in place on a terminal; a log or pipe gets one block per refresh.
    if out.isatty():
        out.write("\x1b[H\x1b[2J" + text + "\n")
    else:
        out.write(text + "\n\n")
    out.flush()


async def _produce(
    producer: Any, events: Iterator[DemoEvent], rate: float, progress: _Progress
) -> None:
    """Send events at about ``rate`` per second; never bursts to catch up after a stall."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        now = loop.time()
        if now - began - progress.sent / rate > 1.0:
            # Fell behind (slow broker or worker): pace from here instead of bursting.
            began = now - progress.sent / rate - PRODUCE_TICK_SECONDS
        due = int((now - began) * rate) - progress.sent
        deliveries = []
        for _ in range(max(due, 0)):
            topic, key, event = next(events)
            value = json.dumps(event, separators=(",", ":")).encode()
            deliveries.append(await producer.send(topic, value=value, key=key.encode()))
            progress.sent += 1
            progress.simulated_at = str(event["occurred_at"])
        if deliveries:
            await asyncio.gather(*deliveries)  # raises if the broker refused a batch
        await asyncio.sleep(PRODUCE_TICK_SECONDS)


async def _scrape(worker: WorkerProcess) -> dict[Sample, float]:
    # urllib blocks; a thread keeps the producer on pace while the worker answers.
    return await asyncio.to_thread(worker.samples)


async def _watch(
    setup: _Setup, worker: WorkerProcess, stack: DevStack, progress: _Progress, out: TextIO
) -> None:
    failures = 0
    while True:
        dead = stack.exited_children()
        if dead:
            raise DemoError(f"{', '.join(dead)} exited unexpectedly")
        try:
            samples = await _scrape(worker)
        except (OSError, ValueError) as error:
            failures += 1
            if failures >= SCRAPE_FAILURES_TOLERATED:
                raise DemoError(
                    f"worker /metrics failed {failures} times: {error}\n{worker.log_tail()}"
                ) from error
        else:
            failures = 0
            _print(_report(setup, progress, samples, ""), out)
        await asyncio.sleep(REFRESH_SECONDS)


async def _caught_up(worker: WorkerProcess, progress: _Progress) -> dict[Sample, float]:
    """Wait until the worker has handled every event sent and its counters stand still.

    Internal messages (conversions, attributions, deltas) trail the source events by
    a few fetch round trips, so "still" means unchanged for `QUIET_SECONDS`.
    """
    deadline = time.monotonic() + CATCH_UP_SECONDS
    samples = await _scrape(worker)
    previous, quiet_since = _total(samples, "ltvcac_events_total"), time.monotonic()
    while time.monotonic() < deadline and progress.signals == 0:
        await asyncio.sleep(0.25)
        samples = await _scrape(worker)
        handled = sum(_total(samples, "ltvcac_events_total", topic=t) for t in SOURCE_TOPICS)
        everything = _total(samples, "ltvcac_events_total")
        if everything != previous or handled < progress.sent:
            previous, quiet_since = everything, time.monotonic()
        elif time.monotonic() - quiet_since >= QUIET_SECONDS:
            break
    return samples


async def _final_report(
    setup: _Setup, worker: WorkerProcess, progress: _Progress, out: TextIO
) -> None:
    # Bounded runs end on numbers that include everything sent; Ctrl-C ends at once.
    try:
        samples = await (_caught_up(worker, progress) if progress.signals == 0 else _scrape(worker))
    except (OSError, ValueError) as error:
        print(f"final figures unavailable: {error}", file=out, flush=True)
        return
    _print(_report(setup, progress, samples, " (final)"), out)


async def _run(
    setup: _Setup,
    bootstrap: str,
    worker: WorkerProcess,
    stack: DevStack,
    duration: float | None,
    out: TextIO,
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    progress = _Progress()

    def on_signal() -> None:
        progress.signals += 1
        stop.set()

    handled_signals = (signal.SIGINT, signal.SIGTERM) if _main_thread() else ()
    for signum in handled_signals:
        loop.add_signal_handler(signum, on_signal)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
        await producer.start()
        today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        events = _endless_events(DEMO_SEED, today - dt.timedelta(days=HISTORY_DAYS))
        tasks = [
            asyncio.create_task(_produce(producer, events, setup.rate, progress)),
            asyncio.create_task(_watch(setup, worker, stack, progress, out)),
            asyncio.create_task(stop.wait()),
        ]
        try:
            done, _ = await asyncio.wait(
                tasks, timeout=duration, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                error = None if task.cancelled() else task.exception()
                if isinstance(error, DemoError):
                    raise error
                if error is not None:
                    raise DemoError(f"demo stopped: {error!r}") from error
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
        await _final_report(setup, worker, progress, out)
    finally:
        # Back to plain handlers before the loop closes (closing would reset them).
        for signum in handled_signals:
            loop.remove_signal_handler(signum)
            signal.signal(signum, _raise_keyboard_interrupt)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so ``kill`` cleans up as well; restored afterwards."""
    if not _main_thread():
        yield  # only the main thread may set handlers; the caller owns signals then
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _uninterruptible() -> None:
    # Cleanup must finish, or the broker, Redis or worker would outlive us.
    if _main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def _external_redis_url() -> str | None:
    return os.environ.get("LTVCAC_REDIS_URL") or os.environ.get("REDIS_URL") or None


def _clear_demo_keys(url: str) -> None:
    """Keys a previous demo left in a shared Redis would mix with this run's."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{REDIS_KEY_PREFIX}*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    finally:
        client.close()


def run_dev(rate: float = 200.0, duration: float | None = None) -> None:
    """Broker + Redis + worker + demo traffic at ``rate`` events/s, with a live table.

    Runs until Ctrl-C or SIGTERM, or for ``duration`` seconds of traffic if given,
    then stops the producer, the worker and the stack, leaving no process behind.
    Uses ``LTVCAC_REDIS_URL`` or ``REDIS_URL`` when reachable, else a private Redis.
    """
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be a positive number of events per second, got {rate}")
    if duration is not None and not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    out = sys.stdout
    with _signals_interrupt():
        workdir = Path(tempfile.mkdtemp(prefix="ltvcac-demo-"))
        stack = DevStack(redis_url=_external_redis_url())
        worker: WorkerProcess | None = None
        try:
            print("starting the embedded Kafka broker and Redis ...", file=out, flush=True)
            endpoints = stack.start()
            _clear_demo_keys(endpoints.redis_url)
            port = free_port()
            worker = WorkerProcess(
                {
                    "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
                    "LTVCAC_REDIS_URL": endpoints.redis_url,
                    "LTVCAC_REDIS_KEY_PREFIX": REDIS_KEY_PREFIX,
                    "LTVCAC_WEB_HOST": "127.0.0.1",
                    "LTVCAC_WEB_PORT": str(port),
                    "LTVCAC_APP_ID": f"ltvcac-demo-{uuid.uuid4().hex[:12]}",
                    "LTVCAC_TOPIC_PREFIX": "",
                    "LTVCAC_TOPIC_PARTITIONS": str(TOPIC_PARTITIONS),
                    "LTVCAC_SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT_SECONDS),
                    "LTVCAC_ALLOWED_LATENESS_SECONDS": str(LATENESS_SECONDS),
                    "LTVCAC_PREDICTIVE_FIT_INTERVAL_SECONDS": str(FIT_INTERVAL_SECONDS),
                    "LTVCAC_STORE": "memory://",
                    "LTVCAC_DATA_DIR": str(workdir / "data"),
                },
                workdir / "worker.log",
            )
            print(f"starting the worker (log {workdir / 'worker.log'}) ...", file=out, flush=True)
            try:
                worker.start()
            except (RuntimeError, TimeoutError) as error:
                raise DemoError(str(error)) from error
            setup = _Setup(rate, worker.metrics_url, endpoints.redis_url, workdir / "worker.log")
            # The worker created its topics before serving /metrics: safe to produce now.
            asyncio.run(_run(setup, endpoints.kafka_bootstrap, worker, stack, duration, out))
        except KeyboardInterrupt:
            pass
        finally:
            _uninterruptible()
            print("stopping the worker, the broker and Redis ...", file=out, flush=True)
            if worker is not None:
                worker.stop()
            stack.stop()
            shutil.rmtree(workdir, ignore_errors=True)
            print("stopped.", file=out, flush=True)
