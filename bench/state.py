"""State per customer and table recovery at scale (``python -m bench --only state``).

The customers table is filled the way a worker that takes over a partition fills it:
from the table's changelog. Realistic records (built by the domain functions from
purchases, refunds, identities and attributions) are written straight to the changelog
of a fresh app id, each key in the partition Faust would have written it to, and an
``ltvcac worker`` is started on that app id. What is measured:

- bytes per customer: the changelog's key and value bytes, and the growth of the
  worker's resident memory once every record is in the table;
- recovery: process start to "recovery complete with every record in the table", for
  the memory store and for RocksDB, on a first start (the table read from the
  changelog) and on a restart that keeps the data directory.

"Recovery complete" is ``recovery_done`` on the worker's ``/health`` (Faust's recovery
``completed`` event), polled; "every record in the table" is the last record written
to each partition answering on ``/v1/customers/{id}`` (recovery reads each partition in
offset order), and, where the worker logs it, the number of customers it queued for
Redis once the partitions were recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import random
import re
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
from aiokafka import AIOKafkaProducer
from faust.serializers import codecs

from bench.common import BenchError, Section, run_async, wait_for
from schemas.events import SCHEMA_VERSION, Purchase, Refund
from schemas.topics import PURCHASES
from stream.devstack import StackEndpoints, create_topics, free_port
from stream.domain.attribution import Touch, attribute, campaign_weights
from stream.domain.channel import Source
from stream.domain.customer import (
    CustomerRecord,
    CustomerRules,
    handle_attribution,
    handle_link,
    handle_purchase,
    handle_refund,
)
from stream.domain.outcome import APPLIED, Outcome
from stream.kafka_admin import INTERNAL_TOPICS
from stream.serving.api import partition_of
from stream.worker_process import WorkerProcess

log = logging.getLogger("bench.state")

TEMPLATES = 2_000  # distinct records, replicated under distinct customer ids
PARTITIONS = 4  # as ``python -m bench``
API_TOKEN = "bench-state"
POLL_SECONDS = 0.1  # /health polling: the precision of the recovery time
# The projection timer queues the recovered customers for Redis within a tick or two.
REBUILD_WAIT_SECONDS = 30.0
CUSTOMER_MARK = "\x01customer\x01"  # where the customer id goes in an encoded template

# -- realistic records -------------------------------------------------------------

CHANNELS = ("google", "meta", "tiktok", "newsletter", "affiliate")
CAMPAIGNS = ("brand", "prospecting", "retargeting", "spring-sale", None)
ORDERS_WEIGHTS = (55, 22, 11, 7, 5)  # 1..5 orders: most customers buy once
TOUCHES_WEIGHTS = (30, 30, 20, 12, 8)  # 0..4 touches before a visitor's first order
VISITOR_SHARE = 0.6  # customers whose first order names a visitor
LINKED_SHARE = 0.2  # customers a visitor was identified as, besides
REFUND_SHARE = 0.1
LOOKBACK_DAYS = 30
SPAN_DAYS = 365
DAY = 86_400
CENT = Decimal("0.01")


@dataclass
class _Offsets:
    """The next offset of each source partition, advancing like a busy topic's."""

    rng: random.Random
    scale: int
    next: dict[tuple[str, int], int] = field(default_factory=dict)

    def source(self, topic: str, partition: int) -> Source:
        key = (topic, partition)
        offset = self.next.get(key, self.rng.randrange(self.scale))
        self.next[key] = offset + self.rng.randint(1, 40)
        return Source(topic, partition, offset)


