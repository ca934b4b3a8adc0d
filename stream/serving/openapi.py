"""The OpenAPI 3.0 document of the HTTP API (served at ``/v1/openapi.json``); a test runs
schemathesis against a live worker with it, so it stays true."""

from __future__ import annotations

from typing import Any

from stream.config import Settings
from stream.domain.attribution import MODELS
from stream.domain.channel import SPEND_CATEGORIES
from stream.serving.reader import COSTS, TOP_METHODS

NUMBER_OR_NULL = {"type": "number", "nullable": True}
MONEY = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "reporting currency"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(schema: str) -> dict[str, Any]:
    return {
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def openapi_document(settings: Settings) -> dict[str, Any]:
    windows, methods = list(settings.windows), list(settings.ltv_methods)
    query = [
        _param("window", {"type": "string", "enum": windows}, "default 90d (or the first)"),
        _param("model", {"type": "string", "enum": list(MODELS)}, "default: the primary model"),
        _param("method", {"type": "string", "enum": methods}, "LTV method, default historical"),
    ]
    channel = {"name": "channel", "in": "path", "required": True, "schema": {"type": "string"}}
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    aggregate_security = [] if settings.api_public_aggregates else secured
    denied = _error("no valid bearer token")
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ltvcac",
            "version": "1",
            "description": "Customer lifetime value, acquisition cost and LTV:CAC per channel.",
        },
        "paths": {
            "/v1/customers/{customer_id}": {
                "get": {
                    "summary": "A customer's value, answered by the worker that owns it",
                    "security": secured,
                    "parameters": [
                        {
                            "name": "customer_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _ok("Customer"),
                        "401": denied,
                        "404": _error("no such customer"),
                    },
                }
            },
            "/v1/channels": {
                "get": {
                    "summary": "Every channel's figures (from the Redis projection)",
                    "security": aggregate_security,
                    "parameters": query,
                    "responses": {
                        "200": _ok("Channels"),
                        "400": _error("unknown window, model or method"),
                        "401": denied,
                    },
                }
            },
            "/v1/channels/{channel}": {
                "get": {
                    "summary": "One channel's figures",
                    "security": aggregate_security,
                    "parameters": [channel, *query],
                    "responses": {
                        "200": _ok("Channel"),
                        "400": _error("unknown window, model or method"),
                        "401": denied,
                        "404": _error("no such channel"),
                    },
                }
            },
            "/v1/top": {
                "get": {
                    "summary": "The customers with the most value, overall or of a channel",
                    "security": secured,
                    "parameters": [
                        _param("channel", {"type": "string"}, "acquisition channel"),
                        _param(
                            "limit",
                            {"type": "integer", "minimum": 1, "maximum": 1000},
                            "default 10",
                        ),
                        _param(
                            "method",
                            {"type": "string", "enum": list(TOP_METHODS)},
                            "gross profit to date (historical) or predicted CLV",
                        ),
                    ],
                    "responses": {
                        "200": _ok("Top"),
                        "400": _error("bad limit or method"),
                        "401": denied,
                    },
                }
            },
            "/v1/cohorts/{channel}": {
                "get": {
                    "summary": "A channel's acquisition cohorts (primary model)",
                    "security": aggregate_security,
                    "parameters": [channel],
                    "responses": {
                        "200": _ok("Cohorts"),
                        "401": denied,
                        "404": _error("no cohorts for this channel"),
                    },
                }
            },
            "/v1/rebuild": {
                "post": {
                    "summary": "Write every customer this worker owns to Redis again",
                    "security": secured,
                    "responses": {"202": _ok("Rebuild"), "401": denied},
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness and readiness",
                    "security": [],
                    "responses": {"200": _ok("Health"), "503": _ok("Health")},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _schemas(),
        },
    }


def _param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _schemas() -> dict[str, Any]:
    weights = {"type": "object", "additionalProperties": {"type": "number"}}
    nullable_money = {**MONEY, "nullable": True}
    nullable_time = {"type": "string", "format": "date-time", "nullable": True}
    channel_props = {
        "channel": {"type": "string"},
        "window": {"type": "string"},
        "model": {"type": "string"},
        "method": {"type": "string"},
        "spend": NUMBER_OR_NULL,
        "spend_by_category": _object({c: NUMBER_OR_NULL for c in SPEND_CATEGORIES}),
        "new_customers": NUMBER_OR_NULL,
        "cac": _object({cost: NUMBER_OR_NULL for cost in COSTS}),
        "ltv": NUMBER_OR_NULL,
        "ltv_cac": NUMBER_OR_NULL,
        "payback_months": NUMBER_OR_NULL,
        "payback_basis": {"type": "string", "enum": ["cohort", "rate"], "nullable": True},
    }
    return {
        "Error": _object(
            {"error": _object({"code": {"type": "string"}, "message": {"type": "string"}})}
        ),
        "Customer": _object(
            {
                "customer_id": {"type": "string"},
                "revenue": nullable_money,
                "gross_profit": nullable_money,
                "orders": {"type": "integer"},
                "refunds": {"type": "integer"},
                "first_order_at": nullable_time,
                "last_order_at": nullable_time,
                "acquisition_channel": {"type": "string", "nullable": True},
                "attribution": weights,
                "attribution_models": {"type": "object", "additionalProperties": weights},
                "referred_by": {"type": "string", "nullable": True},
                "referred_customers": {"type": "integer"},
                "predictive": _object(
                    {
                        "clv": MONEY,
                        "probability_alive": {"type": "number"},
                        "expected_purchases": {"type": "number"},
                        "model_version": {"type": "integer"},
                    }
                ),
            },
            optional=("predictive",),
        ),
        "Channel": _object(channel_props),
        "Channels": _object(
            {"channels": {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}}}
        ),
        "Top": _object(
            {
                "customers": {
                    "type": "array",
                    "items": _object({"customer_id": {"type": "string"}, "value": MONEY}),
                }
            }
        ),
        "Cohorts": _object(
            {
                "channel": {"type": "string"},
                "cohorts": {
                    "type": "array",
                    "items": _object(
                        {
                            "month": {"type": "string", "pattern": r"^\d{4}-\d{2}$"},
                            "customers": {"type": "number"},
                            "gp_per_customer": {"type": "array", "items": {"type": "number"}},
                            "gp_per_customer_to_date": {"type": "number"},
                        }
                    ),
                },
            }
        ),
        "Rebuild": _object({"customers": {"type": "integer"}}),
        "Health": _object(
            {
                "live": {"type": "boolean"},
                "ready": {"type": "boolean"},
                "broker_connected": {"type": "boolean"},
                "partitions_assigned": {"type": "integer"},
                "recovery_done": {"type": "boolean"},
            }
        ),
    }


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
    }
