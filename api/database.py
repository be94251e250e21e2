"""Database connections: one per request, opened only once its parameters are checked.

Reader connections are kept for the next request (at most `pool_size` idle per server, each at
most `POOL_MAX_AGE_S` old): opening one costs more than most of the API's statements
(authentication plus planning against cold catalog caches over dozens of partitions). A kept
connection is handed out again only if it is idle and answers an empty statement. JIT
compilation is off: the API's statements are short and selective, and JIT cost more than it
saved (docs/performance.md). Plans are always made for the parameters at hand: psycopg prepares
a statement run five times on a connection, and a kept connection runs the same statements many
times; PostgreSQL's generic plan for a hotspot's newest passes (cells as an array parameter) was
far slower than a custom one (docs/performance.md).

Reads go through the read-only role (`[database] url`, normally `envpatrol_reader`, and the
session itself is read-only). Writes to the officer-owned tables (grids, cases, API keys, run
requests) go through a second connection as the admin role (`[database] admin_url`, normally
`envpatrol_officer`), opened only by the routes that need an admin key; once a request has it,
its later reads use it too, so a request reads what it wrote.

With a replica (`[database] read_url`), reads go to it, and to the primary (`url`) instead while
the replica is more than `max_replica_lag_s` behind or does not answer; when the primary does
not answer either, a lagging replica still serves (stale beats nothing for officers looking at
hotspots) and says so. The lag is measured on the replica at most every `LAG_CHECK_S`
(`measure_lag`); every response that read says where from (`X-Read-From`, `X-Replica-Lag`).
With a replica, the admin connection commits with `synchronous_commit = remote_apply`: where the
replica is the primary's synchronous standby (deploy/postgres), an officer's change is visible
on it by the time the response is sent, so the next request, read from the replica, sees it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any, cast

import psycopg
from fastapi import Depends, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.settings import ApiSettings

Connection = psycopg.Connection[Any]

POOL_MAX_AGE_S = 600.0
LAG_CHECK_S = 1.0  # how old a lag measurement may be before the next request measures again
# After the replica failed to answer, reads go to the primary for this long before it is tried
# again: a replica that is gone would otherwise cost every request a failed connection attempt.
REPLICA_RETRY_S = 5.0
STATE_KEY = "envpatrol.read_from"

# On the replica: whether it is still one, its lag, whether a WAL receiver runs. Caught up
# (everything received is replayed, and it is receiving) is no lag at all; otherwise the time
# since the last transaction it replayed was committed on the primary, an upper bound (it
# counts the primary's idle time too), NULL when it has replayed nothing since it started.
# Not streaming, received = replayed says nothing about what the primary has meanwhile, so the
# bound is used then too. Only functions any role may call: pg_stat_wal_receiver's columns are
# hidden from roles without pg_read_all_stats, but its one row is not.
LAG_SQL = """
SELECT pg_is_in_recovery(),
       CASE
           WHEN NOT pg_is_in_recovery() THEN 0.0
           WHEN receiving AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
           ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8
       END,
       receiving
FROM (SELECT EXISTS (SELECT FROM pg_stat_wal_receiver) AS receiving) r
"""


@dataclass(frozen=True, slots=True)
class ReplicaLag:
    """One measurement on the replica. `lag_s` None: unknown (it did not answer, or it has
    replayed nothing since it started and is not caught up)."""

    lag_s: float | None
    in_recovery: bool
    receiving: bool
    measured_at: float  # time.monotonic()
    error: str | None = None


def measure_lag(conn: Connection) -> ReplicaLag:
    """The lag of the server `conn` is connected to (0 for a primary)."""
    row = conn.execute(LAG_SQL).fetchone()
    assert row is not None
    in_recovery, lag, receiving = row
    return ReplicaLag(
        None if lag is None else max(0.0, float(lag)),
        bool(in_recovery),
        bool(receiving),
        time.monotonic(),
    )


@dataclass(frozen=True, slots=True)
class ReadFrom:
    """Where a request's reads went, and why."""

    source: str  # "replica" or "primary"
    lag: ReplicaLag | None  # the replica's last measurement; None without a replica
    reason: str = ""  # why the primary served despite a replica: "lagging", "unavailable"

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [(b"x-read-from", self.source.encode())]
        if self.lag is not None and self.lag.lag_s is not None:
            out.append((b"x-replica-lag", f"{self.lag.lag_s:.3f}".encode()))
        return out


