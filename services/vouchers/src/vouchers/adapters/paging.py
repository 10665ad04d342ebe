"""Pages of a list, for the queries that list things: the rows of one page and how many rows match in all."""

from __future__ import annotations

from typing import Any

import asyncpg


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
