"""The outcome of Equal Shares rounds over HTTP: the explained outcome of a closed round, the round as a Pabulib
file, and the outcome of any Pabulib approval instance (a check that changes nothing)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import Field, ValidationError

from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import Strict, Text
from buurtkracht_kit.problems import Problem

from ...domain.equal_shares import Outcome, Result
from ...service import equal_shares
from .common import Answer, unit_of_work

router = APIRouter(tags=["equal shares"])

PABULIB_TYPES = ("text/plain", "application/octet-stream", "text/csv")


class PabulibText(Strict):
    pabulib: Text = Field(min_length=1, max_length=1 << 20, description="The .pb file's text")


_checking = asyncio.Semaphore(1)  # one check computed at a time per process: each may take seconds of CPU


class SpentOnOut(Answer):
    initiative_id: uuid.UUID
    cents: int = Field(description="What the supporters spent of their shares on this funded initiative")


class ResultOut(Answer):
    initiative_id: uuid.UUID
    title: str
    cost_cents: int = Field(description="Its approved amount: what funding it costs")
    supporters: int = Field(description="How many counted ballots approve it")
    funded: bool
    position: int | None = Field(description="Funded: the order in which the method funded it (1 first)")
    reason: Literal["no_supporters", "over_budget", "supporters_short"] | None = Field(
        description="Not funded: nobody approved it, it costs more than the whole budget, or its supporters had "
        "less money left of their shares than it costs"
    )
    supporters_money_cents: int | None = Field(
        description="Not funded: what its supporters had left of their shares when the method last considered it"
    )
    spent_on: list[SpentOnOut] = Field(
        description="Not funded: what its supporters had spent before on funded initiatives, most first"
    )


class OutcomeOut(Answer):
    round_id: uuid.UUID
    budget_cents: int
    voters: int = Field(description="Counted ballots: those that approve at least one candidate")
    share_cents: str = Field(description="Each voter's share after the completion, exact (a fraction of cents)")
    funded_cents: int
    method: str
    results: list[ResultOut] = Field(description="Funded in the order funded, then the others, most supporters first")


class CheckedProjectOut(ResultOut):
    project_id: str = Field(description="The project's id in the file")


class CheckOut(Answer):
    description: str
    budget: int = Field(description="In whole units of the file's currency")
    voters: int
    share: str = Field(description="Each voter's share after the completion, exact")
    funded_cost: int
    method: str
    projects: list[CheckedProjectOut]
    published_winners: list[str] | None = Field(description="The file's `selected` projects, where it has them all")
    same_as_published: bool | None = Field(description="Whether the method funds exactly the published winners")


def _results(outcome: Outcome) -> list[ResultOut]:
    return [_result(result) for result in outcome.results]


def _result(result: Result) -> ResultOut:
    return ResultOut.model_validate(vars(result) | {"spent_on": [vars(s) for s in result.spent_on]})


@router.get("/rounds/{round_id}/outcome", summary="The explained outcome of a closed Equal Shares round (public)")
async def round_outcome(round_id: uuid.UUID, caller: Caller, request: Request) -> OutcomeOut:
    async with unit_of_work(request) as uow:
        round_, outcome = await equal_shares.outcome_of(uow, round_id)
    return OutcomeOut(
        round_id=round_.id,
        budget_cents=outcome.budget_cents,
        voters=outcome.voters,
        share_cents=str(outcome.share_cents),
        funded_cents=outcome.funded_cents,
        method=outcome.method,
        results=_results(outcome),
    )


@router.get(
    "/rounds/{round_id}/pabulib",
    summary="A closed Equal Shares round as a Pabulib file (.pb): its candidates, pseudonymous votes and outcome",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "The .pb file"}},
)
async def round_pabulib(round_id: uuid.UUID, caller: Caller, request: Request) -> Response:
    async with unit_of_work(request) as uow:
        text = await equal_shares.pabulib_of(uow, round_id)
    return Response(
        text,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="buurtkracht-{round_id}.pb"'},
    )


@router.post(
    "/pabulib-checks",
    summary="The Equal Shares outcome of a Pabulib approval instance (.pb as the body, or JSON {pabulib: its text}; "
    "at most 1 MB, 300 projects and 20,000 votes; one check at a time, else 429); nothing is stored",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {kind: {"schema": {"type": "string"}} for kind in PABULIB_TYPES}
            | {"application/json": {"schema": PabulibText.model_json_schema()}},
        }
    },
)
async def check_pabulib(caller: Caller, request: Request) -> CheckOut:
    raw = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip() == "application/json":
        try:
            text = PabulibText.model_validate_json(raw).pabulib
        except ValidationError as error:
            raise Problem.of_validation(error.errors(), within=("body",)) from error
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise Problem.invalid("file", f"not a UTF-8 text file: {error}", status=400) from error
    if not text.strip():
        raise Problem.invalid("file", "the body is an empty file", status=400)
    if _checking.locked():
        raise Problem(429, "Too many checks", "another Pabulib check is being computed; try again in a moment")
    async with _checking:
        instance, outcome = await equal_shares.check_pabulib(text)
    funded = sorted(instance.project_ids[r.initiative_id] for r in outcome.funded)
    published = instance.published_winners
    return CheckOut(
        description=instance.description,
        budget=outcome.budget_cents,
        voters=outcome.voters,
        share=str(outcome.share_cents),
        funded_cost=outcome.funded_cents,
        method=outcome.method.replace("100 cents", "one unit"),
        projects=[
            CheckedProjectOut.model_validate(
                _result(result).model_dump() | {"project_id": instance.project_ids[result.initiative_id]}
            )
            for result in outcome.results
        ],
        published_winners=published,
        same_as_published=None if published is None else funded == published,
    )
