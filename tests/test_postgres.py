"""The tests' PostgreSQL: the session's own throwaway cluster unless a URL names a server."""

from __future__ import annotations

import os
import tempfile

import psycopg

from tests.postgres import ENV, PgServer


def test_the_session_uses_its_own_cluster_unless_a_url_is_given(postgres_server: PgServer) -> None:
    configured = os.environ.get(ENV, "").strip()
    with psycopg.connect(postgres_server.url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    assert row is not None
    if configured:
        assert not postgres_server.own and postgres_server.url == configured
    else:
        host, port = postgres_server.address
        assert postgres_server.own and host == "127.0.0.1" and port != 5432
        assert str(row[0]).startswith(tempfile.gettempdir())


def test_a_url_goes_through_a_proxy_with_its_user_and_options_kept() -> None:
    server = PgServer("postgresql://postgres@127.0.0.1:41234/postgres", own=True)
    assert server.address == ("127.0.0.1", 41234)
    url = "postgresql://postgres@127.0.0.1:41234/postgres?options=-csearch_path%3Dmbtest_1"
    assert server.via(url, 5555) == "postgresql://postgres@127.0.0.1:5555/postgres?options=-csearch_path%3Dmbtest_1"
    assert PgServer("postgresql://u:pw@db.example:6543/t", own=False).via("postgresql://u:pw@db.example:6543/t", 7) \
        == "postgresql://u:pw@127.0.0.1:7/t"
