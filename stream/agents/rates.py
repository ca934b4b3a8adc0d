"""Exchange rates from the fx-rates topic into the global table every worker reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas.events import FxRate
from schemas.topics import FX_RATES
from stream.agents.common import Records, publish, register_agent, reject
from stream.domain.fx import TableValue, handle_fx_rate
from stream.domain.ingest import Rejection, validate
from stream.domain.outcome import APPLIED

if TYPE_CHECKING:
    from stream.app import Runtime


def register(runtime: Runtime) -> None:
    register_agent(runtime, "fx-in", "fx_rates", handle, lambda: records(runtime))


def records(runtime: Runtime) -> Records[TableValue]:
    """A currency's rates as stored: [[day, "rate"], ...], empty when it has none yet."""
    return Records(runtime.fx_table, lambda _: [], list, list)


async def handle(runtime: Runtime, message: Any, rates: Records[TableValue]) -> None:
    event = validate(FX_RATES, message.key, message.value)
    if isinstance(event, Rejection):
        return reject(runtime, message, event, rates)
    assert isinstance(event, FxRate)  # the fx-rates contract carries only these
    stored = rates.get(event.currency)
    outcome, updated = handle_fx_rate(stored, event, runtime.settings.reporting_currency)
    if outcome.status == APPLIED:
        stored[:] = updated
        rates.changed(event.currency, message)
    publish(runtime, message, outcome, rates)
