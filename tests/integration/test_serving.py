"""Serving on the embedded stack: a customer's value and the channels' figures agree over
HTTP, in Redis and in the CLI, and equal the figures worked out by hand in
``tests/integration/scenario.py``; tokens are enforced; a rebuild restores Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from stream.devstack import StackEndpoints, free_port
from stream.worker_process import WorkerProcess, label_set
from tests.integration.conftest import Deployment, running, wait_until
from tests.integration.scenario import MESSAGES

pytestmark = pytest.mark.integration
TOKENS = ["first-secret", "second-secret"]
ENV = {"LTVCAC_API_TOKENS": json.dumps(TOKENS)}

C1 = {  # 100.00 (cost 40.00) and 50.00 (margin 0.5), 20.00 of the first refunded
    "customer_id": "c1",
    "revenue": "130.00",
    "gross_profit": "73.00",
    "orders": 2,
    "refunds": 1,
    "first_order_at": "2026-03-01T10:00:00Z",
    "last_order_at": "2026-03-02T09:00:00Z",
    "acquisition_channel": "search",
    "attribution": {"search": 1.0},
    "referred_by": None,
    "referred_customers": 1,  # c4
}


def call(
    deployment: Deployment, path: str, token: str | None = TOKENS[0], method: str = "GET"
) -> tuple[int, Any]:
    url = deployment.worker.metrics_url.removesuffix("/metrics") + path
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def cli(deployment: Deployment, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env={**os.environ, **deployment.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def settled(deployment: Deployment) -> bool:
    customers = deployment.worker.samples().get(
        ("ltvcac_new_customers", label_set(channel="all", window="lifetime", model="last_touch"))
    )
    redis = deployment.redis_hash("customer:c4").get("referred_by")
    # Redis hears of channels on the projection's next tick after /metrics shows them.
    _, search = call(deployment, "/v1/channels/search?window=90d")
    return (
        customers == 4.0
        and redis == "c1"
        and call(deployment, "/v1/customers/c1")[0] == 200
        and search.get("cac", {}).get("media") is not None
    )


@pytest.fixture
async def served(stack: StackEndpoints, tmp_path: Path) -> AsyncIterator[Deployment]:
    async with running(stack, tmp_path, ENV) as deployed:
        await deployed.publish(MESSAGES)
        await wait_until(lambda: settled(deployed), what="the scenario in the worker and Redis")
        yield deployed


async def test_a_customer_agrees_over_http_in_redis_and_in_the_cli(served: Deployment) -> None:
    status, over_http = call(served, "/v1/customers/c1")
    assert status == 200
    assert {k: over_http[k] for k in C1} == C1
    assert "predictive" not in over_http  # no model fitted yet: absent, not zero

    stored = served.redis_hash("customer:c1")
    assert (stored["revenue"], stored["gross_profit"], stored["orders"]) == ("130.00", "73.00", "2")

    from_redis = cli(served, "customer", "c1", "--json")
    assert from_redis.returncode == 0, from_redis.stderr
    assert json.loads(from_redis.stdout) == over_http
    base = served.worker.metrics_url.removesuffix("/metrics")
    from_api = cli(served, "customer", "c1", "--json", "--api", base, LTVCAC_API_TOKEN=TOKENS[1])
    assert from_api.returncode == 0, from_api.stderr
    assert json.loads(from_api.stdout) == over_http
    table = cli(served, "customer", "c1")
    assert "gross_profit" in table.stdout and "73.00" in table.stdout


async def test_tokens_are_required_and_checked(served: Deployment) -> None:
    for token in (None, "wrong", "first-secret-but-longer", ""):
        status, body = call(served, "/v1/customers/c1", token=token)
        assert status == 401
        assert body == {
            "error": {"code": "unauthorised", "message": "a valid bearer token is required"}
        }
    assert call(served, "/v1/customers/c1", token=TOKENS[1])[0] == 200
    assert call(served, "/v1/channels", token=None)[0] == 401  # aggregates are not public
    assert call(served, "/v1/top", token=None)[0] == 401
    assert call(served, "/health", token=None)[0] == 200
    base = served.worker.metrics_url.removesuffix("/metrics")
    refused = cli(served, "customer", "c1", "--api", base, LTVCAC_API_TOKEN="wrong")
    assert refused.returncode == 3
    assert "401" in refused.stderr


async def test_unknown_keys_and_bad_parameters_are_clear_errors(served: Deployment) -> None:
    assert call(served, "/v1/customers/nobody") == (
        404,
        {"error": {"code": "not_found", "message": "no such customer"}},
    )
    assert call(served, "/v1/channels/nowhere")[0] == 404
    status, body = call(served, "/v1/channels?window=12d")
    assert status == 400
    assert body["error"]["message"] == "unknown window '12d'; one of 30d, 90d, lifetime"
    assert call(served, "/v1/top?limit=0")[0] == 400
    assert call(served, "/v1/top?limit=ten")[0] == 400
    assert cli(served, "customer", "nobody").returncode == 1
    bad = cli(served, "channels", "--window", "12d")
    assert bad.returncode == 2 and "unknown window '12d'" in bad.stderr


async def test_channels_top_customers_and_cohorts(served: Deployment) -> None:
    # search: spend 74.00 (4.00 of clicks, 70.00 agency), c1 with 73.00 of gross profit
    status, search = call(served, "/v1/channels/search?window=90d&method=historical")
    assert status == 200
    assert search["spend"] == pytest.approx(74.0)
    assert search["spend_by_category"]["agency"] == pytest.approx(70.0)
    assert search["cac"] == {"media": pytest.approx(4.0), "fully_loaded": pytest.approx(74.0)}
    assert search["ltv"] == pytest.approx(73.0)
    assert search["ltv_cac"] == pytest.approx(73.0 / 74.0)
    status, direct = call(served, "/v1/channels/direct")
    assert direct["ltv_cac"] is None  # no spend: undefined, not zero

    status, listed = call(served, "/v1/channels?window=90d")
    assert status == 200
    by_name = {c["channel"]: c for c in listed["channels"]}
    assert set(by_name) == {"search", "social", "direct", "referral", "all", "paid"}
    assert by_name["search"] == search
    printed = cli(served, "channels", "--window", "90d", "--json")
    assert json.loads(printed.stdout) == listed

    # gross profit: c1 73.00, c2 12.00, c4 10.00, c3 5.00
    status, top = call(served, "/v1/top?limit=3")
    assert top["customers"] == [
        {"customer_id": "c1", "value": "73.00"},
        {"customer_id": "c2", "value": "12.00"},
        {"customer_id": "c4", "value": "10.00"},
    ]
    status, social = call(served, "/v1/top?channel=social")
    assert social["customers"] == [{"customer_id": "c2", "value": "12.00"}]
    top_cli = cli(served, "top", "-n", "3", "--json")
    assert json.loads(top_cli.stdout) == top

    status, cohorts = call(served, "/v1/cohorts/search")
    assert cohorts == {
        "channel": "search",
        "cohorts": [
            {
                "month": "2026-03",
                "customers": 1.0,
                "gp_per_customer": [],  # March is the current month: not complete
                "gp_per_customer_to_date": 73.0,
            }
        ],
    }
    status, health = call(served, "/health")
    assert (status, health["ready"], health["recovery_done"]) == (200, True, True)


def snapshot(deployment: Deployment) -> dict[str, Any]:
    """Every key of the deployment's prefix with its content (the writer marker aside)."""
    content: dict[str, Any] = {}
    r = deployment.redis
    for key in sorted(r.scan_iter(match=deployment.redis_prefix + "*")):
        kind = r.type(key)
        if ":projection:writer:" in key:
            continue
        if kind == "hash":
            content[key] = r.hgetall(key)
        elif kind == "set":
            content[key] = sorted(r.smembers(key))
        elif kind == "zset":
            content[key] = r.zrange(key, 0, -1, withscores=True)
        else:
            content[key] = r.get(key)
    return content


