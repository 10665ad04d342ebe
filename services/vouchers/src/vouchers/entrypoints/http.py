"""HTTP API of the vouchers service, under its own prefixes: `/api/v1/rounds`, `/api/v1/initiative-budgets`,
`/api/v1/expense-claims`, `/api/v1/payouts`. Routes translate requests into commands; money-moving POSTs
take an `Idempotency-Key` (the same key replays the first answer)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from buurtkracht_kit import idempotency
from buurtkracht_kit.auth import Caller, Principal, Role
from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.problems import Problem

from ..adapters.ledger import Ledger
from ..adapters.repository import Claim, Payout, Pledge, Repository
from ..domain.ledger import Account, Kind
from ..domain.model import Budget, Conflict, DomainError, InvalidInput, Mechanism, NotAllowed, NotFound, Round
from ..service import commands

router = APIRouter(prefix="/api/v1")
AreaCode = Annotated[str, Field(pattern=r"^(GM\d{4}|WK\d{6}|BU\d{8})$", examples=["WK036300"])]
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", description="Required: replays the first answer")
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewRound(Strict):
    area_code: AreaCode
    name: str = Field(min_length=1, max_length=200)
    total_budget_cents: StrictInt = Field(gt=0)
    opens_at: datetime
    closes_at: datetime
    mechanism: Mechanism
    voucher_amount_cents: StrictInt | None = Field(None, gt=0, description="Per resident; pledge rounds only")
    allow_wallet_claims: bool = Field(False, description="Pledge rounds: residents of the area may claim a wallet")
    committee_quorum: StrictInt | None = Field(None, gt=0, description="Committee rounds: votes needed")


class RoundOut(BaseModel):
    id: uuid.UUID
    area_code: str
    name: str
    mechanism: Mechanism
    status: str
    total_budget_cents: int
    voucher_amount_cents: int | None
    allow_wallet_claims: bool
    committee_quorum: int | None
    opens_at: datetime
    closes_at: datetime
    totals: dict[str, int] = Field(description="Live: cents per kind of account (pool, wallet, pledged, budget, ...)")


class Issuance(Strict):
    resident_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=2_000_000)


class IssuanceOut(BaseModel):
    issued: int
    already_had_a_wallet: int
    issued_cents: int


class NewPledge(Strict):
    initiative_id: uuid.UUID
    amount_cents: StrictInt = Field(gt=0)


class PledgeOut(BaseModel):
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
    def of(cls, pledge: Pledge, **live: Any) -> PledgeOut:
        return cls(
            id=pledge.id,
            round_id=pledge.round_id,
            initiative_id=pledge.initiative_id,
            amount_cents=pledge.amount_cents,
            requested_cents=pledge.requested_cents,
            status=pledge.status,
            created_at=pledge.created_at,
            **live,
        )


class WalletOut(BaseModel):
    round_id: uuid.UUID
    balance_cents: int
    pledges: list[PledgeOut]


class VoteIn(Strict):
    member_id: str = Field(min_length=1, max_length=100)
    vote: Literal["for", "against", "abstain"]


class AwardDecision(Strict):
    initiative_id: uuid.UUID
    amount_cents: StrictInt = Field(gt=0)
    votes: list[VoteIn] = Field(min_length=1, max_length=100)


class AwardDecisionOut(BaseModel):
    decision_id: uuid.UUID
    initiative_id: uuid.UUID
    awarded: bool


class BudgetOut(BaseModel):
    initiative_id: uuid.UUID
    round_id: uuid.UUID | None
    status: str
    awarded_cents: int
    held_cents: int = Field(description="Claimed, awaiting a decision")
    payable_cents: int = Field(description="Approved, awaiting payout")
    paid_cents: int
    returned_cents: int
    left_cents: int

    @classmethod
    def of(cls, initiative_id: uuid.UUID, round_id: uuid.UUID | None, status: str, budget: Budget) -> BudgetOut:
        return cls(
            initiative_id=initiative_id,
            round_id=round_id,
            status=status,
            awarded_cents=budget.awarded_cents,
            held_cents=budget.held_cents,
            payable_cents=budget.payable_cents,
            paid_cents=budget.paid_cents,
            returned_cents=budget.returned_cents,
            left_cents=budget.left_cents,
        )


class NewClaim(Strict):
    initiative_id: uuid.UUID
    supplier: str = Field(min_length=1, max_length=200)
    amount_cents: StrictInt = Field(gt=0)
    invoice_reference: str = Field(min_length=1, max_length=100)


class ClaimOut(BaseModel):
    id: uuid.UUID
    initiative_id: uuid.UUID
    supplier: str
    amount_cents: int
    invoice_reference: str
    status: str
    decided_by: str | None
    decision_reason: str | None
    payout_id: uuid.UUID | None = None
    payout_reference: str | None = None

    @classmethod
    def of(cls, claim: Claim, payout: Payout | None = None) -> ClaimOut:
        return cls(
            id=claim.id,
            initiative_id=claim.initiative_id,
            supplier=claim.supplier,
            amount_cents=claim.amount_cents,
            invoice_reference=claim.invoice_reference,
            status=claim.status,
            decided_by=claim.decided_by,
            decision_reason=claim.decision_reason,
            payout_id=payout.id if payout else None,
            payout_reference=payout.reference if payout else None,
        )


class ClaimDecision(Strict):
    decision: Literal["approve", "decline"]
    reason: str | None = Field(None, max_length=2000, description="Required to decline")


class PayoutConfirmation(Strict):
    bank_reference: str = Field(min_length=1, max_length=100)
    paid_at: datetime


class PayoutOut(BaseModel):
    id: uuid.UUID
    reference: str
    claim_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    status: str
    bank_reference: str | None
    settled_at: datetime | None

    @classmethod
    def of(cls, payout: Payout) -> PayoutOut:
        return cls(
            id=payout.id,
            reference=payout.reference,
            claim_id=payout.claim_id,
            initiative_id=payout.initiative_id,
            amount_cents=payout.amount_cents,
            status=payout.status,
            bank_reference=payout.bank_reference,
            settled_at=payout.settled_at,
        )


class LedgerOut(BaseModel):
    round_id: uuid.UUID
    balances: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    next_after: int | None
    problems: list[str] = Field(description="Violated ledger invariants; empty when the books are right")


def problem_for(error: DomainError) -> Problem:
    if isinstance(error, NotFound):
        return Problem.not_found(str(error))
    if isinstance(error, NotAllowed):
        return Problem.forbidden(str(error))
    if isinstance(error, InvalidInput):
        return Problem.invalid(error.field or "body", str(error))
    if isinstance(error, Conflict):
        kind = "insufficient-funds" if error.current_status == "insufficient_funds" else "conflict"
        extensions = {"current_status": error.current_status} if error.current_status else {}
        return Problem.conflict(str(error), kind=kind, **extensions)
    return Problem.conflict(str(error))


def _now() -> datetime:
    return datetime.now(UTC)


def _uow(request: Request) -> UnitOfWork:
    return request.app.state.service.unit_of_work()


async def _money_moving(
    request: Request,
    caller: Principal,
    key: str | None,
    body: Any,
    status_code: int,
    command: Callable[[UnitOfWork], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run a money-moving command once per Idempotency-Key; a repeat replays the first answer."""
    key = idempotency.require_key(key)
    fingerprint = idempotency.fingerprint(request.method, request.url.path, jsonable_encoder(body))
    async with _uow(request) as uow:
        replay = await idempotency.begin(uow.connection, caller.subject, key, fingerprint)
        if replay is not None:
            return JSONResponse(replay.body, status_code=replay.status_code, headers={"Idempotent-Replayed": "true"})
        answer = jsonable_encoder(await command(uow))
        await idempotency.remember(uow.connection, caller.subject, key, status_code, answer)
        await uow.commit()
    return JSONResponse(answer, status_code=status_code)


