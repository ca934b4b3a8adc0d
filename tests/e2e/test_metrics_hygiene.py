"""/metrics of a worker that applied a whole shop (every kind of series present) passes
`promtool check metrics`, has help text for every family, documents every family in the
README's series table (and the table lists nothing the worker lacks), and bounds every
label: only the README's label names, each with values from a fixed or configured set."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream.config import DEFAULT_METHODS, DEFAULT_WINDOWS, Settings
from stream.domain.attribution import MODELS
from tests.e2e.conftest import PublishedShop
from tests.e2e.servers import binary

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

README = Path(__file__).resolve().parents[2] / "README.md"
CATEGORIES = {"media", "salaries", "tools", "agency", "other"}
# label -> the values it may take for this worker (None: checked separately)
BOUNDED: dict[str, set[str] | None] = {
    "channel": None,  # the shop's channels, all and paid
    "campaign": None,  # at most LTVCAC_CAMPAIGN_TOP_N per channel, and other
    "topic": None,  # the app's topics (a fixed set per deployment)
    "partition": None,  # below LTVCAC_TOPIC_PARTITIONS
    "window": set(DEFAULT_WINDOWS),
    "model": set(MODELS),
    "method": set(DEFAULT_METHODS),
    "cost": {"media", "fully_loaded"},
    "category": CATEGORIES,
    "basis": {"cohort", "rate"},
    "referred": {"true", "false"},
    "fit": {"bg_nbd", "gamma_gamma"},
    "parameter": {"r", "alpha", "a", "b", "p", "q", "v"},
    "outcome": {"applied", "duplicate", "redelivered", "rejected"},
    "reason": None,  # a fixed vocabulary: dead-letter reasons and undefined-figure reasons
}


def test_promtool_check_metrics_finds_nothing(published_shop: PublishedShop) -> None:
    text = published_shop.deployment.worker.metrics_text()
    result = subprocess.run(
        [binary("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0 and not findings, f"promtool check metrics:\n{findings}"


def test_every_family_has_help_and_a_row_in_the_readme(published_shop: PublishedShop) -> None:
    text = published_shop.deployment.worker.metrics_text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    exported = {_series_name(f.name, f.type) for f in families.values()}
    without_help = sorted(name for name, f in families.items() if not f.documentation.strip())
    assert without_help == [], f"families without HELP text: {without_help}"

    documented = _readme_series()
    undocumented = sorted(
        name
        for name in exported
        if name not in documented and name.removesuffix("_defined") not in documented
    )
    assert undocumented == [], f"series missing from the README's table: {undocumented}"
    missing = sorted(documented - exported)
    assert missing == [], f"the README's table lists series the worker does not export: {missing}"


def test_every_label_is_bounded(published_shop: PublishedShop) -> None:
    shop, deployment = published_shop.shop, published_shop.deployment
    values: dict[str, set[str]] = defaultdict(set)
    campaigns: dict[str, set[str]] = defaultdict(set)
    for (_, labels), _value in deployment.worker.samples().items():
        found = dict(labels)
        for name, value in found.items():
            values[name].add(value)
        if "campaign" in found:
            campaigns[found["channel"]].add(found["campaign"])
    unknown = sorted(set(values) - set(BOUNDED))
    assert unknown == [], f"labels the README does not name (unbounded?): {unknown}"
    for name, allowed in BOUNDED.items():
        if allowed is not None:
            assert values[name] <= allowed, f"{name} takes {sorted(values[name] - allowed)}"
    channels = set(shop.customers) | {"all", "paid"}
    assert values["channel"] <= channels, f"channels: {sorted(values['channel'] - channels)}"
    top_n = Settings().campaign_top_n
    for channel, names in campaigns.items():
        assert len(names) <= top_n + 1, f"{channel} has {len(names)} campaign labels"
    partitions = int(deployment.env["LTVCAC_TOPIC_PARTITIONS"])
    assert {int(p) for p in values["partition"]} <= set(range(partitions))
    prefix = deployment.prefix
    outside = sorted(t for t in values["topic"] if "." in t and not t.startswith(prefix))
    assert outside == [], f"topics of another deployment: {outside}"
    assert all(re.fullmatch(r"[a-z_]+", reason) for reason in values["reason"]), values["reason"]


def _series_name(family: str, kind: str) -> str:
    """The name a series has on /metrics (the parser strips a counter's _total)."""
    return f"{family}_total" if kind == "counter" else family


def _readme_series() -> set[str]:
    """Series names of the README's table under "Prometheus series"."""
    section = README.read_text().split("## Prometheus series", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(ltvcac_[a-z_]+)`", section, re.MULTILINE))
