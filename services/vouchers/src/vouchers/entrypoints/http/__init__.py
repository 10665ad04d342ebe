"""HTTP API of the vouchers service, under its own prefixes: `/api/v1/rounds`, `/api/v1/areas` (steering
groups), `/api/v1/initiative-budgets`, `/api/v1/expense-claims`, `/api/v1/payouts`, `/api/v1/me` (what the service
holds about the caller). Routes translate requests into commands and answers. Lists are pages (`offset`, `limit`,
`total`), newest first, each showing only what the caller may see.

Five requests require an `Idempotency-Key` (the same key replays the first answer; see `common.money_moving`):
opening a round, pledging, proposing an award, claiming an expense and deciding a claim. Each but the decision
creates something new every time it runs (a funded round, a pledge, a proposal, a claim), so a retry without the
key would do it twice; a retried decision replays the decision instead of answering that the claim was decided.
The other commands are safe to repeat without one, because a repeat finds the effect of the first in the state:
closing a round again is refused (409 `closed`); issuing wallets again issues none to a resident who has one (a
resident has one wallet per round) and claiming one's wallet again is refused (409); confirming a payout again with
the same bank reference changes nothing and answers the settled payout; casting the same vote again leaves the
ballot as it is (and after the decision is refused with the decision as `current_status`); withdrawing a pledge
again is refused (409 `withdrawn`); registering the same steering group again changes nothing.

The bank round trip needs no key either: giving the same bank account again changes nothing; cancelling a payout
again is refused (409 `cancelled`), and so is closing a closed batch (409 `closed`); a bank statement uploaded again
reads every line as read before (`already_read`) and changes nothing, because each line is recorded once with what it
did."""

from fastapi import APIRouter

from . import awards, ballots, equal_shares, me, payouts, pledges, rounds, spending, steering, wallets

router = APIRouter(prefix="/api/v1")
for area in (rounds, wallets, pledges, steering, awards, spending, payouts, me, ballots, equal_shares):
    router.include_router(area.router)
