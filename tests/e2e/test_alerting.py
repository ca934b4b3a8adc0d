"""End to end with the real binaries: a worker on the embedded broker applies a shop where
one paid channel (social) is below 3:1; a real Prometheus scrapes it every second and
evaluates the project's alert rules (their ``for`` shortened to 5 s, see
`tests.e2e.servers.fast_rules`), a real Alertmanager routes the alerts with the project's
configuration to the project's webhook receiver. The warning for social, and for no other
channel, must reach the receiver with its labels and annotations; every rule must evaluate
without error; every query of every Grafana panel must return data from that Prometheus.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import dashboards
from tests.e2e.conftest import PublishedShop
from tests.e2e.servers import (
    RULES,
    Prometheus,
    Webhook,
    alertmanager,
    fast_rules,
    prometheus,
    webhook,
)
from tests.e2e.shop import BAD_CHANNEL

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

RATIO_ALERTS = {"LtvCacRatioBelowTarget", "LtvCacRatioBelowBreakEven"}
TIMEOUT = 120.0  # seconds; a busy 2-core machine may be slow to start three servers


@dataclass(frozen=True)
class Monitoring:
    prometheus: Prometheus
    webhook: Webhook


@pytest.fixture(scope="module")
def monitoring(
    published_shop: PublishedShop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitoring]:
    """Started once the shop's figures are final, so Prometheus never sees them change."""
    workdir = tmp_path_factory.mktemp("monitoring")
    rules = fast_rules(RULES, workdir / "ltvcac.rules.yml")
    with (
        webhook(workdir) as receiver,
        alertmanager(workdir, receiver.url) as alertmanager_address,
        prometheus(workdir, published_shop.worker_address, rules, alertmanager_address) as server,
    ):
        yield Monitoring(server, receiver)


