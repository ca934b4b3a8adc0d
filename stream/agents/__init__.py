"""One module per stage of the topology; each is a thin loop over ``stream.domain``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stream.app import Runtime


def register_all(runtime: Runtime) -> None:
    from stream.agents import channels, customers, predictive, projection, rates, visitors, web
    from stream.serving import api

    customers.register(runtime)
    visitors.register(runtime)
    channels.register(runtime)
    rates.register(runtime)
    predictive.register(runtime)
    projection.register(runtime)
    web.register(runtime)
    api.register(runtime)
