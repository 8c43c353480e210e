"""The supervisor of ``serve --workers N``: one port, N worker processes each listening on it.

The supervisor reserves the port once (``--port 0`` picks one for all) and starts N workers
(:mod:`bridge.live.worker`), each listening on it with ``SO_REUSEPORT``: the kernel spreads new
connections over the workers' sockets by a hash of the peer's address and port, so calls split
evenly. (A socket shared by all workers does not: epoll wakes waiting workers last in, first out,
and one of 2 workers took up to 78 % of the calls; ``benchmarks/bench_workers.py``.) Each worker is
today's single-process ``serve``: its own event loop, calls, report writer and drain. The supervisor
sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh directory for the workers' metrics, restarts a worker
that dies (its live gauges are dropped; the other workers' calls go on), and on SIGTERM/SIGINT lets
every worker drain, then exits. It holds no calls and runs no event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import FrameType

from pydantic import SecretStr

from bridge.live.metrics import MULTIPROC_ENV
from bridge.live.settings import Settings
from bridge.ops.store import StoreError, open_store, redact_url

log = logging.getLogger("mosbridge.supervisor")

POLL_S = 0.1
RESTART_DELAY_S = 0.5  # before restarting a dead worker; doubles while it keeps dying young
MAX_RESTART_DELAY_S = 30.0
HEALTHY_S = 10.0  # a worker that lived this long resets its restart delay
STOP_MARGIN_S = 30.0  # past the drain timeout, workers still running get SIGKILL


@dataclass
class _Slot:
    """One worker place: its current process (None while waiting to restart) and restart state."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    delay_s: float = RESTART_DELAY_S
    restart_at: float | None = None
    exits: list[int] = field(default_factory=list)


def reserve(host: str, port: int) -> socket.socket:
    """The port the workers listen on, held by a bound socket that never listens.

    A plain bind first, so a port another server already listens on is an error here rather than
    a silent share; then a ``SO_REUSEPORT`` bind that the workers' listening sockets join (only
    listening sockets receive connections, so the supervisor's takes none)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def worker_settings(settings: Settings, port: int) -> str:
    """The settings every worker runs with, as JSON (secrets in clear: it goes down a pipe).

    One ephemeral pseudonym key is made here when none is set, so all workers pseudonymize an id
    alike."""
    data: dict[str, object] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        data[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    data["port"] = port
    if data["pseudonym_key"] is None:
        data["pseudonym_key"] = secrets.token_hex(32)
    return json.dumps(data)


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


class Supervisor:
    """Starts, restarts and stops the workers; see the module docstring."""

    def __init__(self, settings: Settings, sock: socket.socket, metrics_dir: str) -> None:
        self.settings = settings
        self.sock = sock
        self.metrics_dir = metrics_dir
        self.host, self.port = sock.getsockname()[:2]
        self.slots = [_Slot(i) for i in range(settings.workers)]
        self.stopping = False
        self._config = worker_settings(settings, self.port).encode()
        self._env = {**os.environ, MULTIPROC_ENV: metrics_dir}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self, slot: _Slot) -> None:
        argv = [sys.executable, "-m", "bridge.live.worker", "--index", str(slot.index),
                "--count", str(len(self.slots)), "--parent", str(os.getpid())]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, env=self._env)
        assert proc.stdin is not None
        with contextlib.suppress(BrokenPipeError), proc.stdin:  # died at once: the poll loop sees the exit
            proc.stdin.write(self._config)
        slot.proc, slot.started, slot.restart_at = proc, time.monotonic(), None
        log.info("worker %d started (pid %d)", slot.index, proc.pid)

    def _reap(self, slot: _Slot, code: int) -> None:
        """A worker has exited: drop its live gauges, and unless stopping, schedule its restart."""
        from prometheus_client.multiprocess import mark_process_dead

        assert slot.proc is not None
        pid = slot.proc.pid
        mark_process_dead(pid, self.metrics_dir)  # type: ignore[no-untyped-call]
        slot.exits.append(code)
        slot.proc = None
        if self.stopping:
            log.info("worker %d (pid %d) %s", slot.index, pid, _describe(code))
            return
        lived = time.monotonic() - slot.started
        if lived >= HEALTHY_S:
            slot.delay_s = RESTART_DELAY_S
        wait = slot.delay_s
        slot.delay_s = min(MAX_RESTART_DELAY_S, wait * 2)  # in case it dies young again
        slot.restart_at = time.monotonic() + wait
        log.error("worker %d (pid %d) %s after %.1f s; restarting it in %.1f s", slot.index, pid, _describe(code),
                  lived, wait)

    def run(self) -> int:
        """Run the workers until SIGTERM/SIGINT, then drain them; 0 when every worker stopped cleanly."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for slot in self.slots:
            self._start(slot)
        log.info("mosbridge supervisor (pid %d) listening on %s:%s with %d workers (store=%s)", os.getpid(),
                 self.host, self.port, len(self.slots), redact_url(self.settings.database_url))
        while not self.stopping:
            for slot in self.slots:
                if slot.proc is not None and (code := slot.proc.poll()) is not None:
                    self._reap(slot, code)
                if slot.proc is None and slot.restart_at is not None and time.monotonic() >= slot.restart_at \
                        and not self.stopping:
                    self._start(slot)
            time.sleep(POLL_S)
        return self._stop()

    def _stop(self) -> int:
        live = [s for s in self.slots if s.proc is not None]
        log.info("stopping: %d worker(s) drain their calls, up to %.0f s", len(live), self.settings.drain_timeout_s)
        for slot in live:
            assert slot.proc is not None
            slot.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.drain_timeout_s + STOP_MARGIN_S
        clean = True
        for slot in live:
            assert slot.proc is not None
            try:
                code = slot.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker %d (pid %d) did not stop in time: killing it", slot.index, slot.proc.pid)
                slot.proc.kill()
                code = slot.proc.wait()
            # Killed by our SIGTERM before it had installed its drain: it had no calls yet.
            clean = clean and code in (0, -signal.SIGTERM)
            self._reap(slot, code)
        self.sock.close()
        log.info("stopped: every worker has exited%s", "" if clean else " (not all cleanly)")
        return 0 if clean else 1


def prepare_store(url: str) -> None:
    """Create or migrate the store (and put SQLite in WAL mode) once, before workers race to."""
    try:
        open_store(url).close()
    except StoreError as e:  # the workers retry and spool; say it once here
        log.warning("report store %s not ready at start: %s", redact_url(url), e)


def supervise(settings: Settings) -> int:
    """``serve --workers N``: reserve the port, run the workers, drain them on SIGTERM/SIGINT."""
    try:
        sock = reserve(settings.host, settings.port)
    except OSError as exc:
        logging.getLogger("mosbridge").error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        return 1
    prepare_store(settings.database_url)
    with tempfile.TemporaryDirectory(prefix="mosbridge-metrics-") as metrics_dir:
        return Supervisor(settings, sock, metrics_dir).run()
