"""The HTTP API on the worker's web server: JSON under ``/v1``, ``/health``, and the OpenAPI
document that describes them (``openapi.py``).

A customer is answered from the state of the worker that owns it: a request that reaches
another worker is forwarded to the owner (the partition of a customer id is the one a
shop's producer sends its purchases to). Aggregates (channels, top customers, cohorts)
are answered from the Redis projection, which holds every channel whichever worker
exports it. Customer-level endpoints need a bearer token (``LTVCAC_API_TOKENS``); the
aggregates too unless ``LTVCAC_API_PUBLIC_AGGREGATES`` is true.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiokafka.partitioner import murmur2
from faust.exceptions import ConsumerNotStarted
from faust.web import Request, Response, View

from stream.domain.customer import CustomerRecord
from stream.serving.openapi import openapi_document
from stream.serving.projection import customer_fields
from stream.serving.reader import TOP_METHODS, ChannelQuery, QueryError, Reader, customer_json

if TYPE_CHECKING:
    from stream.app import Runtime

log = logging.getLogger(__name__)
FORWARDED = "X-Ltvcac-Forwarded"  # set on a request forwarded to the owner: never again


def partition_of(customer_id: str, partitions: int) -> int:
    """The partition of a customer id under Kafka's default (murmur2) partitioner."""
    hashed: int = murmur2(customer_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class Api:
    """The endpoints' logic over a runtime, each returning (status, JSON body)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.reader = Reader(runtime.projection.client, runtime.settings.redis_key_prefix)

    def authorised(self, request: Request, customer_level: bool) -> bool:
        """A valid bearer token, unless the endpoint is an aggregate made public. Every
        configured token is compared in constant time, so timing tells nothing."""
        settings = self.runtime.settings
        if not customer_level and settings.api_public_aggregates:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        matches = [hmac.compare_digest(given.encode(), t.encode()) for t in settings.api_tokens]
        return any(matches)

    def channel_query(self, request: Request) -> ChannelQuery:
        settings = self.runtime.settings
        return ChannelQuery.parse(
            list(settings.windows),
            list(settings.ltv_methods),
            settings.attribution_model,
            request.query.get("window"),
            request.query.get("model"),
            request.query.get("method"),
        )

    def local_customer(self, customer_id: str) -> dict[str, Any] | None:
        stored = self.runtime.customers.get_json(customer_id)
        if stored is None:
            return None
        record = CustomerRecord.from_json(stored)
        fields = customer_fields(record, self.runtime.settings.attribution_model)
        return customer_json(customer_id, fields | self.runtime.projection.scorer(record))

    def owner_url(self, customer_id: str) -> str | None:
        """The web address of the worker that owns the customer; None when it is this one
        or when the owner is not known (then this worker answers from what it has)."""
        table = self.runtime.customers
        changelog = table.changelog_topic_name
        partition = partition_of(customer_id, self.runtime.settings.topic_partitions)
        if partition in table.ready_partitions:
            return None
        for url, topics in self.runtime.app.router.table_metadata(table.name).items():
            if partition in topics.get(changelog, []) and str(url) != self.own_url:
                return str(url).rstrip("/")
        return None

    def rebuild(self) -> int:
        """Queue every owned customer for the next Redis write; how many."""
        customers = self.runtime.customers.owned_keys()
        for customer_id in customers:
            self.runtime.projection.customer_stale(customer_id)
        count = len(customers)
        log.info("redis rebuild requested customers=%d", count)
        return count

    @property
    def own_url(self) -> str:
        return str(self.runtime.app.conf.canonical_url)

    def health(self) -> tuple[int, dict[str, Any]]:
        """Liveness (it answers) and readiness: Kafka reachable, partitions assigned and
        table recovery done."""
        app = self.runtime.app
        try:
            assigned = len(app.consumer.assignment())
        except ConsumerNotStarted:
            assigned = 0
        watch = self.runtime.kafka_watch
        checks = {
            "broker_connected": watch is None or watch.reachable,
            "partitions_assigned": assigned,
            "recovery_done": app.tables.recovery.completed.is_set(),  # type: ignore[attr-defined]
        }
        ready = bool(checks["broker_connected"] and assigned and checks["recovery_done"])
        return (200 if ready else 503), {"live": True, "ready": ready, **checks}


def error(view: View, status: int, code: str, message: str) -> Response:
    return view.json({"error": {"code": code, "message": message}}, status=status)


Handler = Callable[[View, Request, Api], Awaitable[Response]]


def register(runtime: Runtime) -> None:
    app, api = runtime.app, Api(runtime)

    def page(path: str, handler: Handler, customer_level: bool) -> None:
        async def get(view: View, request: Request, **_match: Any) -> Response:
            if not api.authorised(request, customer_level):
                return error(view, 401, "unauthorised", "a valid bearer token is required")
            try:
                return await handler(view, request, api)
            except QueryError as problem:
                return error(view, 400, "bad_request", str(problem))

        name = "".join(part.strip("{}").title() for part in path.split("/"))
        app.page(path, name=name)(type(name, (View,), {"get": get}))

    page("/v1/customers/{customer_id}", customer_view, customer_level=True)
    page("/v1/channels", channels_view, customer_level=False)
    page("/v1/channels/{channel}", channel_view, customer_level=False)
    page("/v1/top", top_view, customer_level=True)
    page("/v1/cohorts/{channel}", cohorts_view, customer_level=False)

    @app.page("/v1/rebuild")
    class Rebuild(View):
        async def post(self, request: Request) -> Response:
            """Write every customer this worker owns to Redis again (channels are written
            on every tick anyway)."""
            if not api.authorised(request, customer_level=True):
                return error(self, 401, "unauthorised", "a valid bearer token is required")
            count = api.rebuild()
            return self.json({"customers": count}, status=202)

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            status, body = api.health()
            return self.json(body, status=status)

    @app.page("/v1/openapi.json")
    class OpenApi(View):
        async def get(self, request: Request) -> Response:
            return self.json(openapi_document(runtime.settings))


async def customer_view(view: View, request: Request, api: Api) -> Response:
    customer_id = request.match_info["customer_id"]
    owner = None if request.headers.get(FORWARDED) else api.owner_url(customer_id)
    if owner is not None:
        return await forward(view, request, api, owner)
    found = api.local_customer(customer_id)
    if found is None:
        return error(view, 404, "not_found", "no such customer")
    return view.json(found)


async def forward(view: View, request: Request, api: Api, owner: str) -> Response:
    """Ask the owner and answer what it answers."""
    headers = {FORWARDED: api.own_url}
    if "Authorization" in request.headers:
        headers["Authorization"] = request.headers["Authorization"]
    async with api.runtime.app.http_client.get(
        owner + str(request.rel_url), headers=headers
    ) as answer:
        body = await answer.read()
    return view.bytes(body, content_type="application/json", status=answer.status)


async def channels_view(view: View, request: Request, api: Api) -> Response:
    query = api.channel_query(request)
    return view.json({"channels": await api.reader.channels(query)})


async def channel_view(view: View, request: Request, api: Api) -> Response:
    query = api.channel_query(request)
    found = await api.reader.channel(request.match_info["channel"], query)
    if found is None:
        return error(view, 404, "not_found", "no such channel")
    return view.json(found)


async def top_view(view: View, request: Request, api: Api) -> Response:
    raw_limit = request.query.get("limit", "10")
    if not raw_limit.isdigit():
        raise QueryError(f"limit {raw_limit!r} is not a whole number")
    method = request.query.get("method", TOP_METHODS[0])
    ranked = await api.reader.top(request.query.get("channel"), int(raw_limit), method)
    return view.json({"customers": ranked})


async def cohorts_view(view: View, request: Request, api: Api) -> Response:
    channel = request.match_info["channel"]
    cohorts = await api.reader.cohorts(channel)
    if not cohorts:
        return error(view, 404, "not_found", "no cohorts for this channel")
    return view.json({"channel": channel, "cohorts": cohorts})
