"""`Idempotency-Key` for money-moving requests: the same key replays the first answer; the same key with a
different request is refused. The key is taken in the request's own transaction, before the command
runs, so two concurrent requests with one key cannot both move money: the second waits for the first
and replays its answer. A refused request stores nothing, so it can be retried with the same key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

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
