"""`python -m vouchers.ledger_check`: verify every ledger invariant of every round; exit 1 on any violation."""

import asyncio
import sys

from buurtkracht_kit.db import create_pool

from .adapters.ledger import Ledger
from .settings import VouchersSettings


async def main() -> int:
    pool = await create_pool(VouchersSettings().database_url, 1, 2)
    try:
        async with pool.acquire() as conn:
            problems = await Ledger(conn).check()
            rounds = await conn.fetchval("SELECT count(*) FROM rounds")
            entries = await conn.fetchval("SELECT count(*) FROM journal_entries")
    finally:
        await pool.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"ledger check: {rounds} rounds, {entries} journal entries, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
