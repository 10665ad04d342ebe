"""Wallets over HTTP: bulk issuance (JSON or a CSV upload), a resident claiming their own, and reading yours."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import Field, ValidationError

from buurtkracht_contracts.refusals import NotAllowed
from buurtkracht_kit.auth import Caller, Role
from buurtkracht_kit.problems import Problem

from ...service import queries, wallets
from .common import Answer, Strict, now, unit_of_work
from .pledges import PledgeOut

router = APIRouter(tags=["wallets"])


class Issuance(Strict):
    resident_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(min_length=1, max_length=2_000_000)


class IssuanceOut(Answer):
    issued: int
    already_had_a_wallet: int
    issued_cents: int


class WalletOut(Answer):
    round_id: uuid.UUID
    balance_cents: int
    pledges: list[PledgeOut]


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
