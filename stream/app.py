"""The Faust app: topics, tables, agents, timers and web pages (wiring only)."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import orjson
from aiokafka.errors import MessageSizeTooLargeError
from faust import Worker
from faust.exceptions import ConsumerNotStarted
from faust.tables import GlobalTable, Table
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas import topics as contract
from stream.config import Settings
from stream.current_event import in_partition
from stream.delivery import delivered
from stream.domain.attribution import MODELS
from stream.domain.channel import ChannelRecord
from stream.domain.customer import CustomerRules
from stream.domain.figures import (
    NO_CUSTOMERS,
    NOT_SCORED,
    ChannelFigures,
    Figure,
    LtvParams,
    channel_figures,
)
from stream.domain.fx import FxRates, RateBook, fx_rates, table_book
from stream.domain.lateness import event_today
from stream.domain.predictive import CURRENT_FIT, Fit, Horizon
from stream.domain.spend import SpendMemory
from stream.domain.timeline import day_of
from stream.domain.visitor import VisitorRules
from stream.errors import DeliveryFailed
from stream.kafka_admin import INTERNAL_TOPICS
from stream.metrics import (
    ChannelFiguresCollector,
    FitCollector,
    PipelineCollector,
    PipelineCounters,
    PipelineState,
)
from stream.recovery import BulkRecoveryTableManager
from stream.serving.projection import RedisProjection
from stream.transport import Transport

log = logging.getLogger(__name__)


class BatchWrites:
    """Lets an agent write a key after its batch of events, in the changelog partition of
    the event that changed it, and wait until the broker has the writes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unsent: list[Any] = []  # changelog writes the broker has not acknowledged
        # A table of value type bytes (serializer "raw") holds each value as its JSON
        # bytes, decoded on each read: the memory store keeps what it is given, and a
        # record as Python dicts and lists takes several times the memory of its JSON.
        self.json_bytes = self.value_serializer == "raw"  # type: ignore[attr-defined]

    def get_json(self, key: str) -> Any:
        """The value of ``key`` as JSON data (dicts, lists, ...), or None."""
        return self.decode(self.get(key))  # type: ignore[attr-defined]

    def decode(self, stored: Any) -> Any:
        return orjson.loads(stored) if self.json_bytes and stored is not None else stored

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        future = super().send_changelog(*args, **kwargs)  # type: ignore[misc]
        self._unsent.append(future)
        return future

    async def sent(self) -> None:
        """Wait until the broker has every changelog write made so far. Faust flushes its
        producer before it commits offsets, but a flush gives up on its buffer once no
        message left it for 0.1 s (``flush_atmost`` in faust/transport/producer.py), so a
        commit could pass a write that a crash then lost: a batch's events are
        acknowledged only after this."""
        unsent, self._unsent = self._unsent, []
        await delivered(unsent, f"changelog of {self.name}")  # type: ignore[attr-defined]

    async def write_now(self, key: str, value: Any, partition: int) -> None:
        """Set ``key`` and hand its changelog message straight to the Kafka producer, for
        :meth:`sent` to wait on. A batch writes hundreds of keys: through Faust's buffer
        of table writes (``table[key] = value``) one task sends them one at a time, and
        the intake stops while the buffer holds more than 100 (``wait_until_ebb`` in
        faust/transport/producer.py); through ``changelog_topic.send`` each costs three
        times the producer's own work. The bytes are Faust's (its serializers), so its
        recovery reads them as its own writes. ``value``: JSON data."""
        table: Any = self
        if self.json_bytes:  # as Faust's JSON codec writes it
            value = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        serializers = table.app.serializers
        producer: Any = table.app.producer
        serializer = table.value_serializer
        encoded = serializers.dumps_value(table.value_type, value, serializer=serializer)
        try:
            future = await producer._ensure_producer().send(
                table.changelog_topic_name,
                key=serializers.dumps_key(table.key_type, key, serializer=table.key_serializer),
                value=encoded,
                partition=partition,
            )
        except MessageSizeTooLargeError as error:
            # Not input: the record grew too large to store (README, Sizing). Every restart
            # would read the same events again, so say which record and what to change.
            raise DeliveryFailed(
                f"record {key!r} of table {table.name} is {len(encoded):,} bytes, more than"
                f" LTVCAC_MAX_MESSAGE_BYTES={table.app.conf.producer_max_request_size:,}:"
                " raise it, and the broker's message.max.bytes, to go on"
            ) from error
        future.add_done_callback(self._on_sent)
        self._unsent.append(future)
        with in_partition(partition):
            table.data[key] = value
        self.on_written(key, partition)

    def _on_sent(self, future: Any) -> None:
        # Faust's own bookkeeping of a delivered changelog write: RocksDB keeps the
        # offset, so that a restart reads only what came after it.
        if not future.cancelled() and future.exception() is None:
            self._on_changelog_sent(future)  # type: ignore[attr-defined]

    def on_written(self, key: str, partition: int) -> None:
        """``key`` was written to ``partition`` of the changelog by :meth:`write_now`."""


