"""What every route of the API shares: strict bodies, the service's unit of work, and running a command once per
`Idempotency-Key` (the key is taken in the command's own transaction, so a repeat replays the first answer and two
requests with one key never both move money). The requests that take a key — opening a round, pledging, proposing
an award, claiming an expense, deciding a claim — and why the others are safe to repeat without one: see the
package's docstring."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from buurtkracht_kit import idempotency
from buurtkracht_kit.auth import Principal
from buurtkracht_kit.inputs import Line

from ...adapters.unit_of_work import VouchersUnitOfWork

IdempotencyKey = Annotated[
    Line | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, description="Required: replays the first answer"),
]

# Integers are bounded where they come in (offsets and limits by the kit's paging parameters, quorums by
# MAX_INTEGER, amounts by MAX_CENTS), so a huge value is invalid input (422), never a server error.


class Answer(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Paged(Answer):
    """A page of a list: `total` items match in all; this page skips `offset` of them and holds at most `limit`."""

    total: int
    limit: int
    offset: int


def now() -> datetime:
    return datetime.now(UTC)


def unit_of_work(request: Request) -> VouchersUnitOfWork:
    return request.app.state.service.unit_of_work()


async def money_moving(
    request: Request,
    caller: Principal,
    key: str | None,
    body: Any,
    status_code: int,
    command: Callable[[VouchersUnitOfWork], Awaitable[BaseModel]],
) -> JSONResponse:
    """Run a command that requires an Idempotency-Key once per key; a repeat replays the first answer."""
    key = idempotency.require_key(key)
    fingerprint = idempotency.fingerprint(request.method, request.url.path, jsonable_encoder(body))
    return await idempotency.once(lambda: unit_of_work(request), caller, key, fingerprint, status_code, command)
