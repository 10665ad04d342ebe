"""HTTP API of the vouchers service, under its own prefixes: `/api/v1/rounds`, `/api/v1/areas` (steering
groups), `/api/v1/initiative-budgets`, `/api/v1/expense-claims`, `/api/v1/payouts`. Routes translate requests into
commands and answers; money-moving POSTs take an `Idempotency-Key` (the same key replays the first answer). Lists
are pages (`offset`, `limit`, `total`), newest first, each showing only what the caller may see."""

from fastapi import APIRouter

from . import awards, pledges, rounds, spending, steering, wallets

router = APIRouter(prefix="/api/v1")
for area in (rounds, wallets, pledges, steering, awards, spending):
    router.include_router(area.router)