async def _round_out(ledger: Ledger, round_: Round, status: str | None = None) -> RoundOut:
    totals = {
        kind.value: cents for kind, cents in (await ledger.totals(round_.id)).items() if kind is not Kind.MUNICIPALITY
    }
    return RoundOut(
        id=round_.id,
        area_code=round_.area_code,
        name=round_.name,
        mechanism=round_.mechanism,
        status=status or round_.status.value,
        total_budget_cents=round_.total_budget_cents,
        voucher_amount_cents=round_.voucher_amount_cents,
        allow_wallet_claims=round_.allow_wallet_claims,
        committee_quorum=round_.committee_quorum,
        opens_at=round_.opens_at,
        closes_at=round_.closes_at,
        totals=totals,
    )


# -- rounds ----------------------------------------------------------------------------------


@router.post("/rounds", status_code=201, tags=["rounds"], summary="An official opens a budget round for an area")
async def open_round(body: NewRound, caller: Caller, request: Request) -> RoundOut:
    async with _uow(request) as uow:
        round_ = await commands.open_round(uow, caller, **body.model_dump())
        out = await _round_out(Ledger(uow.connection), round_)
        await uow.commit()
    return out


@router.get("/rounds/{round_id}", tags=["rounds"], summary="A round with its live totals")
async def get_round(round_id: uuid.UUID, caller: Caller, request: Request) -> RoundOut:
    async with request.app.state.pool.acquire() as conn:
        round_ = await Repository(conn).round(round_id)
        if round_ is None:
            raise Problem.not_found(f"round {round_id}")
        return await _round_out(Ledger(conn), round_)


