"""Equal Shares rounds at their close, and their outcome: the close seals the ballots as numbered votes, lets the
Method of Equal Shares decide (`domain.equal_shares`, computed in a worker thread so the service keeps answering),
books each funded initiative as an award from the round's pool — one journal entry each, referenced by round and
initiative, so nothing is booked twice — and stores the outcome with its explanation, all in the close's own
transaction: a close that fails halfway leaves nothing of it.

The outcome and the round's Pabulib file are public once the round closed (any signed-in caller); the Pabulib check
computes any approval instance in the same way and changes nothing."""

from __future__ import annotations

import asyncio
import uuid

from buurtkracht_contracts.refusals import Conflict

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain import equal_shares, pabulib
from ..domain.equal_shares import Outcome
from ..domain.rounds import Mechanism, Round, RoundStatus
from .access import found
from .awards import lapse


async def decide(uow: VouchersUnitOfWork, round_: Round) -> Outcome:
    """At the close of an Equal Shares round (held exclusively): decide, book the awards and store the outcome."""
    candidates = await uow.equal_shares.candidates(round_)  # their rows locked, after the round
    votes = await uow.equal_shares.seal_votes(round_.id, [c.initiative_id for c in candidates])
    outcome = await asyncio.to_thread(equal_shares.compute, round_.total_budget_cents, candidates, votes)
    funded = [result.initiative_id for result in outcome.funded]
    initiatives = await uow.initiatives.get_all(funded, for_update=True)
    entries = [(round_.id, initiatives[initiative_id].award_by_equal_shares(round_)) for initiative_id in funded]
    if entries:
        await uow.ledger.post_together(entries)
    for initiative_id in funded:
        await uow.initiatives.save(initiatives[initiative_id])
    await lapse(uow, initiative_ids=funded)
    uow.collect(*(initiatives[initiative_id] for initiative_id in funded))
    await uow.equal_shares.add(round_.id, outcome)
    await uow.equal_shares.add_results(round_.id, outcome)
    return outcome


async def _closed_equal_shares_round(uow: VouchersUnitOfWork, round_id: uuid.UUID) -> Round:
    round_ = found(await uow.rounds.get(round_id), f"round {round_id}")
    round_.require_mechanism(Mechanism.EQUAL_SHARES, "read an Equal Shares outcome")
    if round_.status is not RoundStatus.CLOSED:
        raise Conflict("the outcome is decided when the round closes", "open")
    return round_


async def outcome_of(uow: VouchersUnitOfWork, round_id: uuid.UUID) -> tuple[Round, Outcome]:
    round_ = await _closed_equal_shares_round(uow, round_id)
    return round_, found(await uow.equal_shares.outcome(round_id), f"the outcome of round {round_id}")


async def pabulib_of(uow: VouchersUnitOfWork, round_id: uuid.UUID) -> str:
    """The closed round as a Pabulib file: its candidates, its counted ballots under voter numbers, its outcome."""
    round_, outcome = await outcome_of(uow, round_id)
    return pabulib.write(
        round_id=round_.id,
        name=round_.name,
        area_code=round_.area_code,
        opens_at=round_.opens_at.date().isoformat(),
        closes_at=round_.closes_at.date().isoformat(),
        outcome=outcome,
        votes=await uow.equal_shares.votes(round_id),
    )


async def check_pabulib(text: str) -> tuple[pabulib.PabulibInstance, Outcome]:
    """The Equal Shares outcome of a Pabulib approval instance (amounts in whole units of its currency, so the Add1
    step is one unit); nothing is stored."""
    instance = await asyncio.to_thread(pabulib.read, text)
    outcome = await asyncio.to_thread(equal_shares.compute, instance.budget, instance.candidates, instance.ballots, 1)
    return instance, outcome
