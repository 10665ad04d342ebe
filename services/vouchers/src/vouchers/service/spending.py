"""Spending an award: expense claims, their decision, and payouts confirmed by the finance side. Each holds the
round (shared), the initiative's row — so what is left of its budget is exact — and then the claim or payout.
Claims are seen by the officials and steering group members of their round's area and by the initiators; payouts
by the finance integration and the officials of their round's area."""

from __future__ import annotations

import uuid
from datetime import datetime

from buurtkracht_contracts.areas import is_area_code
from buurtkracht_contracts.refusals import NotAllowed, NotFound
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.banking import BankAccount
from ..domain.initiatives import Budget, Initiative
from ..domain.ledger import Account, Kind
from ..domain.spending import Claim, ClaimStatus, Payout, PayoutStatus
from .access import found, is_member_for, is_official_for
from .locking import lock
from .payouts import join_open_batch, leave_open_batch, put_payee


async def budget_of(uow: VouchersUnitOfWork, initiative: Initiative) -> Budget:
    """Awarded, held by claims, payable, paid and left, from the initiative's ledger accounts."""
    if initiative.round_id is None:
        return initiative.budget({})
    return initiative.budget(await uow.ledger.of_initiative(initiative.round_id, initiative.id))


async def _left(uow: VouchersUnitOfWork, initiative: Initiative) -> int:
    if initiative.round_id is None:
        return 0
    return await uow.ledger.balance(initiative.round_id, Account.of_initiative(Kind.BUDGET, initiative.id)) or 0


async def claim_expense(
    uow: VouchersUnitOfWork,
    actor: Principal,
    initiative_id: uuid.UUID,
    supplier: str,
    amount_cents: int,
    invoice_reference: str,
    now: datetime,
    bank_account: BankAccount | None = None,
) -> tuple[Claim, Budget]:
    """An initiator's claim; with `bank_account`, the initiative's bank account is given (or changed) with it."""
    locked = await lock(uow, initiative_id=initiative_id)
    initiative = found(locked.initiative, f"initiative {initiative_id}")
    claim, hold = Claim.submit(
        locked.round,
        initiative,
        actor.subject,
        supplier,
        amount_cents,
        invoice_reference,
        await _left(uow, initiative),
        now,
    )
    await uow.ledger.post(claim.round_id, hold)
    await uow.claims.add(claim)
    if bank_account is not None:
        await put_payee(uow, initiative, actor, bank_account, now)
    uow.collect(claim)
    return claim, await budget_of(uow, initiative)


async def decide_expense(
    uow: VouchersUnitOfWork, actor: Principal, claim_id: uuid.UUID, approve: bool, reason: str | None, now: datetime
) -> tuple[Claim, Payout | None]:
    """An official of the round's area or a member of its steering group approves the claim (its payout is
    requested, and waits in the open payout batch when the initiative has a bank account) or declines it; never its
    claimant or an initiator of its initiative."""
    locked = await lock(uow, claim_id=claim_id)
    claim = found(locked.claim, f"expense claim {claim_id}")
    round_, initiative = found(locked.round, "its round"), found(locked.initiative, "its initiative")
    if not (is_official_for(actor, round_.area_code) or await is_member_for(uow, actor, round_.area_code)):
        raise NotAllowed(
            f"only an official responsible for {round_.area_code} or a member of its steering group decides on "
            "expense claims"
        )
    if approve:
        entry = claim.approve(round_, initiative, actor.subject, reason)
    else:
        entry = claim.decline(round_, initiative, actor.subject, reason, await _left(uow, initiative))
    await uow.ledger.post(claim.round_id, entry)
    await uow.claims.save(claim)
    if claim.payout is not None:
        await join_open_batch(uow, claim.payout, now)
        await uow.payouts.add(claim.payout)
    uow.collect(claim, claim.payout)
    return claim, claim.payout


