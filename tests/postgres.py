"""A throwaway PostgreSQL schema per test, on the real server the machine runs (127.0.0.1:5432).

The store tests run against PostgreSQL as well as SQLite. If the server is not there, the test
fails with the reason: CI must not pass by skipping them. ``MOSBRIDGE_TEST_POSTGRES_URL``
points them at another server.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest

BASE_URL = os.environ.get("MOSBRIDGE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _connect() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(BASE_URL, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        pytest.fail(f"PostgreSQL is required for these tests and is not reachable at {BASE_URL}: {e}")


def schema_url(schema: str) -> str:
    sep = "&" if "?" in BASE_URL else "?"
    return f"{BASE_URL}{sep}options={quote(f'-csearch_path={schema}')}"


def fresh_schema() -> Iterator[str]:
    """Yield a store URL whose tables live in a new, empty schema; drop it afterwards."""
    schema = f"mbtest_{uuid.uuid4().hex[:12]}"
    with _connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(schema)
    finally:
        with _connect() as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