async def test_a_rebuild_after_wiping_redis_restores_identical_content(served: Deployment) -> None:
    before = snapshot(served)
    assert f"{served.redis_prefix}top:historical" in before
    assert before[f"{served.redis_prefix}layout_version"] == "1"
    # wipe everything but the writer's marker: only the requested rebuild brings it back
    served.redis.delete(*before)
    assert call(served, "/v1/rebuild", method="POST", token=None)[0] == 401
    status, body = call(served, "/v1/rebuild", method="POST")
    assert (status, body) == (202, {"customers": 4})
    await wait_until(lambda: snapshot(served) == before, what="Redis rebuilt as it was")


async def test_every_worker_answers_for_every_customer(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    """Two workers share four partitions: a request for a customer another worker owns is
    forwarded to it, so both answer alike for every customer."""
    deployment = Deployment(stack, tmp_path, extra_env={**ENV, "LTVCAC_TOPIC_PARTITIONS": "4"})
    env = deployment.env
    workers = [
        WorkerProcess({**env, "LTVCAC_WEB_PORT": str(free_port())}, tmp_path / f"w{n}.log")
        for n in range(2)
    ]
    partitions = {c: (murmur2(c.encode()) & 0x7FFFFFFF) % 4 for c in ("c1", "c2", "c3", "c4")}
    assert len(set(partitions.values())) > 1  # the customers are spread over partitions
    try:
        await asyncio.gather(*(asyncio.to_thread(w.start) for w in workers))
        await deployment.publish(MESSAGES)

        def answers(customer: str) -> list[tuple[int, Any]]:
            return [call_worker(w, f"/v1/customers/{customer}") for w in workers]

        def everyone_answers() -> bool:
            c1 = answers("c1")
            return all(status == 200 and body["referred_customers"] == 1 for status, body in c1)

        def alike() -> bool:
            return all(
                [a[0] for a in answers(c)] == [200, 200] and answers(c)[0] == answers(c)[1]
                for c in partitions
            )

        await wait_until(everyone_answers, what="both workers to answer with c1 complete")
        await wait_until(alike, what="both workers to answer alike for every customer")
        [first, second] = answers("c1")
        assert first == second
        assert {k: first[1][k] for k in C1} == C1
        assert [status for status, _ in answers("nobody")] == [404, 404]
    finally:
        for worker in workers:
            await asyncio.to_thread(worker.stop)
        await asyncio.to_thread(deployment.cleanup)


def call_worker(worker: WorkerProcess, path: str) -> tuple[int, Any]:
    url = worker.metrics_url.removesuffix("/metrics") + path
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKENS[0]}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
