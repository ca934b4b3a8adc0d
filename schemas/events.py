"""Event contracts: one pydantic model per event type, JSON on the wire.

Money arrives as a decimal string or a JSON number and is parsed to ``Decimal``;
state keeps integer minor units (see ``stream.domain.money``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

SCHEMA_VERSION = 1
RESERVED_CHANNELS = frozenset({"all"})
MAX_AMOUNT = Decimal("1000000000")  # one billion per event is far beyond any real order
MAX_SPEND_PERIOD_DAYS = 366


def _two_decimals(value: Decimal) -> Decimal:
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("amount has more than 2 decimal places")
    return value


def _not_reserved(value: str) -> str:
    if value in RESERVED_CHANNELS:
        raise ValueError(f"channel name {value!r} is reserved")
    return value


Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Channel = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$"),
    AfterValidator(_not_reserved),
]
Campaign = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Amount = Annotated[
    Decimal,
    Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False),
    AfterValidator(_two_decimals),
]
Cost = Annotated[
    Decimal,
    Field(ge=0, le=MAX_AMOUNT, allow_inf_nan=False),
    AfterValidator(_two_decimals),
]
Margin = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Identifier = Field(description="Producer-unique id, used for de-duplication.")
    occurred_at: AwareDatetime = Field(description="Event time, RFC 3339 with offset.")
    schema_version: Literal[1] = Field(description="Contract version of this event.")


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
    amount: Amount
    currency: Currency
    category: Literal["media", "salaries", "tools", "agency", "other"]
    period_start: dt.date = Field(description="First day of the period (inclusive, UTC).")
    period_end: dt.date = Field(description="Last day of the period (inclusive, UTC).")

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


Event = Annotated[
    Purchase | Refund | AdClick | AdSpend | Referral | Identify, Field(discriminator="type")
]
EVENT_MODELS: tuple[type[EventBase], ...] = (Purchase, Refund, AdClick, AdSpend, Referral, Identify)
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(raw: bytes) -> Purchase | Refund | AdClick | AdSpend | Referral | Identify:
    """Parse one JSON message; raises ``pydantic.ValidationError`` on any defect."""
    return event_adapter.validate_json(raw)
