"""Fixtures shared by the test packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import fresh_schema


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
