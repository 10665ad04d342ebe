"""Pledges over HTTP: a resident pledges vouchers from their wallet, or withdraws a pledge. Pledges are made by
group commit: those that arrive while one batch is being written are decided and written together in the next."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from prometheus_client import Histogram
from pydantic import Field, StrictInt

from buurtkracht_kit import idempotency
from buurtkracht_kit.auth import Caller, Principal
from buurtkracht_kit.group_commit import GroupCommit
from buurtkracht_kit.inputs import Strict
from buurtkracht_kit.paging import MAX_CENTS

from ...adapters.unit_of_work import VouchersUnitOfWork
from ...service import pledges
from ...service.pledges import PledgeRequest, PledgeResult
from .common import Answer, IdempotencyKey, now, unit_of_work

logger = logging.getLogger(__name__)

router = APIRouter(tags=["pledges"])


class NewPledge(Strict):
    initiative_id: uuid.UUID
    amount_cents: StrictInt = Field(gt=0, le=MAX_CENTS)


class PledgeOut(Answer):
    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    requested_cents: int
    status: str
    created_at: datetime
    wallet_balance_cents: int | None = None
    pledged_to_initiative_cents: int | None = None
    initiative_awarded: bool | None = None

    @classmethod
    def after(cls, result: PledgeResult, awarded: bool | None = None) -> PledgeOut:
        """The pledge with the balances its command left."""
        return cls.model_validate(result.pledge, from_attributes=True).model_copy(
            update={
                "wallet_balance_cents": result.wallet_balance_cents,
                "pledged_to_initiative_cents": result.pledged_to_initiative_cents,
                "initiative_awarded": awarded,
            }
        )


@router.post(
    "/rounds/{round_id}/pledges",
    status_code=201,
    summary="Pledge vouchers to an approved initiative (Idempotency-Key required)",
)
async def pledge(
    round_id: uuid.UUID, body: NewPledge, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> PledgeOut:
    key = idempotency.require_key(idempotency_key)
    fingerprint = idempotency.fingerprint(request.method, request.url.path, jsonable_encoder(body))
    return await _desk(request).submit(_Call(caller, key, fingerprint, round_id, body))  # type: ignore[return-value]


@dataclass(frozen=True)
class _Call:
    caller: Principal
    key: str
    fingerprint: str
    round_id: uuid.UUID
    body: NewPledge

    async def command(self, uow: VouchersUnitOfWork) -> PledgeOut:
        """The pledge made alone, as `once` runs it."""
        result = await pledges.pledge(
            uow, self.caller, self.round_id, self.body.initiative_id, self.body.amount_cents, now()
        )
        return PledgeOut.after(result, result.awarded)


def _desk(request: Request) -> GroupCommit[_Call, JSONResponse]:
    """This process's pledge desk: the pledges that arrive while a batch is being written form the next batch."""
    state = request.app.state
    if getattr(state, "pledge_desk", None) is None:
        service = state.service
        sizes = Histogram(
            "buurtkracht_pledge_batch_size",
            "Pledges decided together in one transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=service.metrics.registry,
        )
        state.pledge_desk = GroupCommit(
            partial(_pledge_together, service.unit_of_work),
            max_batch=service.settings.pledge_batch_max,
            observe=sizes.observe,
        )
    return state.pledge_desk


async def _pledge_together(
    unit_of_work: Callable[[], VouchersUnitOfWork], calls: Sequence[_Call]
) -> list[JSONResponse | BaseException]:
    """Take the calls' keys and decide their pledges in one transaction; answer each only after it commits. A call
    whose key was taken before (a repeat, or a request in flight) and a pledge to be made alone run afterwards in a
    transaction of their own, as a single pledge would; so does every call when the batch fails as a whole, so one
    bad request never fails its neighbours."""
    outcomes: list[JSONResponse | BaseException | None] = [None] * len(calls)
    try:
        async with unit_of_work() as uow:
            taken = await uow.idempotency_keys.take_all([(c.caller.subject, c.key, c.fingerprint) for c in calls])
            fresh = [i for i, took in enumerate(taken) if took]
            decided = await pledges.pledge_together(
                uow,
                [
                    PledgeRequest(
                        calls[i].caller, calls[i].round_id, calls[i].body.initiative_id, calls[i].body.amount_cents
                    )
                    for i in fresh
                ],
                now(),
            )
            answers, released = [], []
            for i, outcome in zip(fresh, decided, strict=True):
                call = calls[i]
                if isinstance(outcome, PledgeResult):
                    answer = jsonable_encoder(PledgeOut.after(outcome, outcome.awarded))
                    answers.append((call.caller.subject, call.key, 201, answer))
                    outcomes[i] = JSONResponse(answer, status_code=201)
                else:
                    released.append((call.caller.subject, call.key))
                    outcomes[i] = outcome
            await uow.idempotency_keys.remember_all(answers)
            await uow.idempotency_keys.release_all(released)
            await uow.commit()
    except Exception:
        logger.warning("a batch of %d pledges failed; each is made alone", len(calls), exc_info=True)
        outcomes = [None] * len(calls)
    for i, call in enumerate(calls):
        if outcomes[i] is None:
            try:
                outcomes[i] = await idempotency.once(
                    unit_of_work, call.caller, call.key, call.fingerprint, 201, call.command
                )
            except Exception as error:  # its own answer: a refusal, or the error a single pledge would have met
                outcomes[i] = error
    return outcomes  # type: ignore[return-value]


@router.delete(
    "/rounds/{round_id}/pledges/{pledge_id}",
    summary="Withdraw your pledge while the round is open and the initiative not awarded",
)
async def withdraw_pledge(round_id: uuid.UUID, pledge_id: uuid.UUID, caller: Caller, request: Request) -> PledgeOut:
    async with unit_of_work(request) as uow:
        result = await pledges.withdraw_pledge(uow, caller, round_id, pledge_id, now())
        await uow.commit()
    return PledgeOut.after(result)
