"""The channel figures' text format, against the client library's for the same samples."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stream.metrics import _Gauge

AWKWARD = ['say "hi"', "back\\slash", "two\nlines", "plain"]
VALUES = [0.1, 12_345_678.9, 1e21, -3.0, float("inf"), float("nan"), 0.0, 7]


class _Reference(Collector):
    def __init__(self, family: GaugeMetricFamily) -> None:
        self._family = family

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield self._family


def test_a_gauge_is_written_as_the_client_library_writes_it() -> None:
    documentation = 'Spend "per" channel\\window\nsecond line.'
    names = ["window", "channel"]  # not in order: the format writes them sorted
    ours = _Gauge("ltvcac_test_spend", documentation, labels=names)
    reference = GaugeMetricFamily("ltvcac_test_spend", documentation, labels=names)
    for n, value in enumerate(VALUES):
        labels = [f"{n}d", AWKWARD[n % len(AWKWARD)]]
        ours.add_metric(labels, value)
        ours.add_metric(labels, value)  # the second time from the cache of series
        reference.add_metric(labels, value)
        reference.add_metric(labels, value)
    registry = CollectorRegistry()
    registry.register(_Reference(reference))
    assert ours.text() == generate_latest(registry).decode()


def test_a_gauge_without_labels_and_an_empty_one() -> None:
    ours = _Gauge("ltvcac_test_plain", "One number.", labels=[])
    ours.add_metric([], 2.5)
    empty = _Gauge("ltvcac_test_empty", "No series yet.", labels=["channel"])
    reference_plain = GaugeMetricFamily("ltvcac_test_plain", "One number.")
    reference_plain.add_metric([], 2.5)
    reference_empty = GaugeMetricFamily("ltvcac_test_empty", "No series yet.", labels=["channel"])
    for gauge, family in ((ours, reference_plain), (empty, reference_empty)):
        registry = CollectorRegistry()
        registry.register(_Reference(family))
        assert gauge.text() == generate_latest(registry).decode()
