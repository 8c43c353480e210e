"""One worker process of ``serve --workers N``: today's ``serve`` on the supervisor's port.

The supervisor (:mod:`bridge.live.supervisor`) starts ``python -m bridge.live.worker --index I
--count N --parent PID`` with the settings as JSON on stdin (secrets stay out of argv and the
environment; ``port`` is the one the supervisor reserved) and ``PROMETHEUS_MULTIPROC_DIR`` set; the
worker listens on that port with ``SO_REUSEPORT``, beside the other workers.
A worker whose supervisor is gone drains and exits, so no worker outlives it holding the port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from bridge.live.logs import configure_logging
from bridge.live.settings import Settings

log = logging.getLogger("mosbridge")

PARENT_CHECK_S = 0.5


@dataclass(frozen=True)
class Worker:
    """Which of the supervisor's workers this process is: ``index`` of ``count`` (0 runs the alerts)."""

    index: int
    count: int

    @property
    def runs_alerts(self) -> bool:
        return self.index == 0

    def own_path(self, path: Path) -> Path:
        """A per-worker file beside ``path`` (a spool has one writer): worker 0 keeps ``path`` itself,
        so going from one process to N keeps draining what the single process left."""
        return path if self.index == 0 else path.with_name(f"{path.name}.w{self.index}")


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_S)
    log.warning("the supervisor (pid %d) is gone: draining and exiting", parent)
    stop.set()


async def _serve(settings: Settings, worker: Worker, parent: int) -> None:
    from bridge.live.server import serve

    stop = asyncio.Event()
    watch = asyncio.create_task(_watch_parent(parent, stop))
    try:
        await serve(settings, stop=stop, worker=worker)
    finally:
        watch.cancel()


def main(argv: list[str] | None = None) -> int:
    from bridge.live.process import run_server

    p = argparse.ArgumentParser(prog="python -m bridge.live.worker", description=__doc__)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--parent", type=int, required=True, help="the supervisor's pid")
    args = p.parse_args(argv)
    settings = Settings(**json.loads(sys.stdin.read()))
    configure_logging(settings.log_level)
    worker = Worker(args.index, args.count)
    return run_server(settings, _serve(settings, worker, args.parent))


if __name__ == "__main__":
    sys.exit(main())
