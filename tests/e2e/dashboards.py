"""The Grafana dashboards of deploy/grafana/dashboards/ and their PromQL, with template
variables replaced by values as Grafana would (a multi-value variable used with =~ takes
one value, which is a regex matching itself)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE_UID = "ltvcac-prometheus"  # deploy/grafana/provisioning/datasources/prometheus.yml
# Grafana's own interval variables: a minute spans enough scrapes of the test (1 s) for
# rate() and increase(), as $__rate_interval does in production (4 scrapes or more).
BUILT_IN = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Query:
    dashboard: str
    panel: str
    expr: str


def load() -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside rows included (rows themselves are not panels to check)."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query")
    return str(query.get("query", "") if isinstance(query, dict) else query or "")


def queries(dashboard: dict[str, Any], name: str) -> Iterator[Query]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield Query(name, panel.get("title", "?"), target["expr"])


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` with every ``$name`` / ``${name}`` replaced; KeyError names one unknown."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return {**BUILT_IN, **values}[name]

    return _VARIABLE.sub(value, expr)


def used_variables(expr: str) -> set[str]:
    return {a or b for a, b in _VARIABLE.findall(expr)} - set(BUILT_IN)
