"""The project's Alertmanager configuration, run by the real Alertmanager: alerts posted to
its API reach the webhook receiver grouped by alert name and channel, and the break-even
alert of a channel holds back its 3:1 warning (the inhibit rule)."""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servers import Webhook, alertmanager, webhook

pytestmark = pytest.mark.e2e

TIMEOUT = 60.0


@pytest.fixture
def routed(tmp_path: Path) -> Iterator[tuple[str, Webhook]]:
    with webhook(tmp_path) as receiver, alertmanager(tmp_path, receiver.url) as address:
        yield address, receiver


def post(address: str, alerts: list[dict[str, Any]]) -> None:
    now = dt.datetime.now(dt.UTC).isoformat()
    body = json.dumps([{"startsAt": now, "annotations": {}, **alert} for alert in alerts])
    request = urllib.request.Request(
        f"http://{address}/api/v2/alerts",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def ratio_alert(name: str, severity: str, channel: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "channel": channel, "window": "90d"}
    }


def wait_for_alerts(receiver: Webhook, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + TIMEOUT
    while len(received := receiver.received()) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"the webhook got {received}, expected {count} alerts")
        time.sleep(0.2)  # poll interval
    return received


def test_alerts_are_grouped_by_name_and_channel(routed: tuple[str, Webhook]) -> None:
    address, receiver = routed
    post(
        address,
        [
            ratio_alert("LtvCacRatioBelowTarget", "warning", "social"),
            ratio_alert("LtvCacRatioBelowTarget", "warning", "display"),
            {"labels": {"alertname": "LtvcacDeadLetters", "severity": "warning", "reason": "x"}},
        ],
    )
    received = wait_for_alerts(receiver, 3)
    groups = sorted(json.dumps(alert["group"], sort_keys=True) for alert in received)
    assert groups == sorted(
        json.dumps(group, sort_keys=True)
        for group in (
            {"alertname": "LtvCacRatioBelowTarget", "channel": "social"},
            {"alertname": "LtvCacRatioBelowTarget", "channel": "display"},
            {"alertname": "LtvcacDeadLetters"},
        )
    )


def test_break_even_holds_back_the_warning_of_its_channel_only(
    routed: tuple[str, Webhook],
) -> None:
    address, receiver = routed
    post(
        address,
        [
            ratio_alert("LtvCacRatioBelowBreakEven", "critical", "social"),
            ratio_alert("LtvCacRatioBelowTarget", "warning", "social"),
            ratio_alert("LtvCacRatioBelowTarget", "warning", "display"),
        ],
    )
    wait_for_alerts(receiver, 2)

    def state(name: str, channel: str) -> str:
        with urllib.request.urlopen(f"http://{address}/api/v2/alerts", timeout=10) as response:
            alerts = json.loads(response.read())
        (found,) = [
            a
            for a in alerts
            if (a["labels"]["alertname"], a["labels"]["channel"]) == (name, channel)
        ]
        return str(found["status"]["state"])

    assert state("LtvCacRatioBelowTarget", "social") == "suppressed"
    assert state("LtvCacRatioBelowTarget", "display") == "active"
    sent = sorted((a["labels"]["alertname"], a["labels"]["channel"]) for a in receiver.received())
    assert sent == [("LtvCacRatioBelowBreakEven", "social"), ("LtvCacRatioBelowTarget", "display")]
