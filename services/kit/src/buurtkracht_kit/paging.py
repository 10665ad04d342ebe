"""Paged lists, the same in every API: `offset` and `limit` query parameters bounded where they come in, so a
huge value is invalid input (422 naming the parameter), never a server error from the database; and one query
for a page with the number of rows that match in all."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import Query

MAX_INTEGER = 2**31 - 1  # the most a PostgreSQL integer holds; more than any list has items to skip
MAX_CENTS = 2**63 - 1  # the most a PostgreSQL bigint holds

Offset = Annotated[int, Query(ge=0, le=MAX_INTEGER, description="How many items to skip")]
Limit = Annotated[int, Query(ge=1, le=100, description="How many items at most")]


async def fetch_page(
    conn: asyncpg.Connection, columns: str, source: str, order_by: str, args: list[Any], limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    """`SELECT columns FROM source ORDER BY order_by` (`source` names its parameters $1.. for `args`), one page."""
    rows = await conn.fetch(
        f"SELECT {columns}, count(*) OVER () AS total FROM {source} ORDER BY {order_by} "
        f"LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args,
        limit,
        offset,
    )
    if rows:
        return list(rows), rows[0]["total"]
    return [], await conn.fetchval(f"SELECT count(*) FROM {source}", *args)
