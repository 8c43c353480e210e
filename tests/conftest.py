"""Fixtures shared by the test packages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PgServer, fresh_schema, session_server
from tests.webhook_server import FailingHook, Hook, Received, serve

# The pure and core tests: no socket, no database, no subprocess, no browser. Everything else is
# marked ``slow``, so `pytest -m "not slow"` runs these alone in seconds.
CORE_TESTS = ("tests/quality/", "tests/bridge/codecs/", "tests/bridge/core/", "tests/bridge/protocols/test_twilio.py",
              "tests/bridge/protocols/test_realtime.py", "tests/bridge/protocols/test_capture.py",
              "tests/bridge/live/test_logs.py", "tests/bridge/stand_ins/test_simulate.py",
              "tests/bridge/cli/test_mos_cmd.py", "tests/bridge/loadtest/test_caller_view.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    root = Path(str(config.rootpath))
    for item in items:
        where = Path(str(item.path)).relative_to(root).as_posix()
        if not where.startswith(CORE_TESTS):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PgServer]:
    """The session's PostgreSQL: a throwaway cluster started on first use, or MOSBRIDGE_TEST_POSTGRES_URL."""
    yield from session_server()


@pytest.fixture
def postgres_url(postgres_server: PgServer) -> Iterator[str]:
    """A PostgreSQL store URL on a schema of its own (fails, never skips, without the server)."""
    yield from fresh_schema(postgres_server.url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on the embedded default (a SQLite file) and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
    else:
        server: PgServer = request.getfixturevalue("postgres_server")  # only started when a test needs it
        yield from fresh_schema(server.url)


@pytest.fixture
def hook() -> Iterator[tuple[str, Received]]:
    """A webhook receiver on loopback: its URL and the POSTs it got."""
    yield from serve(Hook)


@pytest.fixture
def failing_hook() -> Iterator[tuple[str, Received]]:
    """A webhook receiver that answers every POST with 500."""
    yield from serve(FailingHook)
