"""PostgreSQL for the tests: a throwaway cluster of the session's own, or the server a URL names.

The store tests run against PostgreSQL as well as SQLite, never skipped: CI must not pass by
skipping them. With ``MOSBRIDGE_TEST_POSTGRES_URL`` unset or empty, the session starts its own
cluster on first use and deletes it at the end; set, it names the server to use instead.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest

ENV = "MOSBRIDGE_TEST_POSTGRES_URL"
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
# A cluster that only lives for one test session: durability buys nothing and costs seconds.
THROWAWAY_CONF = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
"""


@dataclass(frozen=True)
class PgServer:
    """The server the tests use: its base URL, and whether this session started it."""

    url: str
    own: bool

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 5432

    def via(self, url: str, port: int) -> str:
        """``url`` (on this server) through a TCP proxy on loopback ``port`` instead."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"))


def _bindir() -> Path:
    """Where initdb and pg_ctl are: Debian's newest versioned directory, else the PATH."""
    versions = [p.parent for p in DEBIAN_BINDIRS.glob("*/bin/initdb")]
    versions.sort(key=lambda b: int(b.parent.name) if b.parent.name.isdigit() else -1)
    if versions:
        return versions[-1]
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail(f"PostgreSQL is required for these tests: install the Debian package postgresql "
                    f"(scripts/bootstrap.sh --dev does), or set {ENV} to a server's URL")
    return Path(initdb).parent


def _free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port != 5432:  # never the port a machine's own server listens on
            return port


class ThrowawayCluster:
    """A PostgreSQL cluster in a temporary directory, on a free loopback port, trust authentication.

    PostgreSQL refuses to run as root: as root, every command runs as the ``postgres`` user
    (Debian's package creates it)."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.root = Path(tempfile.mkdtemp(prefix="mosbridge-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("the tests run as root, and PostgreSQL must not: no user 'postgres' to run it as "
                            f"(Debian's postgresql package creates it; scripts/bootstrap.sh --dev installs it), "
                            f"or set {ENV}")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([str(self.bindir / args[0]), *args[1:]], cwd=self.root, capture_output=True,
                              text=True, timeout=120, check=False, **self._as)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} {args[1:]} failed ({done.returncode}): {done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale",
                  "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(THROWAWAY_CONF.format(socket_dir=self.root))
        for attempt in range(3):  # the free port can be taken between finding it and listening on it
            self.port = _free_port()
            try:
                self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                          "-o", f"-p {self.port}")
                return
            except RuntimeError:
                if attempt == 2:
                    raise

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def session_server() -> Iterator[PgServer]:
    """The session's server: the one ``MOSBRIDGE_TEST_POSTGRES_URL`` names, or a throwaway cluster
    started now and deleted once the session is done."""
    configured = os.environ.get(ENV, "").strip()
    if configured:
        yield PgServer(configured, own=False)
        return
    cluster = ThrowawayCluster()
    try:
        try:
            cluster.start()
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            pytest.fail(f"could not start a throwaway PostgreSQL cluster for the tests (or set {ENV}): {e}")
        yield PgServer(cluster.url, own=True)
    finally:
        cluster.stop()


def _connect(base_url: str) -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(base_url, autocommit=True, connect_timeout=5)
    except psycopg.Error as e:
        pytest.fail(f"PostgreSQL is required for these tests and is not reachable at {base_url}: {e}")


def schema_url(base_url: str, schema: str) -> str:
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"


def fresh_schema(base_url: str) -> Iterator[str]:
    """Yield a store URL whose tables live in a new, empty schema; drop it afterwards."""
    schema = f"mbtest_{uuid.uuid4().hex[:12]}"
    with _connect(base_url) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(base_url, schema)
    finally:
        with _connect(base_url) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
