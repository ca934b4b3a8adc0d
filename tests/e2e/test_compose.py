"""docker-compose.yml, the Dockerfile and the files they name agree with each other and
with the service (Docker is not needed: the files are read, not run). The demo shop's
history is checked by ``ltvcac replay --dry-run``, with the worker's own rules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from stream.config import Settings
from tests.e2e.servers import ALERTMANAGER_CONFIG, ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
GRAFANA = ROOT / "deploy" / "grafana"
DEMO_SHOP = ROOT / "deploy" / "demo" / "shop.py"


def mounts(service: str) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (each must exist)."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            host = (ROOT / source).resolve()
            assert host.exists(), f"{service} mounts {source}, which does not exist"
            found[target] = host
    return found


def flag(service: str, name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in SERVICES[service]["command"] if a.startswith(name)]
    return value


def worker_env() -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES["worker"]["environment"].items()}


def test_the_stack_has_its_services() -> None:
    assert set(SERVICES) == {
        "kafka", "redis", "worker", "demo", "prometheus", "alertmanager", "alert-log", "grafana",
    }  # fmt: skip
    assert SERVICES["kafka"]["image"].startswith("apache/kafka:")
    assert SERVICES["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert SERVICES["demo"]["profiles"] == ["demo"]


def test_worker_settings_exist_and_reach_kafka_and_redis() -> None:
    env = worker_env()
    known = {f"LTVCAC_{name.upper()}" for name in Settings.model_fields}
    assert set(env) - known == set(), f"not settings of stream/config.py: {set(env) - known}"
    Settings(**{k.removeprefix("LTVCAC_").lower(): v for k, v in env.items() if "${" not in v})
    assert env["LTVCAC_WEB_HOST"] == "0.0.0.0"
    kafka = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"PLAINTEXT://{env['LTVCAC_KAFKA_BOOTSTRAP_SERVERS']}" in kafka.split(",")
    assert urlparse(env["LTVCAC_REDIS_URL"]).hostname == "redis"


def test_workers_scale_and_prometheus_finds_each_by_dns() -> None:
    worker = SERVICES["worker"]
    assert "ports" not in worker and "container_name" not in worker, "a fixed port or name"
    port = int(worker_env()["LTVCAC_WEB_PORT"])
    assert [int(p) for p in worker["expose"]] == [port]
    (job,) = [j for j in PROMETHEUS["scrape_configs"] if j["job_name"] == "ltvcac"]
    (discovery,) = job["dns_sd_configs"]
    assert (discovery["names"], discovery["type"], discovery["port"]) == (["worker"], "A", port)
    assert f"127.0.0.1:{port}/metrics" in " ".join(worker["healthcheck"]["test"])


def test_prometheus_reads_the_mounted_config_rules_and_alertmanager() -> None:
    files = mounts("prometheus")
    config = flag("prometheus", "--config.file")
    assert files[config] == ROOT / "deploy" / "prometheus" / "prometheus.yml"
    (pattern,) = PROMETHEUS["rule_files"]
    rules_dir, glob = pattern.rsplit("/", 1)
    assert sorted(files[rules_dir].glob(glob)), f"{pattern} matches no mounted rule file"
    (alertmanagers,) = PROMETHEUS["alerting"]["alertmanagers"]
    (target,) = alertmanagers["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in SERVICES and port == "9093"


def test_alertmanager_config_and_its_webhook_receiver() -> None:
    files = mounts("alertmanager")
    assert files[flag("alertmanager", "--config.file")] == ALERTMANAGER_CONFIG
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    receiver = SERVICES["alert-log"]
    port = receiver["command"][receiver["command"].index("--port") + 1]
    assert urls == [f"http://alert-log:{port}/alerts"] and receiver["expose"] == [port]
    script = receiver["command"][1]
    assert mounts("alert-log")[script] == ROOT / "deploy" / "alertmanager" / "webhook_log.py"


def test_grafana_provisioning_paths() -> None:
    files = mounts("grafana")
    assert (
        files["/etc/grafana/provisioning/datasources"] == GRAFANA / "provisioning" / "datasources"
    )
    assert files["/etc/grafana/provisioning/dashboards"] == GRAFANA / "provisioning" / "dashboards"
    (provider,) = yaml.safe_load((GRAFANA / "provisioning/dashboards/ltvcac.yml").read_text())[
        "providers"
    ]
    dashboards = provider["options"]["path"]
    assert files[dashboards] == GRAFANA / "dashboards"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).relative_to(dashboards)).is_file(), home
    (source,) = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ]
    assert urlparse(source["url"]).netloc == "prometheus:9090"


def test_dockerfile_builds_the_worker_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.$", text, re.MULTILINE)
    assert re.search(r'^ENTRYPOINT \["ltvcac", "worker"\]$', text, re.MULTILINE)
    assert re.search(r"LTVCAC_WEB_HOST=0\.0\.0\.0", text)
    assert re.search(rf"^EXPOSE {worker_env()['LTVCAC_WEB_PORT']}$", text, re.MULTILINE)
    for source in re.findall(r"^COPY (?!--)(.+) \S+$", text, re.MULTILINE):
        for path in source.split():
            assert (ROOT / path).exists(), f"the Dockerfile copies {path}, which does not exist"
    entry = SERVICES["demo"]["entrypoint"]
    assert entry[1] == "/app/deploy/demo/shop.py" and "COPY deploy/demo ./deploy/demo" in text
    assert re.search(r"^WORKDIR /app$", text, re.MULTILINE)


def test_the_lateness_covers_the_demo_history() -> None:
    lateness = worker_env()["LTVCAC_ALLOWED_LATENESS_SECONDS"]
    default = int(re.fullmatch(r"\$\{LTVCAC_ALLOWED_LATENESS_SECONDS:-(\d+)\}", lateness)[1])
    assert default >= 180 * 86_400 + 86_400, "the demo's 180 days of history would be too late"


def test_the_demo_history_is_valid_replay_input() -> None:
    history = subprocess.run(
        [sys.executable, str(DEMO_SHOP), "--days", "3", "--print"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert history.stdout.count("\n") > 100
    check = subprocess.run(
        [sys.executable, "-m", "stream.cli", "replay", "--dry-run", "-"],
        input=history.stdout, capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert ", 0 bad lines" in check.stderr, check.stderr
