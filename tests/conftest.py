"""Fixtures shared by the test packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import fresh_schema
from tests.webhook_server import FailingHook, Hook, Received, serve


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL store URL on a schema of its own (fails, never skips, without the server)."""
    yield from fresh_schema()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on the embedded default (a SQLite file) and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
    else:
        yield from fresh_schema()


@pytest.fixture
def hook() -> Iterator[tuple[str, Received]]:
    """A webhook receiver on loopback: its URL and the POSTs it got."""
    yield from serve(Hook)


@pytest.fixture
def failing_hook() -> Iterator[tuple[str, Received]]:
    """A webhook receiver that answers every POST with 500."""
    yield from serve(FailingHook)
