"""Pledging and withdrawing pledges. A pledge holds its round (shared), then its initiative's row — which
serialises the pledges to one initiative, so the cap is exact and the award happens exactly once — then the
resident's wallet.

Pledges that arrive together are decided together (`pledge_together`): in one transaction, in arrival order, by
the same rules and against running balances, so the outcome is the one they would have had one after another."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from buurtkracht_contracts.refusals import DomainError, NotFound
from buurtkracht_kit.auth import Principal

from ..adapters.rounds import RoundLock
from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain import pledges
from ..domain.initiatives import Initiative
from ..domain.ledger import Account, Entry, Kind
from ..domain.pledges import GivenBack, Pledge, Wallet
from ..domain.rounds import Mechanism, Round
from .access import found
from .awards import KNOWN_APPROVED, lapse
from .locking import lock


@dataclass(frozen=True)
class PledgeResult:
    pledge: Pledge
    wallet_balance_cents: int
    pledged_to_initiative_cents: int
    awarded: bool


@dataclass(frozen=True)
class PledgeRequest:
    actor: Principal
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int


def _admitted(
    request: PledgeRequest, round_: Round | None, initiative: Initiative | None, now: datetime
) -> tuple[Round, Initiative]:
    """The round and initiative a pledge may go to, checked in the order every pledge is refused in."""
    round_ = found(round_, f"round {request.round_id}")
    round_.require_mechanism(Mechanism.PLEDGE, "pledge")
    round_.require_open(now, "pledge")
    initiative = found(initiative, f"initiative {request.initiative_id} {KNOWN_APPROVED}")
    initiative.require_pledgeable_in(round_)
    return round_, initiative


def _wallet(wallet: Wallet | None, round_id: uuid.UUID) -> Wallet:
    return found(wallet, f"your wallet in round {round_id}")


async def pledge(
    uow: VouchersUnitOfWork,
    actor: Principal,
    round_id: uuid.UUID,
    initiative_id: uuid.UUID,
    amount_cents: int,
    now: datetime,
) -> PledgeResult:
    request = PledgeRequest(actor, round_id, initiative_id, amount_cents)
    locked = await lock(uow, round_id=round_id, initiative_id=initiative_id)
    round_, initiative = _admitted(request, locked.round, locked.initiative, now)
    wallet = _wallet(await uow.ledger.wallet(round_id, actor.subject, for_update=True), round_id)
    pledged = await uow.ledger.balance(round_id, Account.of_initiative(Kind.PLEDGED, initiative_id)) or 0
    made, entry = Pledge.make(round_, initiative, wallet, amount_cents, pledged, now)
    await uow.ledger.post(round_id, entry)
    await uow.pledges.add(made)
    uow.collect(made)
    pledged += made.amount_cents
    award = initiative.award_by_pledges(round_, pledged)
    if award is not None:
        awarded = await uow.pledges.active(round_id, initiative_id)
        pledges.award(awarded)
        await uow.pledges.save(awarded)
        await uow.ledger.post(round_id, award)
        await uow.initiatives.save(initiative)
        await lapse(uow, initiative_ids=[initiative_id])
        uow.collect(initiative)
    return PledgeResult(made, wallet.balance_cents, pledged, award is not None)


async def pledge_together(
    uow: VouchersUnitOfWork, requests: Sequence[PledgeRequest], now: datetime
) -> list[PledgeResult | DomainError | None]:
    """Decide these pledges in arrival order, each by the rules of `pledge` against the balances the ones before it
    left, and book the accepted ones together; for each, its result, its refusal (it leaves no trace), or None: a
    pledge that would complete its initiative's amount, and every pledge after it to that initiative or from that
    resident, is to be made alone (`pledge`) after this commits, because an award locks and moves more.

    Locks are taken as `pledge` takes them — the rounds (shared), then the initiatives' rows, then the accounts —
    each kind for the whole batch in one go and in id order, and held for the few statements of one transaction."""
    rounds = await uow.rounds.get_all([r.round_id for r in requests], RoundLock.SHARED)
    initiatives = await uow.initiatives.get_all(
        [r.initiative_id for r in requests if r.round_id in rounds], for_update=True
    )
    balances = await uow.ledger.locked_balances(
        [
            (r.round_id, account)
            for r in requests
            if r.round_id in rounds and r.initiative_id in initiatives
            for account in (Account.wallet(r.actor.subject), Account.of_initiative(Kind.PLEDGED, r.initiative_id))
        ]
    )
    wallets: dict[tuple[uuid.UUID, str], Wallet] = {}
    pledged: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    alone: set[object] = set()  # initiatives and residents whose next pledges are made alone
    outcomes: list[PledgeResult | DomainError | None] = []
    booked: list[tuple[Pledge, Entry]] = []
    for request in requests:
        resident, to = request.actor.subject, (request.round_id, request.initiative_id)
        if request.initiative_id in alone or resident in alone:
            outcomes.append(None)
            continue
        try:
            round_, initiative = _admitted(
                request, rounds.get(request.round_id), initiatives.get(request.initiative_id), now
            )
            wallet = wallets.get((request.round_id, resident))
            if wallet is None:
                balance = balances.get((request.round_id, Account.wallet(resident)))
                wallet = _wallet(None if balance is None else Wallet(request.round_id, resident, balance), round_.id)
                wallets[(request.round_id, resident)] = wallet
            if to not in pledged:
                pledged[to] = balances.get((request.round_id, Account.of_initiative(Kind.PLEDGED, initiative.id)), 0)
            if 0 < initiative.approved_amount_cents - pledged[to] <= request.amount_cents:
                alone.update((request.initiative_id, resident))
                outcomes.append(None)
                continue
            made, entry = Pledge.make(round_, initiative, wallet, request.amount_cents, pledged[to], now)
        except DomainError as refusal:
            outcomes.append(refusal)
            continue
        pledged[to] += made.amount_cents
        booked.append((made, entry))
        outcomes.append(PledgeResult(made, wallet.balance_cents, pledged[to], False))
    if booked:
        await uow.ledger.post_together([(made.round_id, entry) for made, entry in booked])
        await uow.pledges.add_all([made for made, _ in booked])
        uow.collect(*(made for made, _ in booked))
    return outcomes


async def withdraw_pledge(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, pledge_id: uuid.UUID, now: datetime
) -> PledgeResult:
    locked = await lock(uow, round_id=round_id, pledge_id=pledge_id)
    round_ = found(locked.round, f"round {round_id}")
    round_.require_open(now, "withdraw a pledge")
    if locked.pledge is None or locked.pledge.resident_id != actor.subject:
        raise NotFound(f"pledge {pledge_id}")
    withdrawn = locked.pledge
    withdrawn.require_active("withdrawn")
    wallet = found(await uow.ledger.wallet(round_id, actor.subject, for_update=True), "your wallet")
    pledged = await uow.ledger.balance(round_id, withdrawn.pledged_account) or 0
    entry = withdrawn.withdraw(round_, wallet, pledged)
    await uow.ledger.post(round_id, entry)
    await uow.pledges.save([withdrawn])
    uow.collect(withdrawn)
    return PledgeResult(withdrawn, wallet.balance_cents, pledged - withdrawn.amount_cents, False)


async def give_back_pledges(
    uow: VouchersUnitOfWork, round_: Round, initiative_id: uuid.UUID | None, reason: GivenBack
) -> int:
    """Every active pledge of the round (to one initiative, or to all) back to its wallet; returns the cents."""
    given_back = await uow.pledges.active(round_.id, initiative_id)
    if not given_back:
        return 0
    wallets = {}
    if reason != "round_closed":
        wallets = await uow.ledger.wallet_balances(round_.id, sorted({p.resident_id for p in given_back}))
    await uow.ledger.post_all(round_.id, pledges.give_back(round_, given_back, reason, wallets))
    await uow.pledges.save(given_back)
    uow.collect(*given_back)
    return sum(p.amount_cents for p in given_back)
