"""`Idempotency-Key` for money-moving requests: the same key replays the first answer; the same key with a
different request is refused. The key is taken in the request's own transaction, before the command
runs, so two concurrent requests with one key cannot both move money: the second waits for the first
and replays its answer. A refused request stores nothing, so it can be retried with the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import asyncpg
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from .auth import Principal
from .problems import Problem

HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps({"method": method, "path": path, "body": body}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def require_key(key: str | None) -> str:
    if not key or not 1 <= len(key) <= 200:
        raise Problem(
            400,
            "Idempotency-Key required",
            "send an Idempotency-Key header (1 to 200 characters)",
            kind="idempotency-key-required",
            errors=[{"field": HEADER, "in": "header", "message": "required, 1 to 200 characters"}],
        )
    return key


async def begin(conn: asyncpg.Connection, principal: str, key: str, request_hash: str) -> Replay | None:
    """Take the key in the current transaction; the stored answer when it was used before."""
    taken = await conn.fetchval(
        """INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response)
           VALUES ($1, $2, $3, 0, 'null'::jsonb) ON CONFLICT DO NOTHING RETURNING true""",
        principal,
        key,
        request_hash,
    )
    if taken:
        return None
    row = await conn.fetchrow(
        "SELECT request_hash, status_code, response FROM idempotency_keys WHERE principal = $1 AND key = $2",
        principal,
        key,
    )
    if row["request_hash"] != request_hash:
        raise Problem.conflict(
            "this Idempotency-Key was used for a different request",
            kind="idempotency-key-reused",
        )
    return Replay(row["status_code"], row["response"])


async def remember(conn: asyncpg.Connection, principal: str, key: str, status_code: int, body: Any) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE principal = $1 AND key = $2",
        principal,
        key,
        status_code,
        body,
    )


async def take_all(conn: asyncpg.Connection, taken: Sequence[tuple[str, str, str]]) -> list[bool]:
    """Take many (principal, key, fingerprint) at once in the current transaction; for each, whether it was taken
    here. One that was not (used before, or held by a transaction in flight, which this waits for) is to go
    through `begin` in a transaction of its own, which replays or refuses it. The same key twice in `taken`:
    only the first is taken."""
    rows = await conn.fetch(
        """INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response)
           SELECT p, k, h, 0, 'null'::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS t(p, k, h)
           ON CONFLICT DO NOTHING RETURNING principal, key""",
        [principal for principal, _, _ in taken],
        [key for _, key, _ in taken],
        [fingerprint for _, _, fingerprint in taken],
    )
    fresh = {(r["principal"], r["key"]) for r in rows}
    outcome = []
    for principal, key, _ in taken:
        outcome.append((principal, key) in fresh)
        fresh.discard((principal, key))
    return outcome


async def remember_all(conn: asyncpg.Connection, answers: Sequence[tuple[str, str, int, Any]]) -> None:
    """Store the answers of (principal, key, status code, body) taken in this transaction."""
    if answers:
        await conn.execute(
            """UPDATE idempotency_keys i SET status_code = t.s, response = t.r::jsonb
               FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) AS t(p, k, s, r)
               WHERE i.principal = t.p AND i.key = t.k""",
            [principal for principal, _, _, _ in answers],
            [key for _, key, _, _ in answers],
            [status for _, _, status, _ in answers],
            [json.dumps(body) for _, _, _, body in answers],
        )


async def release_all(conn: asyncpg.Connection, keys: Sequence[tuple[str, str]]) -> None:
    """Give back keys taken in this transaction for requests that stored nothing (refused, or sent on alone)."""
    if keys:
        await conn.execute(
            """DELETE FROM idempotency_keys i USING unnest($1::text[], $2::text[]) AS t(p, k)
               WHERE i.principal = t.p AND i.key = t.k""",
            [principal for principal, _ in keys],
            [key for _, key in keys],
        )


@dataclass(frozen=True)
class IdempotencyKeys:
    """The `Idempotency-Key` records, on a unit of work's transaction: a key is taken before the command runs."""

    connection: asyncpg.Connection

    async def begin(self, principal: str, key: str, fingerprint: str) -> Replay | None:
        return await begin(self.connection, principal, key, fingerprint)

    async def remember(self, principal: str, key: str, status_code: int, answer: Any) -> None:
        await remember(self.connection, principal, key, status_code, answer)

    async def take_all(self, taken: Sequence[tuple[str, str, str]]) -> list[bool]:
        return await take_all(self.connection, taken)

    async def remember_all(self, answers: Sequence[tuple[str, str, int, Any]]) -> None:
        await remember_all(self.connection, answers)

    async def release_all(self, keys: Sequence[tuple[str, str]]) -> None:
        await release_all(self.connection, keys)


class KeyedUnitOfWork(Protocol):
    """A service's unit of work with its `idempotency_keys`."""

    idempotency_keys: IdempotencyKeys

    async def commit(self) -> None: ...


U = TypeVar("U", bound=KeyedUnitOfWork)


async def once(
    unit_of_work: Callable[[], AbstractAsyncContextManager[U]],
    caller: Principal,
    key: str,
    fingerprint: str,
    status_code: int,
    command: Callable[[U], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run `command` once per (caller, key): the key is taken in the command's own transaction before it runs, so
    a repeat, even one sent while the first still runs, replays the first answer (`Idempotent-Replayed: true`), and
    the key with a different request (`fingerprint`) is refused (409). A refused command stores neither its effect
    nor the key."""
    async with unit_of_work() as uow:
        replay = await uow.idempotency_keys.begin(caller.subject, key, fingerprint)
        if replay is not None:
            return JSONResponse(replay.body, status_code=replay.status_code, headers={"Idempotent-Replayed": "true"})
        answer = jsonable_encoder(await command(uow))
        await uow.idempotency_keys.remember(caller.subject, key, status_code, answer)
        await uow.commit()
    return JSONResponse(answer, status_code=status_code)
