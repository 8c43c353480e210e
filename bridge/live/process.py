"""Running one server process's event loop: the open-file limit, a frozen heap, uvloop or asyncio.

Shared by ``serve`` in one process and by each worker of ``serve --workers N``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Coroutine
from typing import Any

from bridge.live.rlimit import raise_open_file_limit
from bridge.live.settings import Settings


def run_server(settings: Settings, main: Coroutine[Any, Any, Any]) -> int:
    """Run ``main`` (a server) to its end on the configured event loop; 1 if it could not listen."""
    raise_open_file_limit()
    # What is alive now (modules, their tables, settings) lives as long as the process: keep it out
    # of the collector's full passes, which otherwise hold the event loop for 10-40 ms a few times a
    # minute at a few hundred calls (measured by the loop-lag histogram; gc.freeze, Python 3.7+).
    gc.collect()
    gc.freeze()
    try:
        if settings.event_loop == "uvloop":
            import uvloop

            uvloop.run(main)
        else:
            asyncio.run(main)
    except OSError as exc:  # the listening socket: port taken, address not local, no permission
        logging.getLogger("mosbridge").error("cannot listen on %s:%s: %s", settings.host, settings.port, exc)
        return 1
    return 0