@router.post("/rounds/{round_id}/close", tags=["rounds"], summary="Close the round now (it also closes at closes_at)")
async def close_round(round_id: uuid.UUID, caller: Caller, request: Request) -> RoundOut:
    async with _uow(request) as uow:
        await commands.close_round(uow, caller, round_id, _now())
        round_ = await Repository(uow.connection).round(round_id)
        out = await _round_out(Ledger(uow.connection), round_, "closed")  # type: ignore[arg-type]
        await uow.commit()
    return out


@router.get("/rounds/{round_id}/ledger", tags=["rounds"], summary="The round's journal and balances (officials)")
async def round_ledger(
    round_id: uuid.UUID,
    caller: Caller,
    request: Request,
    after: Annotated[int, Query(ge=0, description="Entries after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> LedgerOut:
    async with request.app.state.pool.acquire() as conn:
        round_ = await Repository(conn).round(round_id)
        if round_ is None:
            raise Problem.not_found(f"round {round_id}")
        if not (caller.has(Role.OFFICIAL) and caller.acts_for(round_.area_code)):
            raise Problem.forbidden(f"only officials responsible for {round_.area_code} see this ledger")
        ledger = Ledger(conn)
        entries = await ledger.journal(round_id, limit, after)
        balances = [
            {"account": b.kind.value + (f":{b.owner}" if b.owner else ""), "balance_cents": b.balance_cents}
            for b in await ledger.balances(round_id)
        ]
        return LedgerOut(
            round_id=round_id,
            balances=balances,
            entries=[
                {
                    "id": e["id"],
                    "kind": e["kind"],
                    "reference": e["reference"],
                    "at": e["created_at"],
                    "lines": e["lines"],
                }
                for e in entries
            ],
            next_after=entries[-1]["id"] if len(entries) == limit else None,
            problems=await ledger.check(round_id),
        )


# -- wallets ---------------------------------------------------------------------------------


async def _resident_ids(request: Request) -> list[str]:
    """A JSON body `{"resident_ids": [...]}`, or a CSV upload (`text/csv`, one id a line, optional header)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    raw = await request.body()
    if content_type == "text/csv":
        try:
            rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
        except (UnicodeDecodeError, csv.Error) as error:
            raise Problem.invalid("body", f"not a UTF-8 CSV file: {error}", status=400) from error
        ids = [row[0].strip() for row in rows if row and row[0].strip()]
        if ids and ids[0] == "resident_id":
            ids = ids[1:]
        return ids
    try:
        return Issuance.model_validate_json(raw).resident_ids
    except ValidationError as error:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in error.errors()
        ]
        malformed = any(e["type"] == "json_invalid" for e in error.errors())
        raise Problem(
            400 if malformed else 422, "Invalid input", problems[0]["message"], kind="invalid-input", errors=problems
        ) from error


@router.post(
    "/rounds/{round_id}/wallet-issuances",
    status_code=201,
    tags=["wallets"],
    summary="Issue wallets in bulk (JSON {resident_ids: [...]} or a text/csv upload)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": Issuance.model_json_schema()},
                "text/csv": {"schema": {"type": "string"}, "example": "resident_id\nr-1\nr-2\n"},
            }
        }
    },
)
async def issue_wallets(round_id: uuid.UUID, caller: Caller, request: Request) -> IssuanceOut:
    resident_ids = await _resident_ids(request)
    async with _uow(request) as uow:
        issuance = await commands.issue_wallets(uow, caller, round_id, resident_ids, _now())
        await uow.commit()
    return IssuanceOut(
        issued=issuance.issued, already_had_a_wallet=issuance.already_had_a_wallet, issued_cents=issuance.issued_cents
    )


@router.post(
    "/rounds/{round_id}/wallets/me",
    status_code=201,
    tags=["wallets"],
    summary="A resident claims their own wallet, where the round allows it",
)
async def claim_wallet(round_id: uuid.UUID, caller: Caller, request: Request) -> WalletOut:
    async with _uow(request) as uow:
        amount = await commands.claim_wallet(uow, caller, round_id, _now())
        await uow.commit()
    return WalletOut(round_id=round_id, balance_cents=amount, pledges=[])


@router.get("/rounds/{round_id}/wallets/me", tags=["wallets"], summary="Your wallet and pledges in a round")
async def my_wallet(round_id: uuid.UUID, caller: Caller, request: Request) -> WalletOut:
    async with request.app.state.pool.acquire() as conn:
        balance = await Ledger(conn).balance(round_id, Account.wallet(caller.subject))
        if balance is None:
            raise Problem.not_found(f"your wallet in round {round_id}")
        pledges = await Repository(conn).pledges_of(round_id, caller.subject)
    return WalletOut(round_id=round_id, balance_cents=balance, pledges=[PledgeOut.of(p) for p in pledges])


# -- pledges ---------------------------------------------------------------------------------


@router.post(
    "/rounds/{round_id}/pledges",
    status_code=201,
    tags=["pledges"],
    summary="Pledge vouchers to an approved initiative (Idempotency-Key required)",
)
async def pledge(
    round_id: uuid.UUID, body: NewPledge, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> PledgeOut:
    async def command(uow: UnitOfWork) -> PledgeOut:
        result = await commands.pledge(uow, caller, round_id, body.initiative_id, body.amount_cents, _now())
        return PledgeOut.of(
            result.pledge,
            wallet_balance_cents=result.wallet_balance_cents,
            pledged_to_initiative_cents=result.pledged_to_initiative_cents,
            initiative_awarded=result.awarded,
        )

    return await _money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]


@router.delete(
    "/rounds/{round_id}/pledges/{pledge_id}",
    tags=["pledges"],
    summary="Withdraw your pledge while the round is open and the initiative not awarded",
)
async def withdraw_pledge(round_id: uuid.UUID, pledge_id: uuid.UUID, caller: Caller, request: Request) -> PledgeOut:
    async with _uow(request) as uow:
        result = await commands.withdraw_pledge(uow, caller, round_id, pledge_id, _now())
        await uow.commit()
    return PledgeOut.of(
        result.pledge,
        wallet_balance_cents=result.wallet_balance_cents,
        pledged_to_initiative_cents=result.pledged_to_initiative_cents,
    )


# -- committee -------------------------------------------------------------------------------


@router.post(
    "/rounds/{round_id}/awards",
    status_code=201,
    tags=["awards"],
    summary="The steering group records an award decision, with who voted how (Idempotency-Key required)",
)
async def decide_award(
    round_id: uuid.UUID, body: AwardDecision, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> AwardDecisionOut:
    async def command(uow: UnitOfWork) -> AwardDecisionOut:
        decision_id, awarded = await commands.decide_award(
            uow,
            caller,
            round_id,
            body.initiative_id,
            body.amount_cents,
            [(v.member_id, v.vote) for v in body.votes],
            _now(),
        )
        return AwardDecisionOut(decision_id=decision_id, initiative_id=body.initiative_id, awarded=awarded)

    return await _money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]


# -- spending --------------------------------------------------------------------------------


@router.get(
    "/initiative-budgets/{initiative_id}",
    tags=["spending"],
    summary="An initiative's budget: awarded, held, payable, paid, returned, left",
)
async def initiative_budget(initiative_id: uuid.UUID, caller: Caller, request: Request) -> BudgetOut:
    async with request.app.state.pool.acquire() as conn:
        initiative = await Repository(conn).initiative(initiative_id)
        if initiative is None:
            raise Problem.not_found(f"initiative {initiative_id}")
        budget = await commands.budget(Ledger(conn), initiative)
    return BudgetOut.of(initiative_id, initiative.round_id, initiative.status.value, budget)


@router.post(
    "/expense-claims",
    status_code=201,
    tags=["spending"],
    summary="An initiator claims an expense within the budget left (Idempotency-Key required)",
)
async def claim_expense(
    body: NewClaim, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> ClaimOut:
    async def command(uow: UnitOfWork) -> ClaimOut:
        claim, _ = await commands.claim_expense(
            uow, caller, body.initiative_id, body.supplier, body.amount_cents, body.invoice_reference, _now()
        )
        return ClaimOut.of(claim)

    return await _money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]


@router.post(
    "/expense-claims/{claim_id}/decision",
    tags=["spending"],
    summary="An official or the steering group approves (payout requested) or declines a claim",
)
async def decide_expense(
    claim_id: uuid.UUID, body: ClaimDecision, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> ClaimOut:
    async def command(uow: UnitOfWork) -> ClaimOut:
        claim, payout = await commands.decide_expense(
            uow, caller, claim_id, body.decision == "approve", body.reason, _now()
        )
        return ClaimOut.of(claim, payout)

    return await _money_moving(request, caller, idempotency_key, body, 200, command)  # type: ignore[return-value]


@router.post(
    "/payouts/{payout_id}/confirmation",
    tags=["spending"],
    summary="The finance integration confirms a payout by its reference; settles it",
)
async def confirm_payout(payout_id: uuid.UUID, body: PayoutConfirmation, caller: Caller, request: Request) -> PayoutOut:
    async with _uow(request) as uow:
        payout = await commands.confirm_payout(uow, caller, payout_id, body.bank_reference, body.paid_at)
        await uow.commit()
    return PayoutOut.of(payout)