def _stamp(at: int) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hex(rng: random.Random, bits: int = 64) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _purchase(rng: random.Random, customer_id: str, at: int, visitor: str | None) -> Purchase:
    amount = max(Decimal(1), Decimal(rng.lognormvariate(math.log(60.0), 0.7))).quantize(CENT)
    event: dict[str, Any] = {
        "type": "purchase",
        "event_id": f"e-{_hex(rng)}",
        "occurred_at": _stamp(at),
        "schema_version": SCHEMA_VERSION,
        "customer_id": customer_id,
        "order_id": f"o-{_hex(rng, 48)}",
        "amount": str(amount),
        "currency": "USD",
        "visitor_id": visitor,
    }
    basis = rng.random()  # the three ways shops state profit: cost, margin, or nothing
    if basis < 0.4:
        event["cost_of_goods"] = str((amount * Decimal(rng.uniform(0.3, 0.8))).quantize(CENT))
    elif basis < 0.7:
        event["margin"] = str(Decimal(rng.uniform(0.15, 0.6)).quantize(CENT))
    return Purchase.model_validate(event)


def _touches(rng: random.Random, converted_at: int) -> list[Touch]:
    count = rng.choices(range(len(TOUCHES_WEIGHTS)), TOUCHES_WEIGHTS)[0]
    return [
        Touch(
            f"e-{_hex(rng)}",
            converted_at - rng.randrange(LOOKBACK_DAYS * DAY),
            rng.choice(CHANNELS),
            rng.choice(CAMPAIGNS),
        )
        for _ in range(count)
    ]


def _applied(outcome: Outcome) -> None:
    if outcome.status != APPLIED:
        raise BenchError(f"building a record: {outcome.status} {outcome.reason} {outcome.detail}")


def build_record(rng: random.Random, customer_id: str, offsets: _Offsets) -> CustomerRecord:
    """One customer as the worker would hold it after its purchases, an identity, the
    attribution of its first order and perhaps a refund."""
    rules = CustomerRules()
    record = CustomerRecord(customer_id)
    partition = partition_of(customer_id, PARTITIONS)
    purchases = offsets.source(PURCHASES.name, partition)
    updates = INTERNAL_TOPICS["customer-updates"]
    end = int(time.time())
    first_at = end - rng.randrange(SPAN_DAYS * DAY)
    visitor = f"v-{_hex(rng, 48)}" if rng.random() < VISITOR_SHARE else None
    if rng.random() < LINKED_SHARE:
        _applied(handle_link(record, f"v-{_hex(rng, 48)}", offsets.source(updates, partition)))
    first = _purchase(rng, customer_id, first_at, visitor)
    _applied(handle_purchase(record, first, purchases, rules))
    visitor = record.converting_visitor  # the purchase's, else the identified one
    if visitor is not None:
        touches = _touches(rng, first_at)
        weights = attribute(touches, first_at, LOOKBACK_DAYS)
        campaigns = campaign_weights(touches, first_at, LOOKBACK_DAYS, 7.0, "last_touch")
        source = offsets.source(updates, partition)
        _applied(handle_attribution(record, visitor, first_at, weights, source, campaigns))
    orders = rng.choices(range(1, len(ORDERS_WEIGHTS) + 1), ORDERS_WEIGHTS)[0]
    for _ in range(orders - 1):
        at = rng.randint(first_at, end)
        repeat = _purchase(rng, customer_id, at, visitor)
        _applied(handle_purchase(record, repeat, offsets.source(PURCHASES.name, partition), rules))
    if rng.random() < REFUND_SHARE:
        _refund(rng, record, offsets.source(PURCHASES.name, partition), end, rules)
    return record


def _refund(
    rng: random.Random, record: CustomerRecord, source: Source, end: int, rules: CustomerRules
) -> None:
    order_id, order = rng.choice(sorted(record.order_book.items()))
    paid = Decimal(order.paid).scaleb(-2)
    amount = paid if rng.random() < 0.5 else (paid * Decimal(rng.uniform(0.1, 0.9))).quantize(CENT)
    refund = Refund.model_validate(
        {
            "type": "refund",
            "event_id": f"e-{_hex(rng)}",
            "occurred_at": _stamp(rng.randint(order.at, end)),
            "schema_version": SCHEMA_VERSION,
            "customer_id": record.customer_id,
            "order_id": order_id,
            "amount": str(max(amount, CENT)),
            "currency": order.currency,
        }
    )
    _applied(handle_refund(record, refund, source, rules))


