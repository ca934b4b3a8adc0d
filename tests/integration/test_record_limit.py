"""A record that outgrows LTVCAC_MAX_MESSAGE_BYTES stops the worker with a message that
names it; a restart with a larger limit goes on, and every event counts exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from stream.devstack import StackEndpoints
from stream.worker_process import WorkerProcess
from tests.integration.conftest import Deployment, encode, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CHANNEL = "search"
SMALLEST_LIMIT = 524_288  # the setting's minimum
SPEND_EVENTS = 4_000  # about 640 KB of record for the channel, mostly their ids
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def spend(number: int) -> bytes:
    """Spend every 20 minutes, under an id of 128 characters: the channel's record keeps
    each id (while it is within the lateness) and a bucket for each day."""
    at = START + dt.timedelta(minutes=20 * number)
    day = at.date().isoformat()
    return encode(
        {
            "type": "ad_spend",
            "event_id": f"spend-{number:06d}-".ljust(128, "x"),
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "schema_version": 1,
            "channel": CHANNEL,
            "amount": f"{number + 1}.25",
            "currency": "USD",
            "category": "media",
            "period_start": day,
            "period_end": day,
        }
    )


async def test_a_record_over_the_message_limit_stops_the_worker_until_the_limit_is_raised(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    expected = sum(number + 1.25 for number in range(SPEND_EVENTS))
    lateness = {"LTVCAC_ALLOWED_LATENESS_SECONDS": str(365 * 86_400)}
    small = {**lateness, "LTVCAC_MAX_MESSAGE_BYTES": str(SMALLEST_LIMIT)}
    deployment = Deployment(stack, tmp_path / "small", extra_env=small)
    await asyncio.to_thread(deployment.worker.start)
    try:
        await deployment.publish([("ad-spend", CHANNEL, spend(n)) for n in range(SPEND_EVENTS)])
        await wait_until(
            lambda: not deployment.worker.running,
            what="the worker to stop at the record it cannot store",
            found=deployment.worker.log_tail,
        )
        log = deployment.worker.log_tail(400)
        assert f"record '{CHANNEL}' of table" in log
        assert f"more than LTVCAC_MAX_MESSAGE_BYTES={SMALLEST_LIMIT:,}" in log

        deployment.worker = WorkerProcess(
            {**deployment.env, "LTVCAC_MAX_MESSAGE_BYTES": str(1_048_576)},
            tmp_path / "raised.log",
        )
        await asyncio.to_thread(deployment.worker.start)

        totals = {channel: expected for channel in (CHANNEL, "all", "paid")}
        await wait_until(
            lambda: deployment.lifetime_spend() == pytest.approx(totals, rel=1e-12),
            what=f"lifetime spend of {expected:.2f} in {sorted(totals)}",
            found=lambda: str(deployment.lifetime_spend()),
        )
        dead_letters = deployment.gauges("ltvcac_dead_letters_total")
        assert not any(dead_letters.values())
    finally:
        await asyncio.to_thread(deployment.cleanup)
