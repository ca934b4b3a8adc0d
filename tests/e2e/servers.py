"""Real Prometheus, Alertmanager and the webhook receiver as child processes, each on a
free loopback port with its own data directory, stopped (and killed if need be) on exit."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from stream.devstack import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "ltvcac.rules.yml"
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
WEBHOOK_LOG = ROOT / "deploy" / "alertmanager" / "webhook_log.py"
INSTALL_HINT = (
    "install them with `make tools` (apt-get install -y prometheus prometheus-alertmanager "
    "on Debian)"
)


def binary(*names: str) -> str:
    """The first of ``names`` on PATH (Debian names Alertmanager prometheus-alertmanager)."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"none of {', '.join(names)} is on PATH: {INSTALL_HINT}")


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_for(check: Callable[[], bool], what: str, process: Process, timeout: float) -> None:
    """Poll ``check`` until true; fail with the process's log if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if process.exited():
            raise RuntimeError(f"{process.name} exited while waiting for {what}:\n{process.tail()}")
        with contextlib.suppress(OSError, ValueError):
            if check():
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name}: no {what} within {timeout}s:\n{process.tail()}")
        time.sleep(0.2)  # poll interval


class Process:
    """A child process in its own process group, its output in ``log`` (standard output
    in ``stdout`` instead when given)."""

    def __init__(self, name: str, argv: list[str], log: Path, stdout: Path | None = None) -> None:
        self.name = name
        self.log = log
        self._files = [log.open("wb")]
        if stdout is not None:
            self._files.append(stdout.open("wb"))
        self._process = subprocess.Popen(
            argv, stdout=self._files[-1], stderr=self._files[0], start_new_session=True
        )

    def exited(self) -> bool:
        return self._process.poll() is not None

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for file in self._files:
            file.close()


@contextlib.contextmanager
def running(name: str, argv: list[str], log: Path, stdout: Path | None = None) -> Iterator[Process]:
    process = Process(name, argv, log, stdout)
    try:
        yield process
    finally:
        process.stop()


def fast_rules(source: Path, target: Path, hold: str = "5s") -> Path:
    """A copy of the rule file whose ``for`` durations are ``hold``.

    The project's rules wait 2 to 15 minutes before firing; the copy keeps what they
    express (a condition must hold over several evaluations, 1 s apart here) at a
    duration an end-to-end test can wait for. The real durations are checked by the
    promtool unit tests in deploy/prometheus/tests/.
    """
    document = yaml.safe_load(source.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = hold
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


class Prometheus:
    def __init__(self, url: str, process: Process) -> None:
        self.url = url
        self.process = process

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        body = http_json(f"{self.url}/api/v1/{path}?{query}")
        if body.get("status") != "success":
            raise AssertionError(f"Prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now (a scalar as one sample without labels)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts


@contextlib.contextmanager
def prometheus(
    workdir: Path, worker: str, rules: Path, alertmanager: str, timeout: float = 60.0
) -> Iterator[Prometheus]:
    """Prometheus scraping ``worker`` (host:port) every second as the job ``ltvcac``,
    evaluating ``rules`` every second and sending alerts to ``alertmanager``."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(rules)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "ltvcac", "static_configs": [{"targets": [worker]}]}],
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{free_port()}"
    argv = [
        binary("prometheus"),
        f"--config.file={path}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address={address}",
    ]
    with running("prometheus", argv, workdir / "prometheus.log") as process:
        server = Prometheus(f"http://{address}", process)
        wait_for(lambda: _ok(f"{server.url}/-/ready"), "readiness", process, timeout)
        yield server


@contextlib.contextmanager
def alertmanager(workdir: Path, webhook_url: str, timeout: float = 60.0) -> Iterator[str]:
    """Alertmanager with the project's routes and inhibitions, waits of a second and
    ``webhook_url`` as every receiver's webhook; yields its host:port."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook_url
    path = workdir / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    address = f"127.0.0.1:{free_port()}"
    argv = [
        binary("prometheus-alertmanager", "alertmanager"),
        f"--config.file={path}",
        f"--storage.path={workdir / 'alertmanager-data'}",
        f"--web.listen-address={address}",
        "--cluster.listen-address=",  # a single instance: no gossip port
    ]
    with running("alertmanager", argv, workdir / "alertmanager.log") as process:
        wait_for(lambda: _ok(f"http://{address}/-/ready"), "readiness", process, timeout)
        yield address


class Webhook:
    """deploy/alertmanager/webhook_log.py: every alert Alertmanager sent, as it printed it."""

    def __init__(self, url: str, process: Process, output: Path) -> None:
        self.url = url
        self.process = process
        self._output = output

    def received(self) -> list[dict[str, Any]]:
        *complete, _partial = self._output.read_text().split("\n")  # a line may be half-written
        return [json.loads(line) for line in complete if line.strip()]


@contextlib.contextmanager
def webhook(workdir: Path, timeout: float = 30.0) -> Iterator[Webhook]:
    port = free_port()
    output = workdir / "webhook.jsonl"
    argv = [sys.executable, str(WEBHOOK_LOG), "--host", "127.0.0.1", "--port", str(port)]
    with running("webhook", argv, workdir / "webhook.log", stdout=output) as process:
        wait_for(lambda: _listening(port), "listening socket", process, timeout)
        yield Webhook(f"http://127.0.0.1:{port}/alerts", process, output)


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.URLError:
        return False


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0
