"""The monitoring configuration passes the tools' own checks: `promtool check rules`,
`promtool test rules` (the unit tests in deploy/prometheus/tests/), `promtool check config`
and `amtool check-config`; and every alert rule is documented and unit-tested both ways."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.servers import ALERTMANAGER_CONFIG, ROOT, RULES, binary

pytestmark = pytest.mark.e2e

PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus" / "prometheus.yml"
RULE_TESTS = sorted((ROOT / "deploy" / "prometheus" / "tests").glob("*.yml"))
SEVERITIES = {"warning", "critical"}


def run(argv: list[str], cwd: Path = ROOT) -> str:
    """Run a tool; fail with its whole output unless it exits with 0."""
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(argv)} exited with {result.returncode}:\n{output}"
    return output


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_check_rules() -> None:
    output = run([binary("promtool"), "check", "rules", str(RULES)])
    assert f"SUCCESS: {len(rules())} rules found" in output, output


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    assert RULE_TESTS, "no rule unit tests in deploy/prometheus/tests/"
    run([binary("promtool"), "test", "rules", *map(str, RULE_TESTS)])


def test_every_rule_is_unit_tested_firing_and_not_firing() -> None:
    fires: set[str] = set()
    stays_quiet: set[str] = set()
    for path in RULE_TESTS:
        document = yaml.safe_load(path.read_text())
        assert [str((path.parent / f).resolve()) for f in document["rule_files"]] == [str(RULES)], (
            f"{path.name} must test {RULES.name}"
        )
        for test in document["tests"]:
            for case in test.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else stays_quiet).add(case["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - fires == set(), f"rules without a test where they fire: {names - fires}"
    assert names - stays_quiet == set(), (
        f"rules without a test where they must not fire: {names - stays_quiet}"
    )


def test_every_rule_has_a_severity_and_tells_what_happened_and_where_to_look() -> None:
    for rule in rules():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity"
        annotations = rule.get("annotations", {})
        assert annotations.get("summary"), f"{name}: no summary"
        description = annotations.get("description", "")
        series = set(re.findall(r"\b(ltvcac_[a-z_]+|up)\b", rule["expr"]))
        assert series & set(re.findall(r"\b(ltvcac_[a-z_]+|up)\b", description)), (
            f"{name}: the description names none of the series {series}"
        )
        assert "/d/ltvcac-" in description, f"{name}: names no dashboard"
        assert annotations.get("dashboard", "").startswith("/d/ltvcac-"), f"{name}: dashboard"


def test_promtool_check_config_of_the_compose_prometheus(tmp_path: Path) -> None:
    """The compose file mounts the rules at /etc/prometheus/rules; checked here in place."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/*.rules.yml"]
    config["rule_files"] = [str(RULES.parent / "*.rules.yml")]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    output = run([binary("promtool"), "check", "config", str(local)])
    assert f"SUCCESS: {len(rules())} rules found" in output, output


def test_amtool_check_config() -> None:
    output = run([binary("amtool"), "check-config", str(ALERTMANAGER_CONFIG)])
    assert "SUCCESS" in output, output


def test_alertmanager_groups_by_alert_and_channel_and_inhibits_the_warning() -> None:
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    assert config["route"]["group_by"] == ["alertname", "channel"]
    names = {rule["alert"] for rule in rules()}
    for inhibit in config.get("inhibit_rules", []):
        for matcher in inhibit["source_matchers"] + inhibit["target_matchers"]:
            if matcher.startswith("alertname="):
                assert matcher.split("=", 1)[1].strip('"') in names, matcher
