"""What the API shows without changing anything: rounds (public), a round with its live totals, its ledger (for its
officials), the progress of its initiatives (for the residents of its area and its officials), a resident's
wallet, an initiative's budget. Read in a unit of work that never commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from buurtkracht_contracts.refusals import NotAllowed
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.initiatives import Budget, Progress
from ..domain.ledger import Kind
from ..domain.pledges import Pledge
from ..domain.rounds import Round, RoundStatus
from .access import found, is_official_for
from .spending import budget_of


@dataclass(frozen=True)
class JournalEntry:
    id: int
    kind: str
    reference: str
    at: datetime
    lines: list[dict[str, Any]]


@dataclass(frozen=True)
class RoundLedger:
    round_id: uuid.UUID
    balances: list[dict[str, Any]]
    entries: list[JournalEntry]
    next_after: int | None
    problems: list[str]


@dataclass(frozen=True)
class WalletView:
    round_id: uuid.UUID
    balance_cents: int
    pledges: list[Pledge]


async def round_with_totals(uow: VouchersUnitOfWork, round_id: uuid.UUID) -> tuple[Round, dict[str, int]]:
    """The round, and its money per kind of account (all wallets together, ...), the municipality's left out."""
    round_ = found(await uow.rounds.get(round_id), f"round {round_id}")
    totals = await uow.ledger.totals(round_id)
    return round_, {kind.value: cents for kind, cents in totals.items() if kind is not Kind.MUNICIPALITY}


async def rounds(
    uow: VouchersUnitOfWork, area_code: str | None, status: RoundStatus | None, limit: int, offset: int
) -> tuple[list[Round], int]:
    """Rounds are public: any signed-in caller lists them, newest first."""
    return await uow.rounds.search(area_code, status, limit, offset)


async def round_initiatives(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[Progress], int]:
    """Before they pledge, the residents of the round's area (and its officials) see how far each of its
    initiatives is: what is pledged to it in the round, and whether the round awarded it."""
    round_ = found(await uow.rounds.get(round_id), f"round {round_id}")
    resident = actor.has(Role.RESIDENT) and actor.lives_in(round_.area_code)
    if not (resident or is_official_for(actor, round_.area_code)):
        raise NotAllowed(f"only residents of {round_.area_code} and officials responsible for it see its initiatives")
    return await uow.initiatives.progress_in(round_, limit, offset)


async def round_ledger(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, after: int, limit: int
) -> RoundLedger:
    round_ = found(await uow.rounds.get(round_id), f"round {round_id}")
    if not is_official_for(actor, round_.area_code):
        raise NotAllowed(f"only officials responsible for {round_.area_code} see this ledger")
    entries = await uow.ledger.journal(round_id, limit, after)
    return RoundLedger(
        round_id=round_id,
        balances=[
            {"account": b.kind.value + (f":{b.owner}" if b.owner else ""), "balance_cents": b.balance_cents}
            for b in await uow.ledger.balances(round_id)
        ],
        entries=[JournalEntry(e["id"], e["kind"], e["reference"], e["created_at"], e["lines"]) for e in entries],
        next_after=entries[-1]["id"] if len(entries) == limit else None,
        problems=await uow.ledger.check(round_id),
    )


async def wallet_of(uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID) -> WalletView:
    wallet = found(await uow.ledger.wallet(round_id, actor.subject), f"your wallet in round {round_id}")
    return WalletView(round_id, wallet.balance_cents, await uow.pledges.of_resident(round_id, actor.subject))


async def initiative_budget(uow: VouchersUnitOfWork, initiative_id: uuid.UUID) -> Budget:
    initiative = found(await uow.initiatives.get(initiative_id), f"initiative {initiative_id}")
    return await budget_of(uow, initiative)
