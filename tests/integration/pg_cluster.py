"""A private PostgreSQL primary and its streaming standby, for the failover tests.

The primary is a fresh cluster (initdb) on a free loopback port with `wal_level = replica` and
replication connections allowed from 127.0.0.1 without a password; the standby is a copy of it
made with `pg_basebackup -R` (which writes `primary_conninfo` and `standby.signal`) on another
port. Both are stopped and their directories removed when the `replicated_pair` context ends,
whatever happened inside. The servers run as the `postgres` account when the tests run as root
(initdb refuses root), else as the current user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from demo.embedded import free_port

BIN = Path(os.environ.get("ENVPATROL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
needs_pg_binaries = pytest.mark.skipif(
    not (BIN / "initdb").exists() or not (BIN / "pg_basebackup").exists(),
    reason=f"needs initdb, pg_ctl and pg_basebackup in {BIN} (ENVPATROL_TEST_PG_BIN)",
)
DATABASE = "envpatrol"
# Memory-backed where the machine has it: the clusters are copied and written a lot, and
# disk I/O shared with other work made a pair's set-up several times slower. mkdtemp makes a
# directory of its own (mode 0700) there, as in /tmp.
_SHM = "/dev/shm"  # noqa: S108
_SCRATCH = _SHM if os.access(_SHM, os.W_OK) else None
STANDBY_NAME = "standby1"


def _server_user() -> str | None:
    """Who the servers run as: `postgres` under root, else whoever runs the tests (None)."""
    if os.geteuid() != 0:
        return None
    return "postgres"


class PgServer:
    """One PostgreSQL server: a data directory, a port, a log file."""

    def __init__(self, name: str, data: Path, port: int) -> None:
        self.name = name
        self.data = data
        self.port = port
        self.log_path = data.parent / f"{name}.log"

    def url(self, database: str = DATABASE, **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def _pg_ctl(self, *args: str, timeout: float = 60) -> None:
        _run([str(BIN / "pg_ctl"), "-D", str(self.data), *args], timeout=timeout)

    def start(self) -> None:
        self._pg_ctl("-l", str(self.log_path), "-w", "-t", "60", "start", timeout=90)

    def stop(self, mode: str = "fast") -> None:
        """`fast`: a clean shutdown (sessions ended, WAL sent to the standby, a checkpoint);
        `immediate`: every process quits at once, as when the machine is lost."""
        self._pg_ctl("-m", mode, "-w", "-t", "60", "stop", timeout=90)

    def promote(self) -> None:
        self._pg_ctl("-w", "-t", "60", "promote", timeout=90)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def kill(self) -> None:
        """Stops the server however it is: the last word of every test's cleanup."""
        if self.running():
            with contextlib.suppress(subprocess.SubprocessError, AssertionError):
                self.stop("immediate")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class ReplicatedPair:
    """A primary and a standby streaming from it."""

    def __init__(self, primary: PgServer, standby: PgServer) -> None:
        self.primary = primary
        self.standby = standby

    def multi_host_url(self, *servers: PgServer, **params: str) -> str:
        """One libpq URL naming several servers, tried in the order given."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in servers)
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://postgres@{hosts}/{DATABASE}" + (f"?{query}" if query else "")

    def wait_replayed(self, timeout: float = 30) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.url(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.standby.url(), autocommit=True) as conn:
            while True:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if row is not None and row[0]:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the standby did not replay up to {target}")
                time.sleep(0.05)


def _run(command: list[str], timeout: float, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        command,
        user=_server_user(),
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd="/",
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} failed ({result.returncode}):\n"
            + result.stdout.decode(errors="replace")[-2000:]
            + result.stderr.decode(errors="replace")[-2000:]
        )


# Test settings: small and quick; fsync off is safe for process crashes (the page cache
# survives them), which is all these tests make.
_PRIMARY_CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 5
max_replication_slots = 5
wal_keep_size = '256MB'
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = '1s'
shared_buffers = '64MB'
max_connections = 40
fsync = off
full_page_writes = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%a '
"""


