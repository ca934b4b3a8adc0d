"""A small shop history with figures worked out by hand.

Channels and customers:
- search: clicks 2.50 + 1.50 by v1, agency fee 70.00 over 7 days -> spend 74.00.
  c1 (via v1) buys o1 100.00 (cost 40.00 -> profit 60.00) and o2 50.00 (margin 0.5
  -> 25.00), and gets 20.00 of o1 refunded (-20% of o1's profit = -12.00):
  revenue 130.00, gross profit 73.00, 2 orders.
- social: clicks 0.80 (v2) + 0.70 (v3, never buys) -> spend 1.50.
  c2 (via v2) buys o3 40.00, no cost given -> default margin 30% -> profit 12.00.
- direct: c3 buys o4 20.00 with margin 0.25 -> profit 5.00; no spend.
- referral: c1 refers v4 (reward 5.00); c4 (via v4) buys o5 30.00, cost 20.00 -> 10.00.
- all: spend 80.50, 4 customers, gross profit 100.00.

The newest event is 2 March 12:00 UTC, so every window of 30 days or more holds
everything, and each customer counts with the minimum tenure of 30 days.
"""

from __future__ import annotations

from tests.integration.events import click, purchase, referral, refund, spend, wire

MESSAGES = wire(
    [
        click("k1", "2026-02-28T09:00:00Z", "v1", "search", "2.50"),
        click("k2", "2026-03-01T09:30:00Z", "v1", "search", "1.50"),
        click("k3", "2026-03-01T08:00:00Z", "v2", "social", "0.80"),
        click("k4", "2026-03-01T08:10:00Z", "v3", "social", "0.70"),
        spend(
            "s1", "2026-03-01T00:00:00Z", "search", "70.00", "agency", "2026-02-24", "2026-03-02"
        ),
        referral("r1", "2026-03-01T15:00:00Z", "c1", "v4", "5.00"),
        purchase(
            "p1",
            "2026-03-01T10:00:00+00:00",
            "c1",
            "o1",
            "100.00",
            cost_of_goods="40.00",
            visitor_id="v1",
        ),
        purchase("p3", "2026-03-01T11:00:00Z", "c2", "o3", "40.00", visitor_id="v2"),
        purchase("p4", "2026-03-01T13:00:00+01:00", "c3", "o4", "20.00", margin="0.25"),
        purchase("p2", "2026-03-02T09:00:00Z", "c1", "o2", "50.00", margin="0.5"),
        refund("f1", "2026-03-02T10:00:00Z", "c1", "o1", "20.00"),
        purchase(
            "p5", "2026-03-02T12:00:00Z", "c4", "o5", "30.00", cost_of_goods="20", visitor_id="v4"
        ),
    ]
)

# channel -> (spend, new customers, historical LTV) over the lifetime (and 30d, 90d)
EXPECTED = {
    "search": (74.00, 1.0, 73.00),
    "social": (1.50, 1.0, 12.00),
    "direct": (0.00, 1.0, 5.00),
    "referral": (5.00, 1.0, 10.00),
    "all": (80.50, 4.0, 25.00),
}
# search, formula: 36.50 per order x 2 orders / (30/365 years) x 3 years
SEARCH_FORMULA_LTV = 36.5 * 2 * 365 / 30 * 3
# search, payback: CAC 74.00 / (73.00 / (30/365) / 12 per month)
SEARCH_PAYBACK_MONTHS = 74.0 / (73.0 * 365 / 30 / 12)
