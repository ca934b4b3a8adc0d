"""Event contracts: one pydantic model per event type, JSON on the wire.

Money arrives as a plain decimal string (``"12.34"``) or a JSON number and is parsed to
``Decimal``; state keeps integer minor units (see ``stream.domain.money``).

The models are strict where pydantic's lax mode would guess: a timestamp is an RFC 3339
string (never a number of seconds or milliseconds), a date is ``YYYY-MM-DD``, a money
string is ASCII digits with an optional point (no exponent, spaces, underscores or
non-ASCII digits), ``schema_version`` is the JSON integer 1 (not ``true`` or ``1.0``).
Event times and dates must lie in [``EARLIEST_EVENT_TIME``, ``LATEST_EVENT_TIME``).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidatorFunctionWrapHandler,
    WithJsonSchema,
    WrapValidator,
    model_validator,
)

SCHEMA_VERSION = 1
RESERVED_CHANNELS = frozenset({"all", "paid"})  # the blended and the paid figures
MAX_AMOUNT = Decimal("1000000000")  # one billion per event is far beyond any real order
MAX_SPEND_PERIOD_DAYS = 366
MAX_RATE = Decimal("1000000")  # of one currency unit in the reporting currency
MAX_RATE_DECIMALS = 12  # enough for 1 VND in USD (0.0000393); amount x rate stays exact

# Fixed bounds of event time, the same on every machine and at every moment: whether an
# event is valid must not depend on the wall clock, or a replay of last year's history
# would dead-letter what the live run accepted (and "today" would differ by worker). The
# bounds catch what no shop produces — epoch zero, year 9999, a default or corrupted
# date — which would otherwise move the event-time watermark to a year nobody lives in
# and empty every window. Period dates of ad spend lie in the same range.
EARLIEST_EVENT_TIME = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # inclusive
LATEST_EVENT_TIME = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)  # exclusive
EARLIEST_DATE = EARLIEST_EVENT_TIME.date()  # inclusive
LATEST_DATE = LATEST_EVENT_TIME.date() - dt.timedelta(days=1)  # inclusive

TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DECIMAL_PATTERN = r"^[0-9]+(\.[0-9]+)?$"


def _two_decimals(value: Decimal) -> Decimal:
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("amount has more than 2 decimal places")
    return value


def _rate_decimals(value: Decimal) -> Decimal:
    if value.as_tuple().exponent < -MAX_RATE_DECIMALS:  # type: ignore[operator]
        raise ValueError(f"rate has more than {MAX_RATE_DECIMALS} decimal places")
    return value


def _not_reserved(value: str) -> str:
    if value in RESERVED_CHANNELS:
        raise ValueError(f"channel name {value!r} is reserved")
    return value


# The checks below wrap pydantic's own: what pydantic rejects keeps pydantic's message,
# and what its lax mode would accept but the contract does not is rejected here.


def _plain_decimal(value: Any, handler: ValidatorFunctionWrapHandler) -> Decimal:
    parsed: Decimal = handler(value)
    if isinstance(value, str) and re.fullmatch(DECIMAL_PATTERN, value) is None:
        raise ValueError("not a plain decimal number (ASCII digits, an optional point, no sign)")
    return parsed


def _timestamp(value: Any, handler: ValidatorFunctionWrapHandler) -> dt.datetime:
    parsed: dt.datetime = handler(value)
    if not isinstance(value, str) or re.fullmatch(TIMESTAMP_PATTERN, value) is None:
        raise ValueError("not an RFC 3339 timestamp string such as 2026-03-01T10:00:00Z")
    if not EARLIEST_EVENT_TIME <= parsed < LATEST_EVENT_TIME:
        raise ValueError(
            f"event time outside {EARLIEST_EVENT_TIME:%Y-%m-%d} (inclusive) to"
            f" {LATEST_EVENT_TIME:%Y-%m-%d} (exclusive), UTC"
        )
    return parsed


def _date(value: Any, handler: ValidatorFunctionWrapHandler) -> dt.date:
    parsed: dt.date = handler(value)
    if not isinstance(value, str) or re.fullmatch(DATE_PATTERN, value) is None:
        raise ValueError("not a date string such as 2026-03-01")
    if not EARLIEST_DATE <= parsed <= LATEST_DATE:
        raise ValueError(f"date outside {EARLIEST_DATE} to {LATEST_DATE} (inclusive)")
    return parsed


def _json_integer(value: Any, handler: ValidatorFunctionWrapHandler) -> int:
    parsed: int = handler(value)
    if type(value) is not int:  # not true, not 1.0
        raise ValueError("not a JSON integer")
    return parsed


def _money_schema(minimum: Decimal, maximum: Decimal, *, exclusive_minimum: bool) -> Any:
    """JSON Schema of money: a number in range, or a plain decimal string."""
    low = "exclusiveMinimum" if exclusive_minimum else "minimum"
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", low: float(minimum), "maximum": float(maximum)},
                {"type": "string", "pattern": DECIMAL_PATTERN},
            ]
        }
    )


Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Channel = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
    AfterValidator(_not_reserved),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^[a-z0-9][a-z0-9_.-]{0,63}$",
            "not": {"enum": sorted(RESERVED_CHANNELS)},
        }
    ),
]
Campaign = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[
    Decimal,
    Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False),
    AfterValidator(_two_decimals),
    WrapValidator(_plain_decimal),
    _money_schema(Decimal(0), MAX_AMOUNT, exclusive_minimum=True),
]
Cost = Annotated[
    Decimal,
    Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False),
    AfterValidator(_two_decimals),
    WrapValidator(_plain_decimal),
    _money_schema(Decimal(0), MAX_AMOUNT, exclusive_minimum=False),
]
Margin = Annotated[
    Decimal,
    Field(ge=0, le=1, allow_inf_nan=False),
    WrapValidator(_plain_decimal),
    _money_schema(Decimal(0), Decimal(1), exclusive_minimum=False),
]
Rate = Annotated[
    Decimal,
    Field(gt=0, le=MAX_RATE, allow_inf_nan=False),
    AfterValidator(_rate_decimals),
    WrapValidator(_plain_decimal),
    _money_schema(Decimal(0), MAX_RATE, exclusive_minimum=True),
]
Timestamp = Annotated[
    AwareDatetime,
    WrapValidator(_timestamp),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN}),
]
Date = Annotated[
    dt.date,
    WrapValidator(_date),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]
Version = Annotated[Literal[1], WrapValidator(_json_integer)]


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Identifier = Field(description="Producer-unique id, used for de-duplication.")
    occurred_at: Timestamp = Field(
        description="Event time, RFC 3339 with offset, from 2000-01-01 (inclusive)"
        " to 2100-01-01 (exclusive) UTC."
    )
    schema_version: Version = Field(description="Contract version of this event.")


class Purchase(EventBase):
    """A customer paid for an order. Key: customer_id."""

    type: Literal["purchase"]
    customer_id: Identifier
    order_id: Identifier
    amount: Amount = Field(description="Order value charged to the customer.")
    currency: Currency
    cost_of_goods: Cost | None = Field(
        default=None, description="Cost of the goods sold, same currency as amount."
    )
    margin: Margin | None = Field(
        default=None, description="Gross margin as a fraction, used when cost_of_goods is absent."
    )
    visitor_id: Identifier | None = None
    click_id: Identifier | None = None
    referral_code: Identifier | None = None

    @model_validator(mode="after")
    def _one_profit_basis(self) -> Purchase:
        if self.cost_of_goods is not None and self.margin is not None:
            raise ValueError("give cost_of_goods or margin, not both")
        return self


class Refund(EventBase):
    """Money returned to a customer for an earlier order. Key: customer_id."""

    type: Literal["refund"]
    customer_id: Identifier
    order_id: Identifier
    amount: Amount
    currency: Currency


class AdClick(EventBase):
    """A paid click by an anonymous visitor. Key: visitor_id."""

    type: Literal["ad_click"]
    visitor_id: Identifier
    channel: Channel
    campaign: Campaign | None = None
    cost: Cost
    currency: Currency


class AdSpend(EventBase):
    """Money spent on a channel over a period of days. Key: channel."""

    type: Literal["ad_spend"]
    channel: Channel
    campaign: Campaign | None = Field(
        default=None, description="Campaign the spend belongs to, if any."
    )
    amount: Amount
    currency: Currency
    category: Literal["media", "salaries", "tools", "agency", "other"]
    period_start: Date = Field(
        description="First day of the period (inclusive, UTC), 2000-01-01 to 2099-12-31."
    )
    period_end: Date = Field(
        description="Last day of the period (inclusive, UTC), 2000-01-01 to 2099-12-31."
    )

    @model_validator(mode="after")
    def _period_in_order(self) -> AdSpend:
        days = (self.period_end - self.period_start).days + 1
        if days < 1:
            raise ValueError("period_end is before period_start")
        if days > MAX_SPEND_PERIOD_DAYS:
            raise ValueError(f"period longer than {MAX_SPEND_PERIOD_DAYS} days")
        return self


class Referral(EventBase):
    """An existing customer referred a visitor. Key: referred_visitor_id."""

    type: Literal["referral"]
    referrer_customer_id: Identifier
    referred_visitor_id: Identifier
    referred_customer_id: Identifier | None = None
    reward_cost: Cost = Field(description="Reward paid for the referral (referrer and referee).")
    currency: Currency


class Identify(EventBase):
    """A visitor logged in or signed up as a customer. Key: visitor_id."""

    type: Literal["identify"]
    visitor_id: Identifier
    customer_id: Identifier


class FxRate(EventBase):
    """An exchange rate into the reporting currency, from a day on. Key: currency."""

    type: Literal["fx_rate"]
    currency: Currency
    rate: Rate = Field(description="Value of one unit of currency in the reporting currency.")
    effective_date: Date = Field(
        description="First day (UTC) the rate applies; it applies until the day of the"
        " currency's next rate."
    )


AnyEvent = Purchase | Refund | AdClick | AdSpend | Referral | Identify | FxRate
Event = Annotated[AnyEvent, Field(discriminator="type")]
EVENT_MODELS: tuple[type[EventBase], ...] = (
    Purchase,
    Refund,
    AdClick,
    AdSpend,
    Referral,
    Identify,
    FxRate,
)
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes) -> AnyEvent:
    """Parse one JSON message; raises ``pydantic.ValidationError`` on any defect."""
    return event_adapter.validate_json(raw)
