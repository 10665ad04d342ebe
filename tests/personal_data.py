"""What the erasure tests of every service read from its database: where a person's id still stands, found from
the catalogue (so a table added later is searched too), and the whole database as text, to see that applying an
erasure again changes nothing."""

from __future__ import annotations

from typing import Any

TEXT_COLUMNS = """
    SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c
    JOIN information_schema.tables t ON (t.table_schema, t.table_name) = (c.table_schema, c.table_name)
    WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
      AND (c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
           OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar', '_bpchar')))
    ORDER BY c.table_name, c.column_name"""


async def rows_naming(conn: Any, text: str) -> dict[str, int]:
    """`table.column` -> how many rows hold `text` anywhere in that column, for every column of every table that
    can hold text (text, varchar, char, JSON, text arrays); `conn` is an asyncpg connection or pool."""
    columns = await conn.fetch(TEXT_COLUMNS)
    assert len(columns) > 10, "the catalogue search finds the tables"
    found = {}
    for column in columns:
        table = f'"{column["table_schema"]}"."{column["table_name"]}"'
        query = f'SELECT count(*) FROM {table} WHERE strpos("{column["column_name"]}"::text, $1) > 0'
        if count := await conn.fetchval(query, text):
            found[f"{column['table_name']}.{column['column_name']}"] = count
    return found


async def snapshot(conn: Any) -> dict[str, list[str]]:
    """Every row of every table but the consumer's own bookkeeping (inbox, failures), as text, sorted."""
    tables = await conn.fetch(
        """SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
           AND table_name NOT IN ('inbox', 'consumer_failures') ORDER BY table_name"""
    )
    return {
        t["table_name"]: sorted(r["row"] for r in await conn.fetch(f'SELECT t::text AS row FROM "{t["table_name"]}" t'))
        for t in tables
    }