class Pool:
    """Kept read-only connections to one server (or one multi-host URL)."""

    def __init__(self, url: str, options: str, size: int, timeout_s: int, name: str) -> None:
        self.url = url
        self.options = options
        self.size = size
        self.timeout_s = timeout_s
        self.name = name
        self._idle: list[Connection] = []
        # when each connection acquire() opened was made (weak: closed ones just go away)
        self._born: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def connect(self) -> Connection:
        """A new connection (the caller closes it)."""
        return psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=self.timeout_s,
            options=self.options,
            application_name=self.name,
        )

    def acquire(self) -> Connection:
        """A kept connection that still answers, else a new one."""
        while True:
            with self._lock:
                if not self._idle:
                    break
                conn = self._idle.pop()
            if time.monotonic() - self._born.get(conn, 0.0) < POOL_MAX_AGE_S and _usable(conn):
                return conn
            conn.close()
        conn = self.connect()
        self._born[conn] = time.monotonic()
        return conn

    def release(self, conn: Connection) -> None:
        """Keep `conn` for a later request if it is reusable and there is room, else close it."""
        if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Database:
    """Where and how the API connects: as a reader, in UTC, with a statement time limit; reads
    from the replica when there is one and it is close enough behind."""

    def __init__(self, settings: ApiSettings) -> None:
        self.url = settings.database_url
        self.admin_url = settings.writer_url
        self.connect_timeout_s = settings.connect_timeout_s
        timeout_ms = max(1, round(settings.statement_timeout_s * 1000))
        common = (
            f"-c statement_timeout={timeout_ms} -c TimeZone=UTC -c jit=off"
            " -c plan_cache_mode=force_custom_plan"
        )
        self.options = f"-c default_transaction_read_only=on {common}"
        self.admin_options = (
            f"{common} -c synchronous_commit=remote_apply" if settings.has_replica else common
        )
        self.pool_size = settings.pool_size
        self.max_lag_s = settings.max_replica_lag_s
        self.primary = Pool(
            self.url, self.options, self.pool_size, self.connect_timeout_s, "envpatrol-api"
        )
        self.replica = (
            Pool(
                settings.reader_url,
                self.options,
                self.pool_size,
                self.connect_timeout_s,
                "envpatrol-api-replica",
            )
            if settings.has_replica
            else None
        )
        self._lag: ReplicaLag | None = None
        self._lag_lock = threading.Lock()

    # -- reads -----------------------------------------------------------------------------

    @property
    def last_lag(self) -> ReplicaLag | None:
        """The replica's last measurement (None without a replica or before the first)."""
        return self._lag

    def _note(self, lag: ReplicaLag) -> ReplicaLag:
        with self._lag_lock:
            self._lag = lag
        return lag

    def _replica_lag(self, conn: Connection) -> ReplicaLag:
        """The last measurement if recent enough, else a new one on `conn`."""
        last = self._lag
        if (
            last is not None
            and last.error is None
            and time.monotonic() - last.measured_at < LAG_CHECK_S
        ):
            return last
        return self._note(measure_lag(conn))

    def _replica_resting(self) -> bool:
        last = self._lag
        return (
            last is not None
            and last.error is not None
            and time.monotonic() - last.measured_at < REPLICA_RETRY_S
        )

    def _read(self, pool_get: str) -> tuple[Connection, ReadFrom]:
        """A reader connection and where it goes: `pool_get` is "acquire" (kept connections)
        or "connect" (a new one the caller closes)."""
        if self.replica is None:
            return getattr(self.primary, pool_get)(), ReadFrom("primary", None)
        replica: Connection | None = None
        if not self._replica_resting():
            try:
                replica = getattr(self.replica, pool_get)()
                lag = self._replica_lag(replica)
            except psycopg.Error as exc:
                if replica is not None:
                    replica.close()
                replica = None
                lag = self._note(
                    ReplicaLag(None, True, False, time.monotonic(), error=_first_line(exc))
                )
            if replica is not None and lag.lag_s is not None and lag.lag_s <= self.max_lag_s:
                return replica, ReadFrom("replica", lag)
        last = self._lag
        reason = "unavailable" if replica is None else "lagging"
        try:
            primary: Connection = getattr(self.primary, pool_get)()
        except psycopg.OperationalError:
            if replica is None:
                raise
            return replica, ReadFrom("replica", last, "primary unavailable")
        if replica is not None:
            self._give_back(replica, pool_get == "acquire")
        return primary, ReadFrom("primary", last, reason)

    def _give_back(self, conn: Connection, kept: bool) -> None:
        if kept and self.replica is not None:
            self.replica.release(conn)
        else:
            conn.close()

    def connect(self) -> Connection:
        """A new reader connection (the caller closes it), where `acquire` would read."""
        conn, _ = self._read("connect")
        return conn

    def acquire_read(self) -> tuple[Connection, ReadFrom]:
        """A reader connection (kept or new) and where it reads from."""
        return self._read("acquire")

    def acquire(self) -> Connection:
        return self.acquire_read()[0]

    def release(self, conn: Connection, source: str = "primary") -> None:
        """Keep `conn` (read from `source`) for a later request if it is reusable and there is
        room, else close it."""
        pool = self.replica if source == "replica" and self.replica is not None else self.primary
        pool.release(conn)

    def close_idle(self) -> None:
        """Close every kept connection (on shutdown)."""
        self.primary.close_idle()
        if self.replica is not None:
            self.replica.close_idle()

    def replica_lag_now(self) -> ReplicaLag | None:
        """A fresh measurement on the replica (None without one), for the health check."""
        if self.replica is None:
            return None
        try:
            conn = self.replica.acquire()
        except psycopg.OperationalError as exc:
            return self._note(ReplicaLag(None, True, False, time.monotonic(), _first_line(exc)))
        try:
            return self._note(measure_lag(conn))
        except psycopg.OperationalError as exc:
            conn.close()
            return self._note(ReplicaLag(None, True, False, time.monotonic(), _first_line(exc)))
        finally:
            self.replica.release(conn)

    # -- writes ----------------------------------------------------------------------------

    def connect_admin(self) -> Connection:
        """A connection that may write the officer-owned tables; callers open transactions.
        Always the primary: `admin_url` names it (or a multi-host URL with
        target_session_attrs=read-write, which finds whichever server is the primary now)."""
        return psycopg.connect(
            self.admin_url,
            autocommit=True,
            connect_timeout=self.connect_timeout_s,
            options=self.admin_options,
            application_name="envpatrol-api-admin",
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Session:
    """A request's connection, opened on first use and closed when the request ends.

    Opening lazily means a request with bad parameters is refused (4xx) before, and without,
    touching the database. `state` (the request's) is told where the reads went.
    """

    def __init__(self, database: Database, state: MutableMapping[str, Any] | None = None) -> None:
        self._database = database
        self._state = state
        self._connection: Connection | None = None
        self._read_from: ReadFrom | None = None
        self._admin: Connection | None = None

    @property
    def database(self) -> Database:
        return self._database

    @property
    def read_from(self) -> ReadFrom | None:
        return self._read_from

    def connection(self) -> Connection:
        """The reader connection; the admin one once the request has written (its writes are
        on the primary and may not be on the replica yet)."""
        if self._admin is not None:
            return self._admin
        if self._connection is None:
            self._connection, self._read_from = self._database.acquire_read()
            if self._state is not None:
                self._state[STATE_KEY] = self._read_from
        return self._connection

    def admin(self) -> Connection:
        """The admin role's connection, on the primary, for writes an admin key allowed."""
        if self._admin is None:
            self._admin = self._database.connect_admin()
        return self._admin

    def close(self) -> None:
        if self._connection is not None:
            source = "primary" if self._read_from is None else self._read_from.source
            self._database.release(self._connection, source)
        if self._admin is not None:
            self._admin.close()
        self._connection = None
        self._admin = None


def _usable(conn: Connection) -> bool:
    if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        return False
    try:
        conn.execute("")
    except psycopg.Error:
        return False
    return True


def session(request: Request) -> Iterator[Session]:
    state = request.scope.setdefault("state", {})
    current = Session(cast(Database, request.app.state.database), state)
    try:
        yield current
    finally:
        current.close()


DbSession = Annotated[Session, Depends(session)]


class ReadFromMiddleware:
    """Puts where a request's reads went (`ReadFrom.headers`) on its response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            found = state.get(STATE_KEY)
            if message["type"] == "http.response.start" and isinstance(found, ReadFrom):
                message = {**message, "headers": [*message.get("headers", []), *found.headers()]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
