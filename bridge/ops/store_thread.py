"""One thread with one store connection, for the server's reads and the alert evaluator.

The event loop never waits on the database: handlers ``await db.run(fn, *args)`` and ``fn(store,
*args)`` runs on this thread. A database error drops the connection; the next call reopens it,
so a database restart heals without restarting the bridge.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bridge.ops.store import ReportStore, open_store

T = TypeVar("T")


class StoreThread:
    def __init__(self, url: str) -> None:
        self._url = url
        self._store: ReportStore | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mosbridge-db")

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._store is None:
            self._store = open_store(self._url)
        try:
            return fn(self._store, *args)
        except Exception as e:
            if self._store.is_db_error(e):
                with contextlib.suppress(Exception):
                    self._store.close()
                self._store = None
            raise

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(store, *args)`` on the store thread and return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._call, fn, *args)

    def _close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
            self._store = None

    def close(self) -> None:
        self._pool.submit(self._close)
        self._pool.shutdown(wait=True)