def _owned_by_server(path: Path) -> None:
    user = _server_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _initdb(data: Path) -> None:
    _run(
        [
            str(BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
            "--wal-segsize=1",  # less to copy than 16 MB segments
        ],
        timeout=120,
    )
    with (data / "pg_hba.conf").open("a") as hba:
        hba.write("host replication all 127.0.0.1/32 trust\n")


@contextlib.contextmanager
def primary_template() -> Iterator[Path]:
    """A stopped primary's data directory, migrated by `envpatrol migrate`: initdb and the
    migrations take most of a pair's set-up, so a test session makes them once and every pair
    starts from a copy."""
    root = Path(tempfile.mkdtemp(prefix="envpatrol-pgtemplate-", dir=_SCRATCH))
    _owned_by_server(root)
    server = PgServer("template", root / "data", free_port())
    try:
        _initdb(server.data)
        _configure(server, root)
        server.start()
        with psycopg.connect(server.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")
        _migrate(server.url())
        server.stop()
        yield server.data
    finally:
        server.kill()
        shutil.rmtree(root, ignore_errors=True)


def _configure(server: PgServer, sockets: Path) -> None:
    # Appended: a later line wins, so a copy of a configured directory is configured again.
    with (server.data / "postgresql.conf").open("a") as conf:
        conf.write(_PRIMARY_CONF.format(port=server.port, sockets=sockets))


@contextlib.contextmanager
def replicated_pair(template: Path, *, synchronous: bool = False) -> Iterator[ReplicatedPair]:
    """A running primary copied from `template` (`primary_template`) and a running standby
    made from it with `pg_basebackup -R`, which has replayed everything. With `synchronous`,
    the primary's COMMIT waits until the standby has the transaction on disk
    (`synchronous_standby_names`), so a transaction the primary confirmed survives the
    primary's loss."""
    root = Path(tempfile.mkdtemp(prefix="envpatrol-replica-", dir=_SCRATCH))
    _owned_by_server(root)
    primary = PgServer("primary", root / "primary", free_port())
    standby = PgServer("standby", root / "standby", free_port())
    try:
        _run(["cp", "-a", str(template), str(primary.data)], timeout=120)
        _configure(primary, root)
        primary.start()
        _run(
            [
                str(BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(standby.data),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            timeout=120,
        )
        # The copy carries the primary's settings: its own port, its name as the primary
        # knows it (the walreceiver's application_name is cluster_name when primary_conninfo
        # names none), and no synchronous standby of its own, or once promoted its every
        # COMMIT would wait for a standby that does not exist.
        with (standby.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {standby.port}\ncluster_name = '{STANDBY_NAME}'\n"
                "synchronous_standby_names = ''\n"
            )
        standby.start()
        pair = ReplicatedPair(primary, standby)
        _wait_streaming(pair)
        if synchronous:
            # Only now: with it set before the standby streams, every COMMIT would wait for a
            # standby that is not there yet. ALTER SYSTEM writes postgresql.auto.conf, which
            # the standby's copy (taken before) does not have.
            with psycopg.connect(primary.url(), autocommit=True) as conn:
                conn.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
                conn.execute("SELECT pg_reload_conf()")
            _wait_streaming(pair, "sync")
        pair.wait_replayed()
        yield pair
    finally:
        for server in (standby, primary):
            server.kill()
        shutil.rmtree(root, ignore_errors=True)


def _wait_streaming(pair: ReplicatedPair, state: str | None = None, timeout: float = 30) -> None:
    """Until the primary lists the standby as streaming (and in `state`: async, sync)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(pair.primary.url(), autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,),
            ).fetchone()
            if row is not None and (state is None or row[0] == state):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the standby never streamed:\n{pair.standby.log()}")
            time.sleep(0.05)


def _migrate(url: str) -> None:
    """The project's own migration command against the new primary."""
    env = {**os.environ, "ENVPATROL_DATABASE_URL": url}
    result = subprocess.run(
        [sys.executable, "-m", "edge.cli", "migrate"],
        capture_output=True,
        timeout=120,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(
            "envpatrol migrate failed:\n" + result.stderr.decode(errors="replace")[-3000:]
        )
