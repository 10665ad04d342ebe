"""`python -m vouchers.ledger_check`: verify every ledger invariant of every round; exit 1 on any violation."""

import asyncio
import sys

from buurtkracht_kit.db import create_pool

from .adapters.unit_of_work import VouchersUnitOfWork
from .settings import VouchersSettings


async def main() -> int:
    settings = VouchersSettings()
    pool = await create_pool(settings.database_url, 1, 2)
    try:
        async with VouchersUnitOfWork(pool, settings.event_source) as uow:
            problems = await uow.ledger.check()
            rounds, entries = await uow.ledger.extent()
    finally:
        await pool.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"ledger check: {rounds} rounds, {entries} journal entries, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
