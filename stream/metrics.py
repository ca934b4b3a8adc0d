"""Prometheus series. Figures are computed from channel state at scrape time, so a
series exists exactly while this worker holds the channel's record.

No per-customer label anywhere: label values are channels, windows, attribution
models, LTV methods, cost bases, spend categories and payback bases. Cohorts (one per
acquisition month, an ever-growing set) are not labels: they are in Redis only. The
referral figures come from the blended record ``all`` and carry no channel label.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from stream.domain.figures import ChannelFigures, Figure, ReferralFigures
from stream.domain.predictive import BG_NBD, GAMMA_GAMMA, Fit
from stream.domain.timeline import SECONDS_PER_DAY

# The client library would add a gauge ``<counter>_created`` (a Unix time) beside each
# counter in the text format, described by the counter's help text: a second series per
# counter, mislabelled, that no rule or dashboard reads. Off for the whole process.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

# Series of the referral figures: they come from the record ``all`` (no channel label).
REFERRAL_SERIES = (
    "ltvcac_referral_share",
    "ltvcac_referred_customers",
    "ltvcac_referrers",
    "ltvcac_viral_coefficient",
    "ltvcac_lifetime_value_by_referral",
)


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
        self._events_by_labels: dict[tuple[str, str], Counter] = {}

    def count_event(self, topic: str, outcome: str) -> None:
        """Count a message handled. Each (topic, outcome) child is looked up once: the
        client's ``labels()`` takes a lock and checks the labels on every call."""
        child = self._events_by_labels.get((topic, outcome))
        if child is None:
            child = self._events_by_labels[(topic, outcome)] = self.events.labels(topic, outcome)
        child.inc()


class ChannelFiguresCollector(Collector):
    """Exports every channel's figures; ``source`` returns them fresh on each scrape.

    ``/metrics`` appends :meth:`text` to the registry's output: a shop's channels,
    windows, models and campaigns make thousands of series, and the client library's
    families and text format (a dict of labels per sample, labels escaped on every
    scrape) made answering a scrape cost more than handling the events between two.
    """

    def __init__(
        self,
        source: Callable[[], Iterable[ChannelFigures]],
        primary_model: str,
        headline_method: str,
    ) -> None:
        self._source = source
        self._primary_model = primary_model
        self._headline_method = headline_method

    def text(self) -> str:
        """The figures in the Prometheus text format (version 0.0.4)."""
        families = _Families((self._primary_model, self._headline_method))
        for figures in self._source():
            families.add(figures)
        primary = _Gauge(
            "ltvcac_attribution_model_info",
            "1 for the primary attribution model (LTVCAC_ATTRIBUTION_MODEL).",
            labels=["model"],
        )
        primary.add_metric([self._primary_model], 1)
        return "".join(family.text() for family in (*families.all(), primary))

    def describe(self) -> list[Metric]:
        return []  # figures are dynamic; skip the registration-time collect()

    def collect(self) -> Iterator[Metric]:
        """The same figures for a registry of the client library (tests read them so)."""
        yield from text_string_to_metric_families(self.text())


