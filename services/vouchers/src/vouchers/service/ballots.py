"""Casting a ballot in an Equal Shares round: a resident of the round's area approves approved initiatives of that
area, and may change it until the close. The command holds the round (shared, so a close waits for it and closes
with it counted, or it finds the round closed), then the resident's ballot; the ballot and its BallotCast are
written in one transaction (the outbox), so every change is published exactly once."""

from __future__ import annotations

import uuid
from datetime import datetime

from buurtkracht_contracts.refusals import NotFound
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain import ballots
from ..domain.ballots import Ballot
from .access import found
from .locking import lock


async def cast_ballot(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, initiative_ids: list[uuid.UUID], now: datetime
) -> Ballot:
    """The caller's ballot after this one: the new one, or the one before when it approves the same."""
    round_ = found((await lock(uow, round_id=round_id)).round, f"round {round_id}")
    lives_in_area = actor.has(Role.RESIDENT) and actor.lives_in(round_.area_code)
    round_.ballot_castable(lives_in_area, now)  # before anything of the caller is read or locked
    previous = await uow.ballots.of(round_id, actor.subject, for_update=True)
    named = await uow.initiatives.get_all(list(initiative_ids))
    ballot = ballots.cast(round_, actor.subject, lives_in_area, initiative_ids, named, previous, now)
    if ballot is None:
        assert previous is not None
        return previous
    await uow.ballots.save(ballot)
    uow.collect(round_)
    return ballot


async def ballot_of(uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID) -> Ballot:
    found(await uow.rounds.get(round_id), f"round {round_id}")
    ballot = await uow.ballots.of(round_id, actor.subject)
    if ballot is None:
        raise NotFound(f"your ballot in round {round_id}")
    return ballot
