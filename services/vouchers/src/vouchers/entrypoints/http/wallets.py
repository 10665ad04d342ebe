"""Wallets over HTTP: bulk issuance (JSON or a CSV upload), a resident claiming their own, and reading yours."""

from __future__ import annotations

import csv
import io
import uuid

from fastapi import APIRouter, Request
from pydantic import Field, ValidationError

from buurtkracht_contracts.refusals import NotAllowed
from buurtkracht_kit.auth import Caller, Role
from buurtkracht_kit.inputs import ResidentId, Strict
from buurtkracht_kit.problems import Problem

from ...service import queries, wallets
from .common import Answer, now, unit_of_work
from .pledges import PledgeOut

router = APIRouter(tags=["wallets"])


MAX_ISSUANCE = 2_000_000  # residents in one issuance: a city of a million, twice over


class Issuance(Strict):
    resident_ids: list[ResidentId] = Field(min_length=1, max_length=MAX_ISSUANCE)


class IssuanceOut(Answer):
    issued: int
    already_had_a_wallet: int
    issued_cents: int


class WalletOut(Answer):
    round_id: uuid.UUID
    balance_cents: int
    pledges: list[PledgeOut]


async def _resident_ids(request: Request) -> list[str]:
    """A JSON body `{"resident_ids": [...]}`, or a CSV upload (`text/csv`, one id a line, optional header); either
    way every id is a `ResidentId` and there are at most `MAX_ISSUANCE` of them (a CSV error names its line)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    raw = await request.body()
    if content_type != "text/csv":
        try:
            return Issuance.model_validate_json(raw).resident_ids
        except ValidationError as error:
            raise Problem.of_validation(error.errors(), within=("body",)) from error
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as error:
        raise Problem.invalid("body", f"not a UTF-8 CSV file: {error}", status=400) from error
    lines = [(number, row[0].strip()) for number, row in enumerate(rows, 1) if row and row[0].strip()]
    if lines and lines[0][1] == "resident_id":
        lines = lines[1:]
    try:
        return Issuance(resident_ids=[resident_id for _, resident_id in lines]).resident_ids
    except ValidationError as error:
        errors = [
            dict(item, loc=("line", lines[item["loc"][1]][0])) if len(item["loc"]) == 2 else item
            for item in error.errors()
        ]
        raise Problem.of_validation(errors, within=("body",)) from error


@router.post(
    "/rounds/{round_id}/wallet-issuances",
    status_code=201,
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
    if not caller.has(Role.OFFICIAL):  # before a byte of a possibly large upload is read; the area is checked after
        raise NotAllowed("only an official responsible for the round's area can issue wallets")
    resident_ids = await _resident_ids(request)
    async with unit_of_work(request) as uow:
        issuance = await wallets.issue_wallets(uow, caller, round_id, resident_ids, now())
        await uow.commit()
    return IssuanceOut.model_validate(issuance, from_attributes=True)


@router.post(
    "/rounds/{round_id}/wallets/me",
    status_code=201,
    summary="A resident claims their own wallet, where the round allows it",
)
async def claim_wallet(round_id: uuid.UUID, caller: Caller, request: Request) -> WalletOut:
    async with unit_of_work(request) as uow:
        amount = await wallets.claim_wallet(uow, caller, round_id, now())
        await uow.commit()
    return WalletOut(round_id=round_id, balance_cents=amount, pledges=[])


@router.get("/rounds/{round_id}/wallets/me", summary="Your wallet and pledges in a round")
async def my_wallet(round_id: uuid.UUID, caller: Caller, request: Request) -> WalletOut:
    async with unit_of_work(request) as uow:
        return WalletOut.model_validate(await queries.wallet_of(uow, caller, round_id), from_attributes=True)
