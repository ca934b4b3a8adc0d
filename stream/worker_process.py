"""A worker in a child process, for ``ltvcac dev``, tests and benchmarks.

Running the worker as a real process (not in the caller's event loop) is what a
deployment does, and lets callers stop or kill it like a crash would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from prometheus_client.parser import text_string_to_metric_families

from stream.metrics import REFERRAL_SERIES

Sample = tuple[str, frozenset[tuple[str, str]]]


class WorkerProcess:
    """``ltvcac worker`` with the given ``LTVCAC_*`` settings, logging to ``log_path``."""

    def __init__(self, settings_env: dict[str, str], log_path: Path) -> None:
        self._env = {**os.environ, **settings_env}
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        host = settings_env.get("LTVCAC_WEB_HOST", "127.0.0.1")
        self.metrics_url = f"http://{host}:{settings_env['LTVCAC_WEB_PORT']}/metrics"

    def start(self, timeout: float = 60.0) -> None:
        """Start and wait until ``/metrics`` answers."""
        self._log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                self.metrics_text()
                return
            except OSError:
                time.sleep(0.2)  # poll interval while waiting for the condition above
        raise TimeoutError(f"worker did not serve /metrics within {timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return str(response.read().decode())

    def samples(self) -> dict[Sample, float]:
        """Every sample on ``/metrics`` keyed by (name, labels)."""
        result: dict[Sample, float] = {}
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                result[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return result

    def channel_samples(self) -> dict[Sample, float]:
        """The samples that belong to a channel: those with a ``channel`` label, and the
        referral figures (of ``all``)."""
        return {
            sample: value
            for sample, value in self.samples().items()
            if channel_of(sample) is not None
        }

    @property
    def running(self) -> bool:
        """Started and not exited (nor stopped or killed) since."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it does not finish in time."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, signum: int, timeout: float) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signum)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def label_set(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def channel_of(sample: Sample) -> str | None:
    """The channel a sample belongs to: its ``channel`` label; ``all`` for the referral
    figures, which come from the ``all`` record."""
    name, labels = sample
    if name.removesuffix("_defined") in REFERRAL_SERIES:
        return "all"
    return dict(labels).get("channel")