async def confirm_payout(
    uow: VouchersUnitOfWork,
    actor: Principal,
    payout_id: uuid.UUID,
    bank_reference: str,
    paid_at: datetime,
    amount_cents: int | None = None,
) -> Payout:
    """The finance integration paid the supplier; `amount_cents`, when given, must be the payout's amount. A payout
    confirmed so while its batch is open leaves the batch: it is paid, the bank file must not pay it again."""
    _require_finance(actor)
    locked = await lock(uow, payout_id=payout_id)
    payout = found(locked.payout, f"payout {payout_id}")
    round_, initiative = found(locked.round, "its round"), found(locked.initiative, "its initiative")
    entry = payout.settle(round_, initiative, bank_reference, paid_at, amount_cents)
    if entry is not None:
        await leave_open_batch(uow, payout)
        await uow.ledger.post(payout.round_id, entry)
        await uow.payouts.save(payout)
        uow.collect(payout)
    return found(await uow.payouts.get(payout_id), f"payout {payout_id}")


async def confirm_payout_by_reference(
    uow: VouchersUnitOfWork,
    actor: Principal,
    reference: str,
    bank_reference: str,
    paid_at: datetime,
    amount_cents: int,
) -> Payout:
    """The same confirmation, for a payout the finance side knows by our reference (`BK-...`)."""
    _require_finance(actor)
    payout_id = await uow.payouts.id_of(reference)
    if payout_id is None:
        raise NotFound(f"payout {reference}")
    return await confirm_payout(uow, actor, payout_id, bank_reference, paid_at, amount_cents)


def _require_finance(actor: Principal) -> None:
    if not actor.has(Role.INTEGRATION):
        raise NotAllowed("only the finance integration confirms payouts")


# -- reading --------------------------------------------------------------------------------------


async def _member_areas(uow: VouchersUnitOfWork, actor: Principal) -> list[str]:
    return await uow.steering_groups.areas_of(actor.subject) if actor.has(Role.STEERING_GROUP) else []


def _official_areas(actor: Principal) -> list[str]:
    return sorted(area for area in actor.areas if is_area_code(area)) if actor.has(Role.OFFICIAL) else []


async def claims(
    uow: VouchersUnitOfWork,
    actor: Principal,
    round_id: uuid.UUID | None,
    status: ClaimStatus | None,
    limit: int,
    offset: int,
) -> tuple[list[Claim], int]:
    """The claims the caller may see, newest first: of the rounds of the areas they are an official for or a
    steering group member of, and of their own initiatives."""
    return await uow.claims.search(
        round_id=round_id,
        status=status,
        official_areas=_official_areas(actor),
        member_areas=await _member_areas(uow, actor),
        subject=actor.subject,
        limit=limit,
        offset=offset,
    )


async def claim_of(uow: VouchersUnitOfWork, actor: Principal, claim_id: uuid.UUID) -> Claim:
    """One claim, for those who may see it; to anyone else it does not exist."""
    claim = await uow.claims.read(claim_id)
    if claim is None:
        raise NotFound(f"expense claim {claim_id}")
    round_ = found(await uow.rounds.get(claim.round_id), "its round")
    initiative = found(await uow.initiatives.get(claim.initiative_id), "its initiative")
    own = actor.subject == claim.claimed_by or actor.subject in initiative.initiators
    if not (own or is_official_for(actor, round_.area_code) or await is_member_for(uow, actor, round_.area_code)):
        raise NotFound(f"expense claim {claim_id}")
    return claim


async def payouts(
    uow: VouchersUnitOfWork, actor: Principal, status: PayoutStatus | None, limit: int, offset: int
) -> tuple[list[Payout], int]:
    """Every payout for the finance integration; an official's, those of the rounds of their areas."""
    if not (actor.has(Role.INTEGRATION) or actor.has(Role.OFFICIAL)):
        raise NotAllowed("only the finance integration and officials see payouts")
    return await uow.payouts.search(
        status=status,
        every_area=actor.has(Role.INTEGRATION),
        official_areas=_official_areas(actor),
        limit=limit,
        offset=offset,
    )
