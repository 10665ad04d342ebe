"""Payouts through the bank over HTTP: an initiative's bank account, cancelling a payout, payout batches and their
SEPA pain.001 files, and camt.053 bank statements uploaded by the finance integration."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import Field

from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import Line, Strict, Text
from buurtkracht_kit.paging import Limit, Offset
from buurtkracht_kit.problems import Problem

from ...domain.banking import BatchStatus, Payee, masked
from ...service import payouts
from .bank_accounts import BankAccountIn
from .common import Answer, Paged, now, unit_of_work
from .spending import PayoutOut

router = APIRouter(tags=["bank"])

XML_TYPES = ("application/xml", "text/xml")


class BankAccountOut(Answer):
    initiative_id: uuid.UUID
    iban: str
    iban_masked: str = Field(description="How the account appears in events and messages: its last four characters")
    bic: str | None
    account_holder: str
    given_at: datetime

    @classmethod
    def of(cls, payee: Payee) -> BankAccountOut:
        account = payee.account
        return cls(
            initiative_id=payee.initiative_id,
            iban=account.iban,
            iban_masked=masked(account.iban),
            bic=account.bic,
            account_holder=account.holder,
            given_at=payee.given_at,
        )


class Cancellation(Strict):
    reason: Text = Field(min_length=1, max_length=2000)


class BatchOut(Answer):
    id: uuid.UUID
    status: BatchStatus
    opened_at: datetime
    closed_at: datetime | None
    closed_by: str | None
    message_reference: str | None = Field(description="The pain.001 file's message id, once closed")
    requested_execution_date: date | None = Field(
        json_schema_extra={"format": "date"}, description="The day the bank is asked to pay, once closed"
    )
    payout_count: int
    total_cents: int


class BatchPage(Paged):
    items: list[BatchOut]


class LineOut(Answer):
    statement_id: str
    line: str = Field(description="The line within its statement: the entry's reference and the transaction's number")
    end_to_end_id: str | None
    amount_cents: int
    outcome: str = Field(
        description="settled, returned, amount_mismatch, unknown_reference, not_sent, already_settled or not_a_payout"
    )
    detail: str
    payout_id: uuid.UUID | None
    already_read: bool = Field(
        description="The line was read before (an upload of the same statement): nothing changed"
    )


class StatementOut(Answer):
    lines: list[LineOut]
    settled: int
    returned: int
    reported: int = Field(description="Lines that settled nothing: mismatches, unknown references, not ours")
    already_read: int


def _statement(lines: list[payouts.LineRead]) -> StatementOut:
    fresh = [line for line in lines if not line.already_read]
    return StatementOut(
        lines=[LineOut.model_validate(line, from_attributes=True) for line in lines],
        settled=sum(line.outcome == "settled" for line in fresh),
        returned=sum(line.outcome == "returned" for line in fresh),
        reported=sum(line.outcome not in ("settled", "returned") for line in fresh),
        already_read=len(lines) - len(fresh),
    )


def banking(request: Request) -> payouts.Banking:
    return request.app.state.banking


StatementId = Annotated[Line, Path(min_length=1, max_length=35)]


@router.put(
    "/initiative-budgets/{initiative_id}/bank-account",
    summary="An initiator gives (or changes) the bank account the initiative's payouts go to (IBAN checked)",
)
async def give_bank_account(
    initiative_id: uuid.UUID, body: BankAccountIn, caller: Caller, request: Request
) -> BankAccountOut:
    async with unit_of_work(request) as uow:
        payee = await payouts.give_bank_account(
            uow, caller, initiative_id, body.iban, body.bic, body.account_holder, now()
        )
        await uow.commit()
    return BankAccountOut.of(payee)


@router.get(
    "/initiative-budgets/{initiative_id}/bank-account",
    summary="The initiative's bank account (its initiators, the finance integration)",
    responses={404: {"description": "None given, or one the caller may not see"}},
)
async def get_bank_account(initiative_id: uuid.UUID, caller: Caller, request: Request) -> BankAccountOut:
    async with unit_of_work(request) as uow:
        return BankAccountOut.of(await payouts.bank_account_of(uow, caller, initiative_id))


@router.post(
    "/payouts/{payout_id}/cancellation",
    summary="An official of the round's area or the finance integration cancels a payout until its batch closes; "
    "its amount returns to the initiative's budget",
    responses={409: {"description": "Settled, cancelled, or its batch closed (`sent`)"}},
)
async def cancel_payout(payout_id: uuid.UUID, body: Cancellation, caller: Caller, request: Request) -> PayoutOut:
    async with unit_of_work(request) as uow:
        payout = await payouts.cancel_payout(uow, caller, payout_id, body.reason, now())
        await uow.commit()
    return PayoutOut.model_validate(payout, from_attributes=True)


@router.get("/payout-batches", summary="Payout batches: the open one first, then the closed ones, newest first")
async def list_batches(
    caller: Caller, request: Request, status: BatchStatus | None = None, limit: Limit = 20, offset: Offset = 0
) -> BatchPage:
    async with unit_of_work(request) as uow:
        found, total = await payouts.batches(uow, caller, status, limit, offset)
    items = [BatchOut.model_validate(b, from_attributes=True) for b in found]
    return BatchPage(items=items, total=total, limit=limit, offset=offset)


@router.get("/payout-batches/{batch_id}", summary="A payout batch (the finance integration, officials)")
async def get_batch(batch_id: uuid.UUID, caller: Caller, request: Request) -> BatchOut:
    async with unit_of_work(request) as uow:
        return BatchOut.model_validate(await payouts.batch_of(uow, caller, batch_id), from_attributes=True)


@router.post(
    "/payout-batches/{batch_id}/close",
    summary="An official or the finance integration closes the open batch now (it also closes daily): its SEPA "
    "pain.001 file is written",
    responses={409: {"description": "Closed already, or it holds no payouts (`empty`)"}},
)
async def close_batch(batch_id: uuid.UUID, caller: Caller, request: Request) -> BatchOut:
    async with unit_of_work(request) as uow:
        batch = await payouts.close_batch(uow, caller, batch_id, banking(request), now())
        await uow.commit()
    return BatchOut.model_validate(batch, from_attributes=True)


@router.get(
    "/payout-batches/{batch_id}/pain001",
    summary="The closed batch's SEPA credit-transfer file (pain.001.001.03) for the bank (the finance integration)",
    response_class=Response,
    responses={200: {"content": {"application/xml": {"schema": {"type": "string"}}}}, 409: {"description": "Open"}},
)
async def download_pain001(batch_id: uuid.UUID, caller: Caller, request: Request) -> Response:
    async with unit_of_work(request) as uow:
        batch, content = await payouts.pain001_of(uow, caller, batch_id)
    return Response(
        content,
        media_type="application/xml",
        headers={"Content-Disposition": f'attachment; filename="{batch.message_reference}.xml"'},
    )


@router.post(
    "/bank-statements",
    summary="The finance integration uploads a camt.053.001.02 bank statement: each payout paid for its exact amount "
    "settles, the rest is reported; the same statement again changes nothing",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/xml": {"schema": {"type": "string", "description": "camt.053.001.02 XML"}}},
        }
    },
)
async def upload_statement(caller: Caller, request: Request) -> StatementOut:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in XML_TYPES:
        raise Problem.invalid("statement", "send the statement as application/xml", status=415)
    content = await request.body()
    service = request.app.state.service
    lines = await payouts.import_statement(service.unit_of_work, caller, content, banking(request), now())
    return _statement(lines)


@router.get(
    "/bank-statements/{statement_id}",
    summary="What each line of an uploaded statement did (the finance integration, officials)",
)
async def get_statement(statement_id: StatementId, caller: Caller, request: Request) -> StatementOut:
    async with unit_of_work(request) as uow:
        return _statement(await payouts.statement_lines(uow, caller, statement_id))