def build_templates(count: int, customers: int, seed: int = 1) -> list[dict[str, Any]]:
    """``count`` distinct stored records (``CustomerRecord.to_json``); source offsets of
    the magnitude a deployment with ``customers`` customers reaches."""
    rng = random.Random(seed)
    offsets = _Offsets(rng, max(1, customers * 2 // PARTITIONS))
    return [build_record(rng, f"t-{n:07d}", offsets).to_json() for n in range(count)]


# -- the changelog image -----------------------------------------------------------


@dataclass(frozen=True)
class Changelog:
    """The customers table's changelog records, as Faust encodes them (JSON keys and
    values), for ``customers`` ids; the value of customer ``n`` is template ``n % T``."""

    customers: int
    partitions: int
    templates: list[tuple[bytes, bytes]]  # encoded value around the customer id

    @classmethod
    def of(cls, records: list[dict[str, Any]], customers: int, partitions: int) -> Changelog:
        encoded = []
        for record in records:
            value = codecs.dumps("json", {**record, "customer_id": CUSTOMER_MARK})
            mark = codecs.dumps("json", CUSTOMER_MARK)[1:-1]  # as escaped inside a string
            head, tail = value.split(mark)
            encoded.append((head, tail))
        return cls(customers, partitions, encoded)

    def customer_id(self, number: int) -> str:
        return f"c-{number:07d}"

    def records(self) -> Iterator[tuple[int, bytes, bytes]]:
        """(partition, key, value) of every customer: the partition is the one of the
        customer's source events (Kafka's murmur2 of the raw id, as the shop's producer
        sends them), which is where Faust writes the key's changelog record."""
        for number in range(self.customers):
            customer_id = self.customer_id(number)
            raw = customer_id.encode()
            head, tail = self.templates[number % len(self.templates)]
            key = codecs.dumps("json", customer_id)
            yield partition_of(customer_id, self.partitions), key, head + raw + tail


@dataclass
class Published:
    """What was written: bytes, timing, and the last customer of each partition."""

    records: int = 0
    key_bytes: int = 0
    value_bytes: int = 0
    seconds: float = 0.0
    last_of_partition: dict[int, str] = field(default_factory=dict)
    per_partition: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else float("inf")

    @property
    def bytes_per_second(self) -> float:
        total = self.key_bytes + self.value_bytes
        return total / self.seconds if self.seconds > 0 else float("inf")


async def publish_changelog(bootstrap: str, topic: str, changelog: Changelog) -> Published:
    """Write every record with one producer in large per-partition batches (no
    compression), as fast as the broker takes them."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        compression_type=None,
        acks=1,
    )
    published = Published()
    try:  # start() inside: a deadline may cancel it halfway
        await producer.start()
        began = time.monotonic()
        batches: dict[int, Any] = {}
        acks: list[asyncio.Future[Any]] = []
        for partition, key, value in changelog.records():
            batch = batches.get(partition) or batches.setdefault(partition, producer.create_batch())
            if batch.append(key=key, value=value, timestamp=None) is None:  # full: send it
                acks.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[partition] = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
            _count(published, partition, key, value)
        for partition, batch in batches.items():
            if batch.record_count():
                acks.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*acks)
        published.seconds = time.monotonic() - began
    finally:
        await producer.stop()
    for number in range(changelog.customers):  # the last id written to each partition
        customer_id = changelog.customer_id(number)
        published.last_of_partition[partition_of(customer_id, changelog.partitions)] = customer_id
    return published


def _count(published: Published, partition: int, key: bytes, value: bytes) -> None:
    published.records += 1
    published.key_bytes += len(key)
    published.value_bytes += len(value)
    published.per_partition[partition] = published.per_partition.get(partition, 0) + 1


# -- one worker start ---------------------------------------------------------------

_REBUILD = re.compile(r"redis rebuild partitions=\[[^\]]*\] customers=(\d+)")
_BULK_READ = re.compile(r"changelogs read in bulk partitions=\d+ records=(\d+) seconds=([\d.]+)")
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
# The phases of a start as Faust logs them (faust/tables/recovery.py, mode's Worker).
LOG_PHASES = {
    "starting": "[^_Worker]: Starting...",
    "joined": "Joined group",
    "reading": "Restoring state from changelog topics",
    "read": "Done reading from changelog topics",
    "recovery complete": "Recovery complete",
    "ready": "[^_Worker]: Ready",
}


@dataclass
class Memory:
    """The worker's resident memory, bytes (/proc/PID/status)."""

    rss: int
    peak: int  # VmHWM: the highest RSS so far

    @classmethod
    def of(cls, pid: int) -> Memory:
        fields = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) * 1024
        return cls(fields["VmRSS"], fields["VmHWM"])


@dataclass
class Start:
    """One worker start: how long until it served, recovered and held every record."""

    store: str
    case: str
    served: float  # process start to /metrics answering
    recovered: float  # process start to recovery_done on /health
    complete: float  # process start to every partition's last record answering
    memory: Memory  # when recovery was seen done
    peak_after_rebuild: int | None  # VmHWM once the Redis rebuild was queued
    log: WorkerLog


def worker_env(
    endpoints: StackEndpoints, app_id: str, prefix: str, store: str, data_dir: Path
) -> dict[str, str]:
    return {
        "LTVCAC_KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
        "LTVCAC_REDIS_URL": endpoints.redis_url,
        "LTVCAC_REDIS_KEY_PREFIX": f"{app_id}:",
        "LTVCAC_TOPIC_PREFIX": prefix,
        "LTVCAC_TOPIC_PARTITIONS": str(PARTITIONS),
        "LTVCAC_APP_ID": app_id,
        "LTVCAC_STORE": store,
        "LTVCAC_DATA_DIR": str(data_dir),
        "LTVCAC_WEB_PORT": str(free_port()),
        "LTVCAC_SESSION_TIMEOUT_SECONDS": "10",
        "LTVCAC_API_TOKENS": json.dumps([API_TOKEN]),
        "LTVCAC_LOG_LEVEL": "info",  # Faust's "Recovery complete" line is at INFO
    }


def _get_json(url: str) -> tuple[int, Any] | None:
    """(status, body) of a GET with the bench's token; None if the worker does not answer."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {API_TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None
    except OSError:
        return None


def _base_url(worker: WorkerProcess) -> str:
    return worker.metrics_url.removesuffix("/metrics")


def _recovery_done(worker: WorkerProcess) -> bool | None:
    answer = _get_json(_base_url(worker) + "/health")
    if answer is None or not isinstance(answer[1], dict):
        return None
    return True if answer[1].get("recovery_done") else None


def _all_present(worker: WorkerProcess, customer_ids: Sequence[str]) -> bool | None:
    for customer_id in customer_ids:
        answer = _get_json(f"{_base_url(worker)}/v1/customers/{customer_id}")
        if answer is None or answer[0] != 200:
            return None
    return True


@dataclass
class WorkerLog:
    """What the worker's log says about this start: seconds from process start to each
    phase Faust logs, and the customers it queued for Redis after the recovery."""

    phases: dict[str, float] = field(default_factory=dict)
    rebuilt: int | None = None  # None until the rebuild line is seen
    bulk_seconds: float | None = None  # the worker's bulk changelog read (stream/recovery.py)

    @classmethod
    def read(cls, path: Path, began_wall: float) -> WorkerLog:
        found = cls()
        with contextlib.suppress(OSError), path.open(errors="replace") as lines:
            for line in lines:
                found._add(line, began_wall)
        return found

    def _add(self, line: str, began_wall: float) -> None:
        match = _REBUILD.search(line)
        if match:
            self.rebuilt = (self.rebuilt or 0) + int(match.group(1))
        match = _BULK_READ.search(line)
        if match:
            self.bulk_seconds = (self.bulk_seconds or 0.0) + float(match.group(2))
        for phase, text in LOG_PHASES.items():
            if phase not in self.phases and text in line:
                stamp = _LOG_TIME.match(line)
                if stamp:  # the worker logs local time, milliseconds
                    at = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f")
                    self.phases[phase] = round(at.timestamp() - began_wall, 3)

    @property
    def changelog_read_seconds(self) -> float | None:
        """The bulk read's seconds plus Faust's read of what it left, if any."""
        began, ended = self.phases.get("reading"), self.phases.get("read")
        faust = None if began is None or ended is None else ended - began
        if self.bulk_seconds is None:
            return faust
        return self.bulk_seconds + (faust or 0.0)


def _wait_for_rebuild(path: Path, began_wall: float, seconds: float) -> WorkerLog:
    """Poll the log a little while for the Redis rebuild line (``stream.agents.projection``)."""
    deadline = time.monotonic() + seconds
    while True:
        found = WorkerLog.read(path, began_wall)
        if found.rebuilt is not None or time.monotonic() >= deadline:
            return found
        time.sleep(POLL_SECONDS)  # poll interval while waiting for the line above


def start_worker(
    env: dict[str, str],
    log_path: Path,
    store: str,
    case: str,
    last_ids: Sequence[str],
    timeout: float,
) -> Start:
    """Start a worker, measure its recovery, stop it."""
    log_path.unlink(missing_ok=True)
    worker = WorkerProcess(env, log_path)
    began, began_wall = time.monotonic(), time.time()

    def tail() -> str:
        return f"worker log tail:\n{worker.log_tail()}"

    try:
        worker.start(timeout=timeout)
        served = time.monotonic() - began
        _, recovered_at = wait_for(
            lambda: _recovery_done(worker), timeout, "recovery_done", POLL_SECONDS, tail
        )
        memory = Memory.of(worker.pid)
        _, complete_at = wait_for(
            lambda: _all_present(worker, last_ids),
            timeout,
            "every partition's last record in the table",
            POLL_SECONDS,
            tail,
        )
        worker_log = _wait_for_rebuild(log_path, began_wall, REBUILD_WAIT_SECONDS)
        peak = Memory.of(worker.pid).peak if worker_log.rebuilt is not None else None
    finally:
        worker.stop()
    return Start(
        store,
        case,
        served,
        recovered_at - began,
        complete_at - began,
        memory,
        peak,
        worker_log,
    )


# -- the measurement ----------------------------------------------------------------


def _store_url(store: str) -> str:
    return {"memory": "memory://", "rocksdb": "rocksdb://"}[store]


def _delete_keys(redis_url: str, key_prefix: str) -> None:
    """Remove what the workers projected, in case the Redis outlives the stack."""
    with contextlib.suppress(redis.RedisError, OSError):
        client = redis.Redis.from_url(redis_url, socket_timeout=30)
        try:
            batch = []
            for key in client.scan_iter(match=f"{key_prefix}*", count=10_000):
                batch.append(key)
                if len(batch) >= 10_000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
        finally:
            client.close()


@dataclass
class _Plan:
    endpoints: StackEndpoints
    workdir: Path
    timeout: float
    prefix: str = field(default_factory=lambda: f"bench-state-{uuid.uuid4().hex[:8]}.")
    app_ids: list[str] = field(default_factory=list)

    def app_id(self, role: str) -> str:
        app_id = f"bench-state-{role}-{uuid.uuid4().hex[:8]}"
        self.app_ids.append(app_id)
        return app_id

    def env(self, app_id: str, store: str, data_dir: Path) -> dict[str, str]:
        return worker_env(self.endpoints, app_id, self.prefix, _store_url(store), data_dir)


# A memory store keeps nothing across a restart: its restart is another first start.
CASES = {"memory": ("first start",), "rocksdb": ("first start", "restart")}


def _run_store(plan: _Plan, store: str, loaded_app: str, last_ids: Sequence[str]) -> list[Start]:
    """An empty worker (the baseline), then a first start and a restart on the records."""
    empty_dir = plan.workdir / f"{store}-empty"
    data_dir = plan.workdir / f"{store}-data"
    log_path = plan.workdir / f"worker-{store}.log"
    log.info("%s: empty worker on a fresh app id", store)
    empty_env = plan.env(plan.app_id("empty"), store, empty_dir)
    starts = [start_worker(empty_env, log_path, store, "empty", [], plan.timeout)]
    for case in CASES[store]:
        log.info("%s: %s", store, case)
        env = plan.env(loaded_app, store, data_dir)
        starts.append(start_worker(env, log_path, store, case, last_ids, plan.timeout))
        shutil.copy(log_path, plan.workdir / f"worker-{store}-{case.replace(' ', '-')}.log")
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.rmtree(empty_dir, ignore_errors=True)
    return starts


def measure(
    endpoints: StackEndpoints, workdir: Path, customers: int, timeout: float
) -> list[Section]:
    """Bytes per customer and recovery of ``customers`` customers, with the memory store
    and with RocksDB; the sections "state per customer" and "recovery"."""
    if customers < 1:
        raise ValueError(f"customers must be >= 1, got {customers}")
    plan = _Plan(endpoints, workdir, timeout)
    log.info("building %d distinct customer records", TEMPLATES)
    templates = build_templates(min(TEMPLATES, customers), customers)
    changelog = Changelog.of(templates, customers, PARTITIONS)
    loaded_app = plan.app_id("loaded")
    topic = f"{loaded_app}-customers-changelog"  # Faust's name: {app id}-{table}-changelog
    try:
        run_async(
            create_topics(endpoints.kafka_bootstrap, [topic], PARTITIONS),
            timeout,
            "creating the changelog topic",
        )
        log.info("writing %d records to %s", customers, topic)
        published = run_async(
            publish_changelog(endpoints.kafka_bootstrap, topic, changelog),
            timeout,
            f"writing {customers} records to {topic}",
        )
        log.info("written at %.0f records/s", published.rate)
        last_ids = sorted(published.last_of_partition.values())
        starts = [
            s
            for store in ("memory", "rocksdb")
            for s in _run_store(plan, store, loaded_app, last_ids)
        ]
    finally:
        for app_id in plan.app_ids:
            _delete_keys(endpoints.redis_url, f"{app_id}:")
    return [state_section(published, starts, templates), recovery_section(published, starts)]


def _kib(value: float) -> str:
    return f"{value / 1024:,.2f}"


def _memory_growth(starts: list[Start], store: str, case: str, customers: int) -> float | None:
    empty = next(s for s in starts if s.store == store and s.case == "empty")
    loaded = next((s for s in starts if s.store == store and s.case == case), None)
    if loaded is None:
        return None
    return (loaded.memory.rss - empty.memory.rss) / customers


def state_section(
    published: Published, starts: list[Start], templates: list[dict[str, Any]]
) -> Section:
    n = published.records
    sizes = sorted(len(codecs.dumps("json", t)) for t in templates)
    changelog_bytes = (published.key_bytes + published.value_bytes) / n
    rows = [
        ["changelog record (key + value)", _kib(changelog_bytes), f"{n:,} records"],
        ["  key", _kib(published.key_bytes / n), "JSON string of the customer id"],
        ["  value", _kib(published.value_bytes / n), "CustomerRecord.to_json, Faust's JSON"],
    ]
    data: dict[str, Any] = {
        "customers": n,
        "distinct_records": len(templates),
        "changelog_bytes_per_customer": round(changelog_bytes, 1),
        "key_bytes_per_customer": round(published.key_bytes / n, 1),
        "value_bytes_per_customer": round(published.value_bytes / n, 1),
        "value_bytes_p50_p95_max": [
            sizes[len(sizes) // 2],
            sizes[int(len(sizes) * 0.95)],
            sizes[-1],
        ],
        "worker_rss_bytes_per_customer": {},
    }
    for store in ("memory", "rocksdb"):
        for case in CASES[store]:
            growth = _memory_growth(starts, store, case, n)
            if growth is not None:
                rows.append(
                    [f"worker RSS growth, {store}, {case}", _kib(growth), "(RSS - empty) / N"]
                )
                data["worker_rss_bytes_per_customer"][f"{store} {case}"] = round(growth, 1)
    notes = [
        f"{len(templates):,} distinct records built by the domain functions (1-5 orders,"
        " long-tailed; cost, margin or default profit basis; an attribution with channel"
        " and campaign weights for visitors; identities; 10% with a refund), replicated"
        f" under distinct customer ids to {n:,}.",
        f"value bytes of the distinct records: p50 {sizes[len(sizes) // 2]}, p95"
        f" {sizes[int(len(sizes) * 0.95)]}, max {sizes[-1]}.",
        "RSS read when /health first reports recovery_done, before the Redis rebuild the"
        " worker queues for the recovered partitions; target: at most 1 KiB per customer.",
    ]
    return Section("state per customer", ["what", "KiB per customer", "how"], rows, notes, data)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f}"


def _recovery_row(start: Start, customers: int) -> list[str]:
    read = start.log.changelog_read_seconds
    rate = "-" if read is None or start.case == "empty" or read <= 0 else f"{customers / read:,.0f}"
    rebuilt = start.log.rebuilt
    return [
        start.store,
        start.case,
        _seconds(start.served),
        _seconds(start.log.phases.get("joined")),
        _seconds(read),
        rate,
        _seconds(start.recovered),
        _seconds(start.complete),
        _mib(start.memory.rss),
        _mib(start.memory.peak),
        _mib(start.peak_after_rebuild),
        "-" if rebuilt is None else f"{rebuilt:,}",
    ]


def _recovery_data(start: Start) -> dict[str, Any]:
    return {
        "store": start.store,
        "case": start.case,
        "served_seconds": round(start.served, 2),
        "recovered_seconds": round(start.recovered, 2),
        "complete_seconds": round(start.complete, 2),
        "log_phase_seconds": start.log.phases,
        "changelog_read_seconds": start.log.changelog_read_seconds,
        "rss_bytes": start.memory.rss,
        "hwm_bytes": start.memory.peak,
        "hwm_after_rebuild_bytes": start.peak_after_rebuild,
        "rebuilt_customers": start.log.rebuilt,
    }


RECOVERY_COLUMNS = [
    "store",
    "case",
    "served s",
    "joined s",
    "read s",
    "read/s",
    "recovered s",
    "complete s",
    "RSS MiB",
    "HWM MiB",
    "HWM+rebuild MiB",
    "rebuilt",
]


def recovery_section(published: Published, starts: list[Start]) -> Section:
    n = published.records
    notes = [
        f"{n:,} customer records written to the changelog in {published.seconds:.1f}s"
        f" ({published.rate:,.0f} records/s, {published.bytes_per_second / 2**20:,.1f} MiB/s),"
        " one aiokafka producer, 512 KiB batches, no compression.",
        "seconds from process start. served: /metrics answers; joined: the consumer group"
        " joined (log); read: the changelog read, the worker's bulk read ('changelogs read in"
        " bulk', its seconds) plus Faust's read of what it left ('Restoring state' to 'Done"
        f" reading'; log, ms); recovered: /health recovery_done, polled every {POLL_SECONDS}s;"
        " complete: the last record of every partition answers on /v1/customers."
        " Target: complete under 60 s.",
        "RSS and HWM when recovery_done was first seen; HWM+rebuild: VmHWM once the worker"
        " queued the recovered customers for Redis; rebuilt: how many it queued (its log).",
    ]
    data = {
        "customers": n,
        "publish_seconds": round(published.seconds, 2),
        "publish_records_per_second": round(published.rate),
        "runs": [_recovery_data(start) for start in starts],
    }
    rows = [_recovery_row(start, n) for start in starts]
    return Section("recovery", RECOVERY_COLUMNS, rows, notes, data)
