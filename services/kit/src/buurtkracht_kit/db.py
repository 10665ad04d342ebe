"""Connection pool and the unit of work.

Invariant: a unit of work is one PostgreSQL transaction. The state it changes and the events it
records reach the database together at `commit()`, or not at all: leaving the block without
`commit()` rolls everything back. Only after the commit is the relay of this process woken to publish
the events (see `outbox`): nothing but the outbox insert is on the commit path.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from typing import Literal, Self

import asyncpg

from buurtkracht_contracts import Envelope, Event

from . import outbox, tracing

Isolation = Literal["read_committed", "repeatable_read", "serializable"]

logger = logging.getLogger(__name__)

# The database away for a moment (restarting, failing over, recovering, out of connections, a connection cut, a
# statement cancelled or timed out): the same work may succeed a moment later. Work cut off before its commit left
# nothing; work cut off in its commit may have committed, so it is repeated only where a repeat is recognised
# (an Idempotency-Key, the inbox).
UNAVAILABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin or crash shutdown, cannot connect now, query cancelled
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.InternalClientError,  # a connection the server shut down mid-operation (the pool drops it on release)
    ConnectionError,  # refused or reset while the pool connects
    TimeoutError,  # no connection from the pool, or the statement, in time
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(
    dsn: str, min_size: int = 2, max_size: int = 10, command_timeout: float = 30.0, wait_seconds: float = 0.0
) -> asyncpg.Pool:
    """The pool; while the database is away (`UNAVAILABLE`), tried again for up to `wait_seconds`, so a process
    started during a restart or failover waits for it instead of exiting into a crash loop."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.5
    while True:
        try:
            return await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=command_timeout
            )
        except UNAVAILABLE as error:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("the database does not answer (%r); trying again in %.1f s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class UnitOfWork:
    """`async with UnitOfWork(pool, source) as uow:` ... `uow.record(*events)` ... `await uow.commit()`.

    A service's own unit of work is a subclass that hands its commands repositories on the transaction's
    connection (`uow.rounds`, `uow.ledger`, ...) from `bind`; the service builds it (`Service.unit_of_work`)
    for HTTP requests, event handlers and background work alike.
    """

    def __init__(
        self, pool: asyncpg.Pool, source: str, isolation: Isolation = "read_committed", acquire_timeout: float = 10.0
    ) -> None:
        self._pool = pool
        self._source = source
        self._isolation = isolation
        self._envelopes: list[Envelope] = []
        self._traceparents: list[str | None] = []  # of the span that recorded each event, while tracing
        self._committed = False
        self._acquire_timeout = acquire_timeout
        self.connection: asyncpg.Connection

    async def __aenter__(self) -> Self:
        self.connection = await self._pool.acquire(timeout=self._acquire_timeout)
        try:
            self._transaction = self.connection.transaction(isolation=self._isolation)
            await self._transaction.start()
        except BaseException:  # cancelled or failed before the block: the connection goes back
            await self._pool.release(self.connection)
            raise
        self.bind(self.connection)
        return self

    def bind(self, connection: asyncpg.Connection) -> None:
        """Make the repositories of this unit of work on `connection` (the transaction's); none here."""

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        """Roll back unless committed. When the block ends in an error and the rollback fails too (a commit
        cancelled at shutdown leaves the transaction unusable), the block's own error goes on — above all a
        cancellation, which a loop catching `Exception` would otherwise take for a failed round and go on with;
        the pool then resets or discards the connection."""
        try:
            if not self._committed:
                try:
                    await self._transaction.rollback()
                except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
                    if exc_type is None:
                        raise
        finally:
            await self._pool.release(self.connection)

    def record(self, *events: Event) -> list[Envelope]:
        """Queue events to be published if, and only if, this unit of work commits."""
        envelopes = [Envelope.wrap(event, self._source) for event in events]
        self._envelopes += envelopes
        if tracing.enabled():
            self._traceparents += [tracing.current_traceparent()] * len(envelopes)
        return envelopes

    def record_all(self, events: Iterable[Event]) -> list[Envelope]:
        return self.record(*events)

    async def commit(self) -> None:
        """Write the recorded events to the outbox and commit; then wake this process's relay to publish them."""
        if self._envelopes:
            await outbox.add(self.connection, self._envelopes, self._traceparents or None)
        await self._transaction.commit()
        self._committed = True
        if self._envelopes:
            outbox.wake_relays()
