"""HTTP API of the vouchers service, under its own prefixes: `/api/v1/rounds`, `/api/v1/initiative-budgets`,
`/api/v1/expense-claims`, `/api/v1/payouts`. Routes translate requests into commands and answers; money-moving
POSTs take an `Idempotency-Key` (the same key replays the first answer)."""

from fastapi import APIRouter

from . import awards, pledges, rounds, spending, wallets

router = APIRouter(prefix="/api/v1")
for area in (rounds, wallets, pledges, awards, spending):
    router.include_router(area.router)
