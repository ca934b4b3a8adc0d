"""Prometheus series. Figures are computed from channel state at scrape time, so a
series exists exactly while this worker holds the channel's record.

No per-customer label anywhere: label values are channels, windows and methods.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream.domain.figures import ChannelFigures, Figure


class PipelineCounters:
    """Counters of what the agents did with each input."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "ltvcac_events",
            "Messages handled, by topic and outcome (applied, duplicate, redelivered, rejected).",
            ["topic", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "ltvcac_dead_letters",
            "Inputs sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.projection_errors = Counter(
            "ltvcac_projection_errors",
            "Failed attempts to write the Redis projection (retried).",
            registry=registry,
        )


class ChannelFiguresCollector(Collector):
    """Exports every channel's figures; ``source`` returns them fresh on each scrape."""

    def __init__(self, source: Callable[[], Iterable[ChannelFigures]]) -> None:
        self._source = source

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # figures are dynamic; skip the registration-time collect()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = _Families()
        for figures in self._source():
            families.add(figures)
        yield from families.all()


class _Families:
    def __init__(self) -> None:
        cw, cwm, cm = ["channel", "window"], ["channel", "window", "method"], ["channel", "method"]
        self.spend = GaugeMetricFamily(
            "ltvcac_spend", "Acquisition spend in the window, reporting currency.", labels=cw
        )
        self.new_customers = GaugeMetricFamily(
            "ltvcac_new_customers",
            "Customers acquired in the window (sum of attribution weights).",
            labels=cw,
        )
        self.cac = _Defined(
            "ltvcac_customer_acquisition_cost",
            "Spend per new customer in the window, reporting currency.",
            cw,
        )
        self.payback = _Defined(
            "ltvcac_payback_months",
            "Months of gross profit per customer needed to recover the CAC.",
            cw,
        )
        self.ltv = _Defined(
            "ltvcac_lifetime_value", "Lifetime value per customer, reporting currency.", cm
        )
        self.ratio = _Defined("ltvcac_ltv_cac_ratio", "LTV divided by CAC.", cwm)

    def add(self, figures: ChannelFigures) -> None:
        channel = figures.channel
        for window, per_window in figures.windows.items():
            self.spend.add_metric([channel, window], per_window.spend)
            self.new_customers.add_metric([channel, window], per_window.new_customers)
            self.cac.add([channel, window], per_window.cac)
            self.payback.add([channel, window], per_window.payback_months)
        for method, ltv in figures.ltv.items():
            self.ltv.add([channel, method], ltv)
        for (window, method), ratio in figures.ratio.items():
            self.ratio.add([channel, window, method], ratio)

    def all(self) -> Iterator[GaugeMetricFamily]:
        yield self.spend
        yield self.new_customers
        for defined in (self.cac, self.payback, self.ltv, self.ratio):
            yield defined.values
            yield defined.flags


class _Defined:
    """A gauge whose series is absent when undefined, and a ``*_defined`` flag saying why."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.values = GaugeMetricFamily(name, documentation, labels=labels)
        self.flags = GaugeMetricFamily(
            f"{name}_defined",
            f"1 when {name} is exported; 0 with the reason (no_customers, no_spend, ...) when not.",
            labels=[*labels, "reason"],
        )

    def add(self, labels: list[str], figure: Figure) -> None:
        if figure.value is not None:
            self.values.add_metric(labels, figure.value)
            self.flags.add_metric([*labels, figure.reason], 1)
        else:
            self.flags.add_metric([*labels, figure.reason], 0)