class _Gauge:
    """A gauge family written straight to the text format; each series' name and
    labels are formatted once per process (:data:`_SERIES`), not once per scrape."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.lines: list[str] = []

    def add_metric(self, values: list[str], value: float) -> None:
        key = (self.name, tuple(values))
        series = _SERIES.get(key)
        if series is None:
            if len(_SERIES) >= _SERIES_KEPT:
                _SERIES.clear()
            series = _SERIES[key] = _series(self.name, self.labels, values)
        self.lines.append(f"{series} {floatToGoString(value)}\n")  # type: ignore[no-untyped-call]

    def text(self) -> str:
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        header = f"# HELP {self.name} {help_text}\n# TYPE {self.name} gauge\n"
        return header + "".join(self.lines)


# (name, label values) -> the series as the text format writes it
_SERIES: dict[tuple[str, tuple[str, ...]], str] = {}
_SERIES_KEPT = 200_000  # past this many (channels come from input), start again


def _series(name: str, labels: tuple[str, ...], values: list[str]) -> str:
    if not labels:
        return name
    named = sorted(zip(labels, values, strict=True))  # as the client library writes them
    pairs = ",".join(f'{label}="{_escaped(value)}"' for label, value in named)
    return f"{name}{{{pairs}}}"


def _escaped(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True)
class PipelineState:
    """What the pipeline health series show: the event-time watermark this worker knows
    (seconds since the epoch), the consumer lag by (topic, partition) of the partitions
    it is assigned, and the rebalances it has seen."""

    watermark: int
    lag: dict[tuple[str, int], int]
    rebalances: int


class PipelineCollector(Collector):
    """Event-time watermark, consumer lag and rebalances of this worker."""

    def __init__(self, source: Callable[[], PipelineState]) -> None:
        self._source = source

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        state = self._source()
        watermark = GaugeMetricFamily(
            "ltvcac_event_time_watermark_seconds",
            "Newest event time this worker knows (seconds since the epoch; absent before the"
            " first event); time() minus it is the event-time lag.",
        )
        if state.watermark > 0:  # no event yet: absent, as any undefined figure
            watermark.add_metric([], state.watermark)
        lag = GaugeMetricFamily(
            "ltvcac_consumer_lag_messages",
            "Messages of an assigned partition not yet committed (end offset - committed).",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(state.lag.items()):
            lag.add_metric([topic, str(partition)], behind)
        rebalances = CounterMetricFamily(
            "ltvcac_rebalances", "Consumer group rebalances this worker has taken part in."
        )
        rebalances.add_metric([], state.rebalances)
        yield from (watermark, lag, rebalances)


class FitCollector(Collector):
    """The health of the latest predictive fit (absent before the first): no channel label,
    the fit is the deployment's."""

    def __init__(self, source: Callable[[], Fit | None]) -> None:
        self._source = source

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        fit = self._source()
        if fit is None:
            return
        version = GaugeMetricFamily(
            "ltvcac_predictive_fit_version", "Version of the predictive fit in use (1, 2, ...)."
        )
        version.add_metric([], fit.version)
        age = GaugeMetricFamily(
            "ltvcac_predictive_fit_age_seconds", "Seconds since the predictive fit in use was made."
        )
        age.add_metric([], max(time.time() - fit.fitted_at, 0.0))
        event_day = GaugeMetricFamily(
            "ltvcac_predictive_fit_event_day_timestamp_seconds",
            "Start of the event-time day the fit measured customers' ages on.",
        )
        event_day.add_metric([], fit.today * SECONDS_PER_DAY)
        customers = GaugeMetricFamily(
            "ltvcac_predictive_fit_customers",
            "Customers the fit used (gamma_gamma: those with repeat purchases and profit).",
            labels=["fit"],
        )
        customers.add_metric([BG_NBD], fit.customers)
        customers.add_metric([GAMMA_GAMMA], fit.repeat_customers)
        likelihood = GaugeMetricFamily(
            "ltvcac_predictive_fit_log_likelihood",
            "Maximised log-likelihood of the fit, summed over its customers.",
            labels=["fit"],
        )
        likelihood.add_metric([BG_NBD], fit.bg_nbd_log_likelihood)
        likelihood.add_metric([GAMMA_GAMMA], fit.gamma_gamma_log_likelihood)
        parameters = GaugeMetricFamily(
            "ltvcac_predictive_fit_parameter",
            "Fitted parameters: bg_nbd r, alpha (days), a, b; gamma_gamma p, q, v.",
            labels=["fit", "parameter"],
        )
        for name, value in asdict(fit.bg_nbd).items():
            parameters.add_metric([BG_NBD, name], value)
        for name, value in asdict(fit.gamma_gamma).items():
            parameters.add_metric([GAMMA_GAMMA, name], value)
        yield from (version, age, event_day, customers, likelihood, parameters)