class OwnedTable(BatchWrites, Table[str, Any]):
    """A table that knows which changelog partition holds each key, and which of its
    partitions this worker owns with their recovery complete.

    Faust keeps what it no longer owns: the memory store forgets on recovery only the
    keys it read from a changelog, never those an agent wrote (faust/stores/memory.py,
    ``on_recovery_completed`` and ``_key_partition``), so a revoked partition's records
    stay readable; and while a partition is recovering its records are incomplete.
    Readers that must show only what this worker is responsible for use
    :meth:`owned_items`. A partition stops being owned when the rebalance that takes it
    starts (the revoke) and becomes owned when the table's recovery after the
    assignment has completed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._key_partitions: dict[str, int] = {}
        self._ready: set[int] = set()
        self._revokes = 0  # rebalances started
        self._assigned_at = -1  # value of _revokes when the last assignment arrived
        self._last_actives: set[int] = set()  # active partitions at the last recovery
        self._gained_pending: set[int] = set()  # newly assigned, recovery not yet complete
        self._gained: set[int] = set()  # recovered since take_gained() was last called
        self.app.on_partitions_revoked.connect(self._on_partitions_revoked)

    @property
    def ready_partitions(self) -> frozenset[int]:
        return frozenset(self._ready)

    def partition_of(self, key: str) -> int | None:
        """The changelog partition of ``key`` (the one it was last written to or read from)."""
        return self._key_partitions.get(key)

    def owned_items(self, partitions: Iterable[int] | None = None) -> Iterator[tuple[str, Any]]:
        """(key, value as JSON data) of the keys in owned, recovered partitions (or in
        ``partitions``)."""
        wanted = self._owned(partitions)
        if not wanted:
            return
        for key, value in list(self.items()):
            if value is not None and self._key_partitions.get(key) in wanted:
                yield key, self.decode(value)

    def owned_keys(self, partitions: Iterable[int] | None = None) -> list[str]:
        """The keys of :meth:`owned_items`, without reading their values."""
        wanted = self._owned(partitions)
        return [key for key, p in list(self._key_partitions.items()) if p in wanted]

    def _owned(self, partitions: Iterable[int] | None) -> set[int]:
        """The owned partitions (live: a revoke shrinks them), or those of ``partitions``."""
        return self._ready if partitions is None else set(partitions) & self._ready

    def take_gained(self) -> set[int]:
        """Partitions newly assigned to this worker whose recovery completed since the
        last call: their keys are complete here now, and were written elsewhere before."""
        gained, self._gained = self._gained & self._ready, set()
        return gained

    # -- where keys come from: agents' writes and changelog recovery

    def on_written(self, key: str, partition: int) -> None:
        self._key_partitions[key] = partition

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        events = list(batch)
        for event in events:
            key = self._to_key(event.key)
            if event.message.value is None:
                self._key_partitions.pop(key, None)
            else:
                self._key_partitions[key] = event.message.partition
        super().apply_changelog_batch(events)

    def _index_stored_keys(self, partitions: set[int]) -> None:
        """Index the keys a persistent store kept from before this start: they pass
        through neither a changelog read (recovery reads only what came after the store's
        offset) nor a write. RocksDB keeps one database per partition."""
        store: Any = self.data
        databases = getattr(store, "_dbs", None)
        if databases is None:
            return  # the memory store: every key it holds came through one or the other
        for partition in partitions:
            database = databases.get(partition)
            if database is None:
                continue
            for raw in store._visible_keys(database):
                self._key_partitions[store._decode_key(raw)] = partition

    # -- ownership through a rebalance

    def _mine(self, tps: Iterable[TP]) -> set[int]:
        topic = self.changelog_topic_name
        return {tp.partition for tp in tps if tp.topic == topic}

    async def _on_partitions_revoked(self, _app: Any, /, *args: Any, **kwargs: Any) -> None:
        # The start of a rebalance: stop showing what may be about to move elsewhere.
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        self._revokes += 1
        self._ready -= self._mine(revoked)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        self._ready &= self._mine(assigned)
        self._gained_pending |= self._mine(newly_assigned)
        self._assigned_at = self._revokes

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        if self._assigned_at != self._revokes:
            return  # another rebalance began since this assignment; its recovery decides
        actives = self._mine(active_tps)
        self._index_stored_keys(actives)
        self._gained |= (self._gained_pending | (actives - self._last_actives)) & actives
        self._gained_pending.clear()
        self._last_actives = actives
        self._ready = set(actives)  # a copy: revokes shrink it in place


class SharedTable(BatchWrites, GlobalTable):
    """A global table every worker reads completely, whichever worker wrote a key.

    Faust's memory store would forget on each recovery the keys of partitions that are
    only standby here (faust/stores/memory.py ``on_recovery_completed`` keeps active
    partitions only), and for a global table every partition is standby on every
    worker: keep them.
    """

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps | standby_tps, standby_tps)

    def write(self, key: str, value: Any) -> None:
        """Set ``key`` from anywhere (a timer, any stream's batch), through Faust's buffer
        of table writes (few: a shared table is small): whatever the partition of the
        event that changed it, the table has one, 0."""
        with in_partition(0):
            self[key] = value

    async def write_now(self, key: str, value: Any, partition: int = 0) -> None:
        self.write(key, value)  # rare (exchange rates): Faust's path keeps on_key_set


class VersionedTable(SharedTable):
    """A shared table whose ``version`` changes with every write, whichever worker made
    it, so that what is derived from it is computed again only when it changed."""

    version = 0

    def on_key_set(self, key: Any, value: Any) -> None:
        super().on_key_set(key, value)
        self.version += 1

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        super().apply_changelog_batch(batch)
        self.version += 1

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        self.version += 1


@dataclass
class Runtime:
    """Everything the agents share: the app, its topics and tables, and the outputs."""

    settings: Settings
    app: faust.App
    topics: dict[str, Any]  # logical name -> faust topic
    customers: OwnedTable
    visitors: OwnedTable
    channels: OwnedTable
    watermarks: SharedTable  # channel -> its newest event time, when it led the deployment
    fx_table: VersionedTable  # currency -> [[day, "rate"], ...] from the fx-rates topic
    fx_file: RateBook  # the rates of LTVCAC_FX_RATES_FILE
    model_fits: VersionedTable  # "current" -> the latest predictive fit (Fit.to_json)
    # customers partition -> {"version": fit version, "sums": channel -> model -> [sum of
    # weight x CLV, sum of weights]}: the scores of its customers, by their channels
    predictive_sums: VersionedTable
    horizon: Horizon
    registry: CollectorRegistry
    counters: PipelineCounters
    projection: RedisProjection
    ltv_params: LtvParams
    watermark: int = 0  # the newest event time this worker knows, seconds since the epoch
    kafka_watch: Any = None  # stream.kafka_admin.KafkaWatch of a running worker
    channel_metrics: ChannelFiguresCollector | None = None  # /metrics adds its text
    # source stream ("topic:partition") -> highest offset in a batch of this process whose
    # records and outputs the broker has (``register_agent``)
    completed: dict[str, int] = field(default_factory=dict)
    _fx: tuple[int, FxRates] | None = field(default=None, init=False)
    _fit: tuple[int, Fit | None] | None = field(default=None, init=False)
    # channel -> (the stored value it was computed from, today and predictive versions,
    # figures): a stored value is replaced, never changed in place, so figures are computed
    # once per change, day and predictive score
    _figures: dict[str, tuple[Any, tuple[int, int, int], ChannelFigures]] = field(
        default_factory=dict, init=False
    )

    @property
    def spend_memory(self) -> SpendMemory:
        return SpendMemory(self.settings.allowed_lateness_seconds, self.completed)

    @property
    def fx(self) -> FxRates:
        """The file's rates and the topic's (which win for the same day), merged again
        only when the topic's table has changed."""
        version = self.fx_table.version
        if self._fx is None or self._fx[0] != version:
            topic = table_book(self.fx_table.items())
            self._fx = (version, fx_rates(self.settings.reporting_currency, self.fx_file, topic))
        return self._fx[1]

    def current_fit(self) -> Fit | None:
        """The newest predictive fit any worker published, or None before the first."""
        version = self.model_fits.version
        if self._fit is None or self._fit[0] != version:
            stored = self.model_fits.get(CURRENT_FIT)
            fit = None if stored is None else Fit.from_json(stored)
            newest = None if self._fit is None else self._fit[1]
            if newest is not None and (fit is None or fit.version < newest.version):
                fit = newest  # a worker reads its own writes back later: older fits reappear
            self._fit = (version, fit)
        return self._fit[1]

    def predictive_ltv(self, channel: str) -> dict[str, Figure]:
        """The channel's predictive LTV by model: the weighted mean CLV of its customers
        with the current fit, once the customers of every partition are scored with it."""
        current = self.current_fit()
        if current is None:
            return {}
        sums: dict[str, list[float]] = {}
        for partition in range(self.settings.topic_partitions):
            scored = self.predictive_sums.get(str(partition))
            if scored is None or scored["version"] != current.version:
                return dict.fromkeys(MODELS, Figure.undefined(NOT_SCORED))
            for model, (total, weight) in scored["sums"].get(channel, {}).items():
                cell = sums.setdefault(model, [0.0, 0.0])
                cell[0] += total
                cell[1] += weight
        return {
            model: Figure(total / weight) if weight > 0 else Figure.undefined(NO_CUSTOMERS)
            for model, (total, weight) in ((m, sums.get(m, [0.0, 0.0])) for m in MODELS)
        }

    def watermark_day(self) -> int:
        """The day of the newest event time this worker knows: customers' ages in the
        predictive models are measured to it (not to the windows' "today", which the
        allowed lateness holds back, while every purchase seen so far already counts)."""
        return day_of(self.watermark)

    @property
    def customer_rules(self) -> CustomerRules:
        return CustomerRules(self.fx, self.settings.default_margin)

    @property
    def visitor_rules(self) -> VisitorRules:
        return VisitorRules(
            self.fx,
            self.settings.attribution_lookback_days,
            self.settings.time_decay_half_life_days,
            self.settings.attribution_model,
        )

    def _stored_channels(self) -> list[tuple[str, Any]]:
        """The stored records of the channels this worker exports: those in its owned,
        recovered partitions."""
        return sorted(self.channels.owned_items())

    def shared_watermark(self) -> int:
        """The newest event time any worker has shared (``share_watermark``)."""
        return max((v for v in self.watermarks.values() if isinstance(v, int)), default=0)

    def advance_watermark(self, *event_times: int) -> int:
        """Move the watermark this worker knows on to the newest of ``event_times`` (from
        its own channel records and from what the workers shared); it never goes back."""
        self.watermark = max(self.watermark, *event_times)
        return self.watermark

    def today(self, watermarks: Iterable[int]) -> int:
        """The deployment's event-time "today": the day of the watermark less the allowed
        lateness, so that each worker computes every window from the same day as a single
        worker would, and consistently with the events it judges too late.
        ``watermarks``: of this worker's channel records."""
        watermark = self.advance_watermark(self.shared_watermark(), *watermarks)
        return event_today(watermark, self.settings.allowed_lateness_seconds)

    def figures(self) -> list[ChannelFigures]:
        """The figures of every channel this worker exports; a channel whose every
        attribution was retracted (all buckets empty) is not exported."""
        stored = self._stored_channels()
        today = self.today(ChannelRecord.stored_watermark(value) for _, value in stored)
        versions = (today, self.model_fits.version, self.predictive_sums.version)
        result = []
        for channel, value in stored:
            if ChannelRecord.stored_is_empty(value):
                continue
            cached = self._figures.get(channel)
            if cached is None or cached[0] is not value or cached[1] != versions:
                figures = channel_figures(
                    ChannelRecord.from_json(value),
                    today,
                    self.settings.windows,
                    self.settings.ltv_methods,
                    self.ltv_params,
                    campaign_top=self.settings.campaign_top_n,
                    predictive=self.predictive_ltv(channel),
                )
                cached = self._figures[channel] = (value, versions, figures)
            result.append(cached[2])
        return result

    def retired_channels(self) -> list[str]:
        """Channels held here that are not exported any more (every bucket retracted)."""
        stored = self._stored_channels()
        return [channel for channel, value in stored if ChannelRecord.stored_is_empty(value)]

    async def share_watermark(self) -> None:
        """Learn what the other workers shared, and share the newest event time of this
        worker's channels when it is newer than anything shared so far: at most one write
        per tick, by the worker ahead of the others, and none while no event is newer."""
        watermarks = {c: ChannelRecord.stored_watermark(v) for c, v in self._stored_channels()}
        shared = self.shared_watermark()
        self.advance_watermark(shared, *watermarks.values())
        newest = max(watermarks, key=lambda channel: watermarks[channel], default=None)
        if newest is not None and watermarks[newest] > shared:
            self.watermarks.write(newest, watermarks[newest])

    def pipeline_state(self) -> PipelineState:
        """The watermark, the lag of every assigned partition of the app's own topics (not
        the changelogs) and the rebalances, for ``/metrics``."""
        monitor = self.app.monitor
        changelogs = self.app.tables.changelog_topics
        try:
            assigned = self.app.consumer.assignment()
        except ConsumerNotStarted:
            assigned = set()
        lag = {}
        for tp in assigned:
            if tp.topic in changelogs or tp not in monitor.tp_end_offsets:
                continue
            committed = monitor.tp_committed_offsets.get(tp, 0)
            lag[(tp.topic, tp.partition)] = max(monitor.tp_end_offsets[tp] - committed, 0)
        return PipelineState(self.watermark, lag, monitor.rebalances)

    async def send(self, logical_topic: str, key: str, value: dict[str, Any]) -> Any:
        """Send a JSON message; returns the future of its delivery."""
        return await self.topics[logical_topic].send(key=key.encode(), value=orjson.dumps(value))


class ServiceWorker(Worker):
    """Faust's worker without its terminal spinner: at WARNING and above the spinner sets
    the root logger to DEBUG (faust/worker.py, ``_setup_spinner_handler``), so every debug
    line of Faust and aiokafka, several per message, became a record only to be dropped."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None
        super().on_setup_root_logger(logger, level)

    async def on_startup_finished(self) -> None:
        """Once started and recovered: the modules, the app and its services live as long
        as the worker, and a full collection walked them all, about 55 ms with the loop
        stopped, once a second at 2,000 events/s. Frozen, they are never walked again;
        a larger young generation lets a batch's objects die before they are promoted."""
        gc.freeze()
        gc.set_threshold(YOUNG_GENERATION_OBJECTS, *gc.get_threshold()[1:])
        loop = type(asyncio.get_running_loop())
        log.info("worker started event_loop=%s.%s", loop.__module__, loop.__qualname__)
        await super().on_startup_finished()


YOUNG_GENERATION_OBJECTS = 20_000  # the interpreter's default is 700


def _broker_credentials(settings: Settings) -> Any:
    if settings.kafka_sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=_ssl_context(settings),
        )
    if settings.kafka_security_protocol == "SSL":
        return _ssl_context(settings)
    return None


