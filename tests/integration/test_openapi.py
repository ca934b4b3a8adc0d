"""The OpenAPI document is true: schemathesis generates requests for every operation from
it and checks each answer of a running worker (status codes, content type and body
against the documented schemas)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from stream.devstack import StackEndpoints
from tests.integration.conftest import Deployment, wait_until
from tests.integration.scenario import MESSAGES

pytestmark = pytest.mark.integration
TOKEN = "openapi-secret"


def ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=5) as answer:
            return bool(json.loads(answer.read())["ready"])
    except urllib.error.HTTPError:
        return False  # 503 until recovery is done


@pytest.fixture(scope="module")
def served(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A worker that holds the scenario; its base URL."""
    deployment = Deployment(
        stack,
        Path(tmp_path_factory.mktemp("openapi")),
        extra_env={"LTVCAC_API_TOKENS": json.dumps([TOKEN])},
    )
    deployment.worker.start()
    base = deployment.worker.metrics_url.removesuffix("/metrics")
    try:
        asyncio.run(deployment.publish(MESSAGES))
        asyncio.run(wait_until(lambda: ready(base), what="the worker to be ready"))
        yield base
    finally:
        deployment.cleanup()


def operations() -> list[str]:
    """The documented operations, by label ("GET /v1/top", ...), read from the source."""
    from stream.config import Settings
    from stream.serving.openapi import openapi_document

    document = openapi_document(Settings())
    return [f"{m.upper()} {path}" for path, ops in document["paths"].items() for m in ops]


@pytest.mark.parametrize("label", operations())
def test_every_answer_is_as_documented(served: str, label: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/v1/openapi.json")
    [operation] = [op.ok() for op in schema.get_all_operations() if op.ok().label == label]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

    answers_as_documented()
