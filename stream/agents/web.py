"""HTTP pages on the worker's web server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from stream.app import Runtime


def register(runtime: Runtime) -> None:
    @runtime.app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        body = generate_latest(runtime.registry)
        if runtime.channel_metrics is not None:
            body += runtime.channel_metrics.text().encode()
        return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})