def _ssl_context(settings: Settings) -> Any:
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    import ssl

    return ssl.create_default_context(cafile=settings.kafka_ssl_cafile)


def create_runtime(settings: Settings, fx_file: RateBook) -> Runtime:
    """Build the app and register the agents; nothing connects until the worker starts.
    ``fx_file``: the rates of ``LTVCAC_FX_RATES_FILE``, read before."""
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=_broker_credentials(settings),
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.topic_partitions,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_enabled=True,
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        consumer_auto_offset_reset="earliest",
        # A batch of events sends hundreds of deltas and changelog writes at once: a few
        # milliseconds of linger and larger batches make that a few produce requests
        # instead of hundreds of small socket writes.
        producer_linger=0.005,
        producer_max_batch_size=256 * 1024,
        producer_max_request_size=settings.max_message_bytes,
        table_standby_replicas=0,
        TableManager=BulkRecoveryTableManager,
        topic_allow_declare=True,
        autodiscover=False,
    )
    app.transport = Transport(app.conf.broker_consumer, app)
    cast(
        BulkRecoveryTableManager, app.tables
    ).recovery.budget_seconds = settings.bulk_recovery_seconds
    app.transport.fetch_max_wait_ms = settings.fetch_max_wait_ms

    def raw_topic(*names: str) -> Any:
        return app.topic(
            *[settings.topic_prefix + name for name in names],
            key_serializer="raw",
            value_serializer="raw",
            partitions=settings.topic_partitions,
        )

    topics = {
        "customers-in": raw_topic(contract.PURCHASES.name, INTERNAL_TOPICS["customer-updates"]),
        "visitors-in": raw_topic(
            contract.AD_CLICKS.name,
            contract.REFERRALS.name,
            contract.IDENTITIES.name,
            INTERNAL_TOPICS["visitor-updates"],
        ),
        "channels-in": raw_topic(contract.AD_SPEND.name, INTERNAL_TOPICS["channel-deltas"]),
        "fx-in": raw_topic(contract.FX_RATES.name),
        "visitor-updates": raw_topic(INTERNAL_TOPICS["visitor-updates"]),
        "customer-updates": raw_topic(INTERNAL_TOPICS["customer-updates"]),
        "channel-deltas": raw_topic(INTERNAL_TOPICS["channel-deltas"]),
        contract.DEAD_LETTERS: raw_topic(contract.DEAD_LETTERS),
    }

    def table(name: str, value_type: type | None = None) -> OwnedTable:
        owned = OwnedTable(
            app,
            name=name,
            default=None,
            beacon=app.tables.beacon,
            partitions=settings.topic_partitions,
            key_type=str,
            value_type=value_type,
        )
        app.tables.add(owned)
        return owned

    def shared_table(kind: type[SharedTable], name: str) -> Any:
        table = kind(
            app,
            name=name,
            default=None,
            beacon=app.tables.beacon,
            partitions=1,
            is_global=True,
            use_partitioner=True,  # one changelog partition for writers in any stream or timer
            recovery_buffer_size=1,  # apply other workers' writes as they arrive
            standby_buffer_size=1,
            key_type=str,
        )
        app.tables.add(table)
        return table

    registry = CollectorRegistry()
    runtime = Runtime(
        settings=settings,
        app=app,
        topics=topics,
        # A shop has millions of customers and visitors and a few channels, whose
        # records every scrape reads: those stay decoded.
        customers=table("customers", value_type=bytes),
        visitors=table("visitors", value_type=bytes),
        channels=table("channels"),
        watermarks=shared_table(SharedTable, "watermarks"),
        fx_table=shared_table(VersionedTable, "fx-rates"),
        model_fits=shared_table(VersionedTable, "model-fits"),
        predictive_sums=shared_table(VersionedTable, "predictive-sums"),
        fx_file=fx_file,
        registry=registry,
        counters=PipelineCounters(registry),
        projection=RedisProjection(
            settings.redis_url, settings.redis_key_prefix, settings.attribution_model
        ),
        horizon=Horizon(
            float(settings.predictive_horizon_years), float(settings.yearly_discount_rate)
        ),
        ltv_params=LtvParams(
            settings.expected_lifetime_years,
            settings.yearly_retention_cost,
            settings.min_tenure_days,
            settings.churn_inactive_days,
        ),
    )
    registry.register(FitCollector(runtime.current_fit))
    registry.register(PipelineCollector(runtime.pipeline_state))
    runtime.channel_metrics = ChannelFiguresCollector(
        runtime.figures, settings.attribution_model, settings.headline_ltv_method
    )
    app.timer(settings.projection_interval_seconds, name="share_watermark")(runtime.share_watermark)

    from stream.agents import register_all

    register_all(runtime)
    return runtime