class _Families:
    def __init__(self, headline: tuple[str, str]) -> None:
        cw, cwm = ["channel", "window"], ["channel", "window", "model"]
        self._headline = headline  # (attribution model, LTV method)
        self.headline = _Defined(
            "ltvcac_headline_ltv_cac_ratio",
            "LTV:CAC of the primary attribution model and LTVCAC_HEADLINE_LTV_METHOD "
            "(fully loaded CAC): the series the alert rules watch.",
            cw,
        )
        self.spend = _Gauge(
            "ltvcac_spend",
            "Acquisition spend in the window, every category, reporting currency.",
            labels=cw,
        )
        self.spend_by_category = _Gauge(
            "ltvcac_spend_by_category",
            "Acquisition spend in the window by category (media includes clicks and "
            "referral rewards), reporting currency.",
            labels=[*cw, "category"],
        )
        self.new_customers = _Gauge(
            "ltvcac_new_customers",
            "Customers acquired in the window (sum of the model's attribution weights).",
            labels=cwm,
        )
        self.cac = _Defined(
            "ltvcac_customer_acquisition_cost",
            "Spend per new customer in the window, reporting currency; cost=media counts "
            "clicks, referral rewards and media spend, cost=fully_loaded every category.",
            [*cwm, "cost"],
        )
        self.payback = _Defined(
            "ltvcac_payback_months",
            "Months of gross profit per customer needed to recover the fully loaded CAC; "
            "basis=cohort from the cohort LTV curve, basis=rate from the monthly gross "
            "profit rate of the trailing year.",
            [*cwm, "basis"],
        )
        self.ltv = _Defined(
            "ltvcac_lifetime_value",
            "Lifetime value per customer, reporting currency.",
            ["channel", "model", "method"],
        )
        self.ratio = _Defined(
            "ltvcac_ltv_cac_ratio",
            "LTV divided by the fully loaded CAC.",
            [*cwm, "method"],
        )
        cwc = [*cw, "campaign"]
        self.campaign_spend = _Gauge(
            "ltvcac_campaign_spend",
            "Spend of a campaign in the window (the top LTVCAC_CAMPAIGN_TOP_N campaigns of "
            "the channel by lifetime spend; the rest summed as campaign=other).",
            labels=cwc,
        )
        self.campaign_customers = _Gauge(
            "ltvcac_campaign_new_customers",
            "Customers acquired in the window credited to the campaign (primary model).",
            labels=cwc,
        )
        self.campaign_cac = _Defined(
            "ltvcac_campaign_customer_acquisition_cost",
            "Campaign spend per customer it acquired in the window (primary model).",
            cwc,
        )
        self.referral_share = _Defined(
            "ltvcac_referral_share",
            "Share of the customers acquired in the window that the model credits to "
            "referrals (0-1).",
            ["window", "model"],
        )
        self.referred = _Gauge(
            "ltvcac_referred_customers",
            "Customers acquired in the window with a referrer (primary attribution model).",
            labels=["window"],
        )
        self.referrers = _Gauge(
            "ltvcac_referrers",
            "Distinct customers who referred at least one customer acquired in the window "
            "(primary attribution model).",
            labels=["window"],
        )
        self.viral = _Defined(
            "ltvcac_viral_coefficient",
            "Customers acquired in the window with a referrer per distinct customer who "
            "referred them (primary attribution model).",
            ["window"],
        )
        self.ltv_by_referral = _Defined(
            "ltvcac_lifetime_value_by_referral",
            "Lifetime value per customer of the customers the model credits to referrals "
            '(referred="true") and of the others (referred="false"), reporting currency.',
            ["referred", "model", "method"],
        )

    def add(self, figures: ChannelFigures) -> None:
        channel = figures.channel
        for window, per_window in figures.windows.items():
            self.spend.add_metric([channel, window], per_window.spend)
            for category, spend in per_window.spend_by_category.items():
                self.spend_by_category.add_metric([channel, window, category], spend)
            for model, customers in per_window.new_customers.items():
                self.new_customers.add_metric([channel, window, model], customers)
            for (model, cost), cac in per_window.cac.items():
                self.cac.add([channel, window, model, cost], cac)
            for model, payback in per_window.payback_months.items():
                self.payback.add([channel, window, model, payback.basis], payback)
        for (model, method), ltv in figures.ltv.items():
            self.ltv.add([channel, model, method], ltv)
        for (window, model, method), ratio in figures.ratio.items():
            self.ratio.add([channel, window, model, method], ratio)
            if (model, method) == self._headline:
                self.headline.add([channel, window], ratio)
        for campaign, by_window in figures.top_campaigns.items():
            for window, campaign_figures in by_window.items():
                labels = [channel, window, campaign]
                self.campaign_spend.add_metric(labels, campaign_figures.spend)
                self.campaign_customers.add_metric(labels, campaign_figures.new_customers)
                self.campaign_cac.add(labels, campaign_figures.cac)
        if figures.referrals is not None:
            self.add_referrals(figures.referrals)

    def add_referrals(self, figures: ReferralFigures) -> None:
        for (window, model), share in figures.share.items():
            self.referral_share.add([window, model], share)
        for window, viral in figures.viral.items():
            self.referred.add_metric([window], figures.referred[window])
            self.referrers.add_metric([window], figures.referrers[window])
            self.viral.add([window], viral)
        for (referred, model, method), ltv in figures.ltv.items():
            self.ltv_by_referral.add([str(referred).lower(), model, method], ltv)

    def all(self) -> Iterator[_Gauge]:
        yield self.spend
        yield self.spend_by_category
        yield self.new_customers
        yield self.campaign_spend
        yield self.campaign_customers
        for defined in (
            self.cac,
            self.payback,
            self.ltv,
            self.ratio,
            self.headline,
            self.campaign_cac,
        ):
            yield defined.values
            yield defined.flags
        yield self.referred
        yield self.referrers
        for defined in (self.referral_share, self.viral, self.ltv_by_referral):
            yield defined.values
            yield defined.flags


class _Defined:
    """A gauge whose series is absent when undefined, and a ``*_defined`` flag saying why."""

    def __init__(self, name: str, documentation: str, labels: list[str]) -> None:
        self.values = _Gauge(name, documentation, labels=labels)
        self.flags = _Gauge(
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