def poll(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """``check()`` once it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)  # poll interval


def notifications(receiver: Webhook, alertname: str) -> list[dict[str, Any]]:
    return [a for a in receiver.received() if a["labels"].get("alertname") == alertname]


def test_the_warning_for_the_channel_below_3_and_no_other_reaches_the_webhook(
    published_shop: PublishedShop, monitoring: Monitoring
) -> None:
    shop = published_shop.shop
    poll(
        lambda: notifications(monitoring.webhook, "LtvCacRatioBelowTarget"),
        "LtvCacRatioBelowTarget at the webhook",
    )
    received = [
        a for a in monitoring.webhook.received() if a["labels"]["alertname"] in RATIO_ALERTS
    ]
    assert [(a["labels"]["channel"], a["status"]) for a in received] == [(BAD_CHANNEL, "firing")], (
        f"only {BAD_CHANNEL}'s warning was expected; the webhook got {received}"
    )
    alert = received[0]
    assert alert["labels"] == {
        "alertname": "LtvCacRatioBelowTarget",
        "channel": BAD_CHANNEL,
        "window": "90d",
        "severity": "warning",
    }
    ratio = shop.ratio(BAD_CHANNEL)
    assert ratio is not None and 1 <= ratio < 3, "the shop must make social a warning only"
    annotations = alert["annotations"]
    assert annotations["summary"] == (
        f"LTV:CAC of channel {BAD_CHANNEL} is {ratio:.2f}, below the 3:1 target (90d window)"
    )
    assert (
        f'ltvcac_headline_ltv_cac_ratio{{channel="{BAD_CHANNEL}",window="90d"}}'
        in annotations["description"]
    )
    assert (
        annotations["dashboard"] == f"/d/ltvcac-channels?var-channel={BAD_CHANNEL}&var-window=90d"
    )

    # Prometheus saw every channel with a ratio, and only social is below 3 (none below 1)
    seen = {
        sample["metric"]["channel"]: float(sample["value"][1])
        for sample in monitoring.prometheus.query(
            'max by (channel) (ltvcac_headline_ltv_cac_ratio{window="90d"})'
        )
    }
    expected = {c: shop.ratio(c) for c in shop.spend if shop.ratio(c) is not None}
    assert seen == pytest.approx(expected), "Prometheus must see the shop's ratios"
    active = {
        (a["labels"]["alertname"], a["labels"]["channel"], a["state"])
        for a in monitoring.prometheus.alerts()
        if a["labels"]["alertname"] in RATIO_ALERTS
    }
    assert active == {("LtvCacRatioBelowTarget", BAD_CHANNEL, "firing")}, active


def test_a_dead_letter_reaches_the_webhook(monitoring: Monitoring) -> None:
    found = poll(
        lambda: notifications(monitoring.webhook, "LtvcacDeadLetters"),
        "LtvcacDeadLetters at the webhook",
    )
    assert found[0]["status"] == "firing"
    assert found[0]["labels"] == {
        "alertname": "LtvcacDeadLetters",
        "reason": "invalid_json",
        "severity": "warning",
    }
    assert found[0]["annotations"]["summary"] == (
        "Input is being rejected to the dead-letters topic (reason invalid_json)"
    )


def test_every_rule_is_loaded_and_evaluates_without_error(monitoring: Monitoring) -> None:
    expected = {
        rule["alert"]
        for group in yaml.safe_load(Path(RULES).read_text())["groups"]
        for rule in group["rules"]
    }

    def evaluated() -> dict[str, dict[str, Any]]:
        groups = monitoring.prometheus.api("rules")["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        done = all(not r["lastEvaluation"].startswith("0001") for r in rules.values())
        return rules if done and rules.keys() == expected else {}

    rules = poll(evaluated, f"Prometheus to load and evaluate {sorted(expected)}")
    failing = {
        name: rule.get("lastError") for name, rule in rules.items() if rule["health"] != "ok"
    }
    assert failing == {}, f"rules that Prometheus could not evaluate: {failing}"


def test_every_dashboard_query_returns_data(
    published_shop: PublishedShop, monitoring: Monitoring
) -> None:
    """Each panel's PromQL, with the variables of a channel below 3:1 and of the blended
    figure, returns a non-empty result; each variable's own query offers the value used."""
    common = {
        "window": "90d",
        "method": "historical",
        "model": "last_touch",
        "instance": published_shop.worker_address,
    }
    cases = [{**common, "channel": BAD_CHANNEL}, {**common, "channel": "all"}]
    pending = {
        (query.dashboard, query.panel, dashboards.substitute(query.expr, values))
        for name, board in dashboards.load().items()
        for query in dashboards.queries(board, name)
        for values in cases
    }
    assert pending, "no dashboard query found"

    def all_answered() -> bool:
        for item in sorted(pending):
            if monitoring.prometheus.query(item[2]):
                pending.discard(item)
        return not pending

    try:
        poll(all_answered, "every dashboard query to return data")
    except pytest.fail.Exception:
        listing = "\n".join(
            f"  {board} / {panel}: {expr}" for board, panel, expr in sorted(pending)
        )
        pytest.fail(f"dashboard queries without data from Prometheus:\n{listing}")

    for name, board in dashboards.load().items():
        for variable in dashboards.variables(board).values():
            metric, label = _label_values(dashboards.variable_query(variable))
            offered = monitoring.prometheus.api(f"label/{label}/values", **{"match[]": metric})
            for values in cases:
                assert values[variable["name"]] in offered, (
                    f"{name}: variable {variable['name']} ({variable['definition']}) offers "
                    f"{offered}, not {values[variable['name']]}"
                )


def _label_values(query: str) -> tuple[str, str]:
    """(series selector, label) of a Grafana ``label_values(selector, label)`` query."""
    assert query.startswith("label_values(") and query.endswith(")"), query
    selector, _, label = query[len("label_values(") : -1].rpartition(",")
    return selector.strip(), label.strip()
