"""The Grafana dashboards are valid provisioned dashboard JSON: each panel with a query
names the provisioned Prometheus data source and has PromQL; every variable a query uses is
defined; the alerts' dashboard links lead to these dashboards. Whether every query returns
data from a real Prometheus is `tests/e2e/test_alerting.py`'s job."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.e2e import dashboards
from tests.e2e.servers import ROOT, RULES

DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
SCHEMA_VERSION = 39
BOARDS = dashboards.load()


def test_there_are_the_four_dashboards_with_unique_uids_and_titles() -> None:
    assert sorted(b["uid"] for b in BOARDS.values()) == [
        "ltvcac-attribution",
        "ltvcac-channels",
        "ltvcac-cohorts",
        "ltvcac-pipeline",
    ]
    titles = [b["title"] for b in BOARDS.values()]
    assert len(set(titles)) == len(titles), titles
    for name, board in BOARDS.items():
        assert board["schemaVersion"] == SCHEMA_VERSION, name
        assert board.get("id") is None, f"{name}: a provisioned dashboard has no database id"


def test_every_panel_names_the_provisioned_datasource_and_has_promql() -> None:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    assert source["type"] == "prometheus"
    for name, board in BOARDS.items():
        ids = [panel["id"] for panel in dashboards.panels(board)]
        assert len(set(ids)) == len(ids), f"{name}: panel ids repeat"
        for panel in dashboards.panels(board):
            where = f"{name} / {panel.get('title')}"
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, f"{where}: {grid}"
            if panel["type"] == "text":  # words only: no data source, no query
                assert panel["options"]["content"].strip(), where
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, where
            targets = panel.get("targets", [])
            assert targets, f"{where}: no query"
            for target in targets:
                assert target.get("datasource", panel["datasource"]) == panel["datasource"], where
                assert target.get("expr", "").strip(), f"{where}: target {target['refId']}"


def test_every_variable_a_query_uses_is_defined() -> None:
    for name, board in BOARDS.items():
        defined = dashboards.variables(board)
        used = {
            v for q in dashboards.queries(board, name) for v in dashboards.used_variables(q.expr)
        }
        used |= {v for p in dashboards.panels(board) for v in dashboards.used_variables(p["title"])}
        assert used <= defined.keys(), f"{name}: undefined variables {used - defined.keys()}"
        for variable in defined.values():
            assert variable["datasource"]["uid"] == "ltvcac-prometheus", variable["name"]
            query = dashboards.variable_query(variable)
            assert re.fullmatch(r"label_values\(.+, \w+\)", query), f"{name}: {query}"


def test_channel_and_window_variables_on_the_business_dashboards() -> None:
    for uid in ("ltvcac-channels", "ltvcac-attribution", "ltvcac-cohorts"):
        board = _board(uid)
        assert {"channel", "window"} <= dashboards.variables(board).keys(), uid
        assert dashboards.variables(board)["window"]["current"]["value"] == "90d", uid
    assert "model" in dashboards.variables(_board("ltvcac-cohorts"))


def test_the_ratio_panel_draws_the_3_to_1_threshold_line() -> None:
    panel = next(iter(dashboards.panels(_board("ltvcac-channels"))))
    assert "ltvcac_headline_ltv_cac_ratio" in panel["targets"][0]["expr"]
    defaults = panel["fieldConfig"]["defaults"]
    assert {"color": "green", "value": 3} in defaults["thresholds"]["steps"]
    assert defaults["custom"]["thresholdsStyle"]["mode"] == "line"


def test_the_cohorts_dashboard_says_the_cohorts_are_in_redis() -> None:
    texts = [p for p in dashboards.panels(_board("ltvcac-cohorts")) if p["type"] == "text"]
    assert len(texts) == 1 and "Redis" in texts[0]["options"]["content"]


def test_the_alerts_link_to_existing_dashboards() -> None:
    uids = {board["uid"] for board in BOARDS.values()}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            text = " ".join(str(v) for v in rule["annotations"].values())
            linked = set(re.findall(r"/d/([a-z-]+)", text))
            assert linked and linked <= uids, f"{rule['alert']} links to {linked - uids}"


def _board(uid: str) -> dict[str, Any]:
    return next(board for board in BOARDS.values() if board["uid"] == uid)
