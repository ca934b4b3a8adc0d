"""The end-to-end test's shop: one paid channel below 3:1, the others above it.

Event times are relative to the moment the test builds the shop, so the event-time lag
stays small while the test runs. Its figures are worked out here from the events (gross
profit by the README's definition), independently of the service:

- search: 12 customers, each a click (5.00) and two orders on different days; an agency
  fee of 200.00 over the period. LTV:CAC = gross profit / spend, well above 3.
- social: 6 customers, each a click (3.00) and two orders at the default margin; a tool
  bill that makes its spend exactly half its gross profit: LTV:CAC 2.00, a warning
  (below 3) but not critical (not below 1).
- referral: one referred customer (reward 5.00), LTV:CAC 10.
- direct: 4 customers without a touch or spend: no ratio (absent, reason no_spend).

Every customer is acquired in the last two weeks, so every window holds everything and
LTV:CAC (historical LTV over fully loaded CAC) of a channel is its gross profit over its
spend. 18 repeat customers with profit let the predictive models be fitted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.integration.conftest import encode
from tests.integration.events import click as ad_click
from tests.integration.events import purchase, referral, spend

DEFAULT_MARGIN = Decimal("0.30")  # the service's default (LTVCAC_DEFAULT_MARGIN)
BAD_CHANNEL = "social"
BAD_MESSAGE = ("purchases", "broken", b"{not json")  # one dead letter, reason invalid_json
Message = tuple[str, str, dict[str, Any]]


@dataclass
class Shop:
    messages: list[Message] = field(default_factory=list)
    gross_profit: dict[str, Decimal] = field(default_factory=dict)
    spend: dict[str, Decimal] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)

    def count(self, channel: str, profit: Decimal = Decimal(0), cost: Decimal = Decimal(0)) -> None:
        """Add to the channel and to the blended records it feeds (all; paid unless direct)."""
        for record in (channel, "all", *(("paid",) if channel != "direct" else ())):
            self.gross_profit[record] = self.gross_profit.get(record, Decimal(0)) + profit
            self.spend[record] = self.spend.get(record, Decimal(0)) + cost

    def ratio(self, channel: str) -> float | None:
        """Headline LTV:CAC: (profit / customers) / (spend / customers); None without spend."""
        if not self.spend.get(channel):
            return None
        return float(self.gross_profit[channel] / self.spend[channel])

    def wire(self) -> list[tuple[str, str | None, bytes]]:
        """The messages in event-time order, as a Kafka client sends them."""
        ordered = sorted(self.messages, key=lambda message: message[2]["occurred_at"])
        return [(topic, key, encode(body)) for topic, key, body in ordered]


def _at(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def build(now: dt.datetime) -> Shop:
    shop = Shop()
    start = (now - dt.timedelta(days=14)).replace(microsecond=0)

    def customer(
        channel: str,
        name: str,
        acquired: dt.datetime,
        orders: list[tuple[int, str]],
        click: tuple[str, str] | None = None,
    ) -> None:
        """``orders`` (amount, margin or "" for the default) two days apart from
        ``acquired``; ``click`` (cost, campaign) an hour before the first."""
        visitor = f"v-{name}"
        if click is not None:
            cost, campaign = click
            at = _at(acquired - dt.timedelta(hours=1))
            shop.messages.append(
                ad_click(f"k-{name}", at, visitor, channel, cost, campaign=campaign)
            )
            shop.count(channel, cost=Decimal(cost))
        for number, (amount, margin) in enumerate(orders):
            at = _at(acquired + dt.timedelta(days=2 * number))
            extra = {"margin": margin} if margin else {}
            order = f"{name}-{number}"
            shop.messages.append(
                purchase(
                    f"p-{order}",
                    at,
                    f"c-{name}",
                    f"o-{order}",
                    f"{amount}.00",
                    visitor_id=visitor,
                    **extra,
                )
            )
            shop.count(channel, profit=amount * (Decimal(margin) if margin else DEFAULT_MARGIN))
        shop.customers[channel] = shop.customers.get(channel, 0) + 1

    for i in range(12):
        acquired = start + dt.timedelta(hours=20 * i)
        campaign = "brand" if i % 2 else "generic"
        customer(
            "search",
            f"search-{i}",
            acquired,
            [(80 + 5 * i, "0.6"), (60 + 3 * i, "0.5")],
            click=("5.00", campaign),
        )
    for i in range(6):
        acquired = start + dt.timedelta(hours=9 + 30 * i)
        customer(
            "social",
            f"social-{i}",
            acquired,
            [(40 + 2 * i, ""), (30 + i, "")],
            click=("3.00", "spring"),
        )
    for i in range(4):
        customer(
            "direct", f"direct-{i}", start + dt.timedelta(days=2 + 3 * i), [(20 + 5 * i, "0.25")]
        )

    # c-search-0 refers a visitor, who buys two hours later
    referred_at = start + dt.timedelta(days=5)
    shop.messages.append(referral("r-1", _at(referred_at), "c-search-0", "v-referred-0", "5.00"))
    shop.messages.append(
        purchase(
            "p-referred-0",
            _at(referred_at + dt.timedelta(hours=2)),
            "c-referred-0",
            "o-referred-0",
            "100.00",
            visitor_id="v-referred-0",
            margin="0.5",
        )
    )
    shop.count("referral", profit=Decimal("50.00"), cost=Decimal("5.00"))
    shop.customers["referral"] = 1

    period = (start.date().isoformat(), (now - dt.timedelta(days=1)).date().isoformat())
    agency = Decimal("200.00")
    shop.messages.append(spend("s-search", _at(start), "search", _money(agency), "agency", *period))
    shop.count("search", cost=agency)
    # social's tool bill: what makes its spend half its gross profit
    tools = shop.gross_profit["social"] / 2 - shop.spend["social"]
    shop.messages.append(spend("s-social", _at(start), "social", _money(tools), "tools", *period))
    shop.count("social", cost=tools)
    # the newest event, ten minutes ago: the watermark
    shop.messages.append(
        purchase(
            "p-direct-last",
            _at(now - dt.timedelta(minutes=10)),
            "c-direct-0",
            "o-direct-last",
            "8.00",
            margin="0.25",
        )
    )
    shop.count("direct", profit=Decimal("2.00"))
    return shop
