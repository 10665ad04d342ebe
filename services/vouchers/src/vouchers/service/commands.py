"""One function per command, each in the caller's unit of work: the state change, its journal entries
and its events commit together or not at all. A refused command raises before committing, so it moves
no money. Locks are taken in one order — round, initiative, pledge or claim, accounts — see adapters.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from buurtkracht_contracts import vouchers as events
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.db import UnitOfWork

from ..adapters.ledger import Ledger
from ..adapters.repository import Claim, Payout, Pledge, Repository, votes_json
from ..domain.ledger import Account, Entry, Kind
from ..domain.model import (
    Budget,
    Conflict,
    Initiative,
    InitiativeStatus,
    InvalidInput,
    Mechanism,
    NotAllowed,
    NotFound,
    Round,
    RoundStatus,
    Vote,
    decide_committee_award,
    decide_pledge,
)

WALLETS_PER_EVENT = 5_000


def _require(actor: Principal, roles: set[Role], area_code: str, action: str) -> None:
    if not (actor.roles & roles) or not actor.acts_for(area_code):
        names = " or ".join(sorted(role.value for role in roles))
        raise NotAllowed(f"only a {names} responsible for {area_code} can {action}")


async def _round(repo: Repository, round_id: uuid.UUID, lock: str | None = "share") -> Round:
    found = await repo.round(round_id, lock)
    if found is None:
        raise NotFound(f"round {round_id}")
    return found


async def _initiative(repo: Repository, initiative_id: uuid.UUID) -> Initiative:
    found = await repo.initiative(initiative_id, for_update=True)
    if found is None:
        raise NotFound(f"initiative {initiative_id} (the vouchers service knows approved initiatives only)")
    return found


# -- rounds ----------------------------------------------------------------------------------


async def open_round(
    uow: UnitOfWork,
    actor: Principal,
    *,
    area_code: str,
    name: str,
    mechanism: Mechanism,
    total_budget_cents: int,
    opens_at: datetime,
    closes_at: datetime,
    voucher_amount_cents: int | None,
    allow_wallet_claims: bool,
    committee_quorum: int | None,
) -> Round:
    _require(actor, {Role.OFFICIAL}, area_code, "open a budget round")
    round_ = Round.open(
        area_code=area_code,
        name=name,
        mechanism=mechanism,
        total_budget_cents=total_budget_cents,
        opens_at=opens_at,
        closes_at=closes_at,
        voucher_amount_cents=voucher_amount_cents,
        allow_wallet_claims=allow_wallet_claims,
        committee_quorum=committee_quorum,
    )
    await Repository(uow.connection).add_round(round_, actor.subject)
    await Ledger(uow.connection).post(
        round_.id,
        Entry.transfer("round_opened", str(round_.id), Account.municipality(), Account.pool(), total_budget_cents),
    )
    uow.record(
        events.RoundOpened(
            round_id=round_.id,
            area_code=area_code,
            name=name,
            mechanism=mechanism.value,
            total_budget_cents=total_budget_cents,
            voucher_amount_cents=round_.voucher_amount_cents,
            opens_at=opens_at,
            closes_at=closes_at,
        )
    )
    return round_


@dataclass(frozen=True)
class Issuance:
    issued: int
    already_had_a_wallet: int
    issued_cents: int


async def issue_wallets(
    uow: UnitOfWork, actor: Principal, round_id: uuid.UUID, resident_ids: list[str], now: datetime
) -> Issuance:
    repo = Repository(uow.connection)
    round_ = await _round(repo, round_id)
    _require(actor, {Role.OFFICIAL}, round_.area_code, "issue wallets")
    round_.require_mechanism(Mechanism.PLEDGE, "issue wallets")
    if round_.status is RoundStatus.CLOSED or now >= round_.closes_at:
        raise Conflict("cannot issue wallets: the round is closed", "closed")
    unique = list(dict.fromkeys(resident_ids))
    if not unique:
        raise InvalidInput("name at least one resident", "resident_ids")
    if any(not rid or len(rid) > 100 or "," in rid for rid in unique):
        raise InvalidInput("resident ids are 1 to 100 characters, without commas", "resident_ids")
    amount = round_.voucher_amount_cents or 0
    issued = await Ledger(uow.connection).issue_wallets(
        round_id, unique, amount, reference=f"{round_id}:{uuid.uuid4()}"
    )
    for start in range(0, len(issued), WALLETS_PER_EVENT):
        batch = issued[start : start + WALLETS_PER_EVENT]
        uow.record(
            events.WalletsIssued(
                round_id=round_id,
                area_code=round_.area_code,
                resident_ids=batch,
                voucher_amount_cents=amount,
                issued_cents=amount * len(batch),
            )
        )
    return Issuance(len(issued), len(unique) - len(issued), amount * len(issued))


async def claim_wallet(uow: UnitOfWork, actor: Principal, round_id: uuid.UUID, now: datetime) -> int:
    """A resident of the round's area claims their own wallet, where the round allows it."""
    repo = Repository(uow.connection)
    round_ = await _round(repo, round_id)
    round_.require_mechanism(Mechanism.PLEDGE, "claim a wallet")
    round_.require_open(now, "claim a wallet")
    if not actor.has(Role.RESIDENT) or not actor.lives_in(round_.area_code):
        raise NotAllowed(f"only residents of {round_.area_code} can claim a wallet in this round")
    if not round_.allow_wallet_claims:
        raise Conflict("this round issues wallets to a list of residents; it does not take claims", "no_claims")
    amount = round_.voucher_amount_cents or 0
    issued = await Ledger(uow.connection).issue_wallets(
        round_id, [actor.subject], amount, reference=f"{round_id}:claim:{actor.subject}"
    )
    if not issued:
        raise Conflict("you already have a wallet in this round", "has_wallet")
    uow.record(
        events.WalletsIssued(
            round_id=round_id,
            area_code=round_.area_code,
            resident_ids=issued,
            voucher_amount_cents=amount,
            issued_cents=amount,
        )
    )
    return amount


# -- pledges ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PledgeResult:
    pledge: Pledge
    wallet_balance_cents: int
    pledged_to_initiative_cents: int
    awarded: bool


async def pledge(
    uow: UnitOfWork, actor: Principal, round_id: uuid.UUID, initiative_id: uuid.UUID, amount_cents: int, now: datetime
) -> PledgeResult:
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    round_ = await _round(repo, round_id)
    round_.require_mechanism(Mechanism.PLEDGE, "pledge")
    round_.require_open(now, "pledge")
    initiative = await _initiative(repo, initiative_id)  # serialises pledges to this initiative: the cap is exact
    initiative.require_pledgeable_in(round_)
    wallet = Account.wallet(actor.subject)
    if await ledger.balance(round_id, wallet) is None:
        raise NotFound(f"your wallet in round {round_id}")
    pledged = Account.of_initiative(Kind.PLEDGED, initiative_id)
    decision = decide_pledge(
        amount_cents, initiative.approved_amount_cents, await ledger.balance(round_id, pledged) or 0
    )
    made = Pledge(
        uuid.uuid4(), round_id, initiative_id, actor.subject, decision.take_cents, amount_cents, "active", now
    )
    await ledger.post(round_id, Entry.transfer("pledge", str(made.id), wallet, pledged, decision.take_cents))
    await repo.add_pledge(made)
    wallet_left = await ledger.balance(round_id, wallet) or 0
    pledged_now = await ledger.balance(round_id, pledged) or 0
    uow.record(
        events.PledgeMade(
            round_id=round_id,
            area_code=round_.area_code,
            pledge_id=made.id,
            initiative_id=initiative_id,
            resident_id=actor.subject,
            amount_cents=made.amount_cents,
            requested_amount_cents=amount_cents,
            wallet_balance_cents=wallet_left,
            pledged_to_initiative_cents=pledged_now,
        )
    )
    if decision.completes_award:
        await _award_by_pledges(uow, repo, ledger, round_, initiative)
    return PledgeResult(made, wallet_left, pledged_now, decision.completes_award)


async def _award_by_pledges(
    uow: UnitOfWork, repo: Repository, ledger: Ledger, round_: Round, initiative: Initiative
) -> None:
    awarded = await repo.active_pledges(round_.id, initiative.id)
    await repo.set_pledge_status([p.id for p in awarded], "awarded")
    amount = initiative.approved_amount_cents
    await ledger.post(
        round_.id,
        Entry.transfer(
            "pledge_award",
            f"{round_.id}:{initiative.id}",
            Account.of_initiative(Kind.PLEDGED, initiative.id),
            Account.of_initiative(Kind.BUDGET, initiative.id),
            amount,
        ),
    )
    await repo.set_initiative_status(initiative.id, InitiativeStatus.AWARDED, round_.id, amount)
    uow.record(
        events.InitiativeAwarded(
            round_id=round_.id,
            area_code=round_.area_code,
            initiative_id=initiative.id,
            mechanism="pledge",
            awarded_amount_cents=amount,
        )
    )


async def withdraw_pledge(
    uow: UnitOfWork, actor: Principal, round_id: uuid.UUID, pledge_id: uuid.UUID, now: datetime
) -> PledgeResult:
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    round_ = await _round(repo, round_id)
    round_.require_open(now, "withdraw a pledge")
    found = await repo.pledge(pledge_id)
    if found is None or found.round_id != round_id or found.resident_id != actor.subject:
        raise NotFound(f"pledge {pledge_id}")
    await _initiative(repo, found.initiative_id)
    current = await repo.pledge(pledge_id, for_update=True)
    assert current is not None
    if current.status != "active":
        raise Conflict(f"the pledge is {current.status} and can no longer be withdrawn", current.status)
    wallet = Account.wallet(actor.subject)
    pledged = Account.of_initiative(Kind.PLEDGED, current.initiative_id)
    await ledger.post(
        round_id, Entry.transfer("pledge_withdrawn", str(pledge_id), pledged, wallet, current.amount_cents)
    )
    await repo.set_pledge_status([pledge_id], "withdrawn")
    wallet_left = await ledger.balance(round_id, wallet) or 0
    pledged_now = await ledger.balance(round_id, pledged) or 0
    uow.record(
        events.PledgeWithdrawn(
            round_id=round_id,
            area_code=round_.area_code,
            pledge_id=pledge_id,
            initiative_id=current.initiative_id,
            resident_id=actor.subject,
            amount_cents=current.amount_cents,
            wallet_balance_cents=wallet_left,
            pledged_to_initiative_cents=pledged_now,
            reason="withdrawn_by_resident",
        )
    )
    return PledgeResult(current, wallet_left, pledged_now, False)


async def _return_pledges(
    uow: UnitOfWork, repo: Repository, ledger: Ledger, round_: Round, initiative_id: uuid.UUID | None, reason: str
) -> int:
    """Every active pledge (to one initiative, or all of the round) back to its wallet; returns the cents."""
    returned = 0
    pledges = await repo.active_pledges(round_.id, initiative_id)
    for item in pledges:
        await ledger.post(
            round_.id,
            Entry.transfer(
                "pledge_returned",
                str(item.id),
                Account.of_initiative(Kind.PLEDGED, item.initiative_id),
                Account.wallet(item.resident_id),
                item.amount_cents,
            ),
        )
        returned += item.amount_cents
        uow.record(
            events.PledgeWithdrawn(
                round_id=round_.id,
                area_code=round_.area_code,
                pledge_id=item.id,
                initiative_id=item.initiative_id,
                resident_id=item.resident_id,
                amount_cents=item.amount_cents,
                wallet_balance_cents=await ledger.balance(round_.id, Account.wallet(item.resident_id)) or 0,
                pledged_to_initiative_cents=await ledger.balance(
                    round_.id, Account.of_initiative(Kind.PLEDGED, item.initiative_id)
                )
                or 0,
                reason=reason,
            )
        )
    await repo.set_pledge_status([p.id for p in pledges], "returned")
    return returned


# -- committee awards ------------------------------------------------------------------------


async def decide_award(
    uow: UnitOfWork,
    actor: Principal,
    round_id: uuid.UUID,
    initiative_id: uuid.UUID,
    amount_cents: int,
    votes: list[Vote],
    now: datetime,
) -> tuple[uuid.UUID, bool]:
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    round_ = await _round(repo, round_id)
    _require(actor, {Role.STEERING_GROUP}, round_.area_code, "record a steering group decision")
    round_.require_mechanism(Mechanism.COMMITTEE, "award by committee")
    round_.require_open(now, "award")
    initiative = await _initiative(repo, initiative_id)
    initiative.require_pledgeable_in(round_)
    if not 0 < amount_cents <= initiative.approved_amount_cents:
        raise InvalidInput(
            f"the award must be positive and at most the approved {initiative.approved_amount_cents} cents",
            "amount_cents",
        )
    outcome = decide_committee_award(votes, round_.committee_quorum or 1, actor.subject)
    decision_id = uuid.uuid4()
    await repo.add_decision(
        decision_id,
        round_id,
        initiative_id,
        amount_cents,
        outcome.awarded,
        outcome.quorum,
        votes_json(votes),
        actor.subject,
    )
    uow.record(
        events.AwardDecided(
            round_id=round_id,
            area_code=round_.area_code,
            initiative_id=initiative_id,
            decision_id=decision_id,
            amount_cents=amount_cents,
            awarded=outcome.awarded,
            votes=[events.Vote(member_id=m, vote=v) for m, v in votes],
            quorum=outcome.quorum,
        )
    )
    if outcome.awarded:
        await ledger.post(
            round_id,
            Entry.transfer(
                "committee_award",
                str(decision_id),
                Account.pool(),
                Account.of_initiative(Kind.BUDGET, initiative_id),
                amount_cents,
            ),
        )
        await repo.set_initiative_status(initiative_id, InitiativeStatus.AWARDED, round_id, amount_cents)
        uow.record(
            events.InitiativeAwarded(
                round_id=round_id,
                area_code=round_.area_code,
                initiative_id=initiative_id,
                mechanism="committee",
                awarded_amount_cents=amount_cents,
            )
        )
    return decision_id, outcome.awarded


# -- closing ---------------------------------------------------------------------------------


async def close_round(uow: UnitOfWork, actor: Principal | None, round_id: uuid.UUID, now: datetime) -> dict[str, int]:
    """Pledges to unawarded initiatives go back to their wallets, wallets and pool go back to the
    municipality (`returned`), and a summary is published. `actor` None: the round's closing time passed."""
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    round_ = await _round(repo, round_id, lock="update")  # waits for commands in flight in the round
    if actor is not None:
        _require(actor, {Role.OFFICIAL}, round_.area_code, "close this round")
    if round_.status is RoundStatus.CLOSED:
        raise Conflict("the round is closed already", "closed")
    await _return_pledges(uow, repo, ledger, round_, None, "round_closed")
    await ledger.sweep(round_id, Kind.WALLET, Account.pool(), "wallets_expired", str(round_id))
    returned = await ledger.sweep(round_id, Kind.POOL, Account.returned(), "round_closed", str(round_id))
    candidates = [i for i in await repo.approved_in(round_) if not await repo.other_open_round_covers(i, round_id)]
    unawarded = await repo.expire_if_still_approved(candidates)  # re-checked under each initiative's row lock
    awarded_ids = await repo.awarded_in(round_id)
    awarded_cents = await repo.awarded_total(round_id)
    await repo.close_round(round_id)
    if returned:
        uow.record(
            events.FundsReturned(
                round_id=round_id,
                area_code=round_.area_code,
                initiative_id=None,
                amount_cents=returned,
                reason="round_closed",
                to="municipality",
            )
        )
    uow.record(
        events.RoundClosed(
            round_id=round_id,
            area_code=round_.area_code,
            name=round_.name,
            mechanism=round_.mechanism.value,
            summary=events.RoundSummary(
                total_budget_cents=round_.total_budget_cents,
                awarded_cents=awarded_cents,
                returned_to_pool_cents=returned,
                awarded_initiative_ids=awarded_ids,
                unawarded_initiative_ids=unawarded,
            ),
        )
    )
    return {"awarded_cents": awarded_cents, "returned_cents": returned}


async def close_due_rounds(uow_factory, now: datetime) -> int:
    async with uow_factory() as uow:
        due = await Repository(uow.connection).rounds_due(now)
    closed = 0
    for round_id in due:
        async with uow_factory() as uow:
            try:
                await close_round(uow, None, round_id, now)
            except Conflict:
                continue  # another replica closed it
            await uow.commit()
            closed += 1
    return closed


# -- spending --------------------------------------------------------------------------------


async def budget(ledger: Ledger, initiative: Initiative) -> Budget:
    """Awarded, held by claims, payable, paid and left, from the initiative's ledger accounts."""
    if initiative.round_id is None:
        return Budget(0, 0, 0, 0, 0)
    balances = {b.kind: b.balance_cents for b in await ledger.balances(initiative.round_id, str(initiative.id))}
    return Budget(
        initiative.awarded_cents or 0,
        balances.get(Kind.HELD, 0),
        balances.get(Kind.PAYABLE, 0),
        balances.get(Kind.PAID, 0),
        balances.get(Kind.BUDGET, 0),
    )


async def claim_expense(
    uow: UnitOfWork,
    actor: Principal,
    initiative_id: uuid.UUID,
    supplier: str,
    amount_cents: int,
    invoice_reference: str,
    now: datetime,
) -> tuple[Claim, Budget]:
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    found = await repo.initiative(initiative_id)
    if found is None:
        raise NotFound(f"initiative {initiative_id}")
    if found.round_id is not None:
        await _round(repo, found.round_id)
    initiative = await _initiative(repo, initiative_id)
    if actor.subject not in initiative.initiators:
        raise NotAllowed("only the initiators can claim expenses of this initiative")
    if initiative.status is not InitiativeStatus.AWARDED or initiative.round_id is None:
        raise Conflict(
            f"the initiative is {initiative.status.value}: it has no budget to spend", initiative.status.value
        )
    if amount_cents <= 0:
        raise InvalidInput("a claim is a positive amount", "amount_cents")
    claim = Claim(
        uuid.uuid4(),
        initiative_id,
        initiative.round_id,
        actor.subject,
        supplier,
        amount_cents,
        invoice_reference,
        "held",
        None,
        None,
        now,
    )
    try:
        await ledger.post(
            initiative.round_id,
            Entry.transfer(
                "claim_hold",
                str(claim.id),
                Account.of_initiative(Kind.BUDGET, initiative_id),
                Account.of_initiative(Kind.HELD, initiative_id),
                amount_cents,
            ),
        )
    except Conflict as short:
        raise Conflict("the claim is above what is left of the budget", "insufficient_funds") from short
    await repo.add_claim(claim)
    left = await ledger.balance(initiative.round_id, Account.of_initiative(Kind.BUDGET, initiative_id)) or 0
    round_ = await _round(repo, initiative.round_id, lock=None)
    uow.record(
        events.ExpenseClaimed(
            round_id=initiative.round_id,
            area_code=round_.area_code,
            initiative_id=initiative_id,
            initiators=initiative.initiators,
            claim_id=claim.id,
            claimed_by=actor.subject,
            supplier=supplier,
            amount_cents=amount_cents,
            invoice_reference=invoice_reference,
            left_cents=left,
        )
    )
    return claim, await budget(ledger, await repo.initiative(initiative_id))  # type: ignore[arg-type]


async def decide_expense(
    uow: UnitOfWork, actor: Principal, claim_id: uuid.UUID, approve: bool, reason: str | None, now: datetime
) -> tuple[Claim, Payout | None]:
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    found = await repo.claim(claim_id)
    if found is None:
        raise NotFound(f"expense claim {claim_id}")
    round_ = await _round(repo, found.round_id)
    _require(actor, {Role.OFFICIAL, Role.STEERING_GROUP}, round_.area_code, "decide on expense claims")
    initiative = await _initiative(repo, found.initiative_id)
    claim = await repo.claim(claim_id, for_update=True)
    assert claim is not None
    if claim.status != "held":
        raise Conflict(f"the claim was {claim.status} already", claim.status)
    held = Account.of_initiative(Kind.HELD, claim.initiative_id)
    common = dict(
        round_id=claim.round_id,
        area_code=round_.area_code,
        initiative_id=claim.initiative_id,
        initiators=initiative.initiators,
        claim_id=claim_id,
        decided_by=actor.subject,
        amount_cents=claim.amount_cents,
    )
    if not approve:
        if not reason or not reason.strip():
            raise InvalidInput("a declined claim needs a reason", "reason")
        # The hold goes back to the budget; when the initiative has finished meanwhile, its budget was
        # returned already, so the released amount follows it: to the pool, or to the municipality.
        finished = initiative.status is not InitiativeStatus.AWARDED
        closed = round_.status is RoundStatus.CLOSED
        release_to = (
            (Account.returned() if closed else Account.pool())
            if finished
            else (Account.of_initiative(Kind.BUDGET, claim.initiative_id))
        )
        await ledger.post(
            claim.round_id, Entry.transfer("claim_declined", str(claim_id), held, release_to, claim.amount_cents)
        )
        await repo.decide_claim(claim_id, "declined", actor.subject, reason)
        if finished:
            uow.record(
                events.FundsReturned(
                    round_id=claim.round_id,
                    area_code=round_.area_code,
                    initiative_id=claim.initiative_id,
                    amount_cents=claim.amount_cents,
                    to="municipality" if closed else "pool",
                    reason="initiative_cancelled"
                    if initiative.status is InitiativeStatus.CANCELLED
                    else "initiative_completed",
                )
            )
        left = await ledger.balance(claim.round_id, Account.of_initiative(Kind.BUDGET, claim.initiative_id)) or 0
        uow.record(events.ExpenseDeclined(**common, reason=reason, left_cents=left))
        return await repo.claim(claim_id), None  # type: ignore[return-value]
    payout_id = uuid.uuid4()
    payout = Payout(
        payout_id,
        claim_id,
        claim.initiative_id,
        claim.round_id,
        f"BK-{payout_id.hex[:16].upper()}",
        claim.amount_cents,
        "requested",
        None,
        None,
    )
    await ledger.post(
        claim.round_id,
        Entry.transfer(
            "claim_approved",
            str(claim_id),
            held,
            Account.of_initiative(Kind.PAYABLE, claim.initiative_id),
            claim.amount_cents,
        ),
    )
    await repo.decide_claim(claim_id, "approved", actor.subject, reason)
    await repo.add_payout(payout)
    uow.record(events.ExpenseApproved(**common, payout_id=payout_id))
    uow.record(
        events.PayoutRequested(
            round_id=claim.round_id,
            area_code=round_.area_code,
            initiative_id=claim.initiative_id,
            initiators=initiative.initiators,
            payout_id=payout_id,
            payout_reference=payout.reference,
            claim_id=claim_id,
            supplier=claim.supplier,
            amount_cents=claim.amount_cents,
            invoice_reference=claim.invoice_reference,
        )
    )
    return await repo.claim(claim_id), payout  # type: ignore[return-value]


async def confirm_payout(
    uow: UnitOfWork, actor: Principal, payout_id: uuid.UUID, bank_reference: str, paid_at: datetime
) -> Payout:
    if not actor.has(Role.INTEGRATION):
        raise NotAllowed("only the finance integration confirms payouts")
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    found = await repo.payout(payout_id)
    if found is None:
        raise NotFound(f"payout {payout_id}")
    round_ = await _round(repo, found.round_id)
    initiative = await _initiative(repo, found.initiative_id)
    payout = await repo.payout(payout_id, for_update=True)
    assert payout is not None
    if payout.status == "settled":
        if payout.bank_reference == bank_reference:
            return payout  # the same confirmation again: already settled, nothing moves
        raise Conflict("the payout was settled with another bank reference", "settled")
    await ledger.post(
        payout.round_id,
        Entry.transfer(
            "payout_settled",
            str(payout_id),
            Account.of_initiative(Kind.PAYABLE, payout.initiative_id),
            Account.of_initiative(Kind.PAID, payout.initiative_id),
            payout.amount_cents,
        ),
    )
    await repo.settle_payout(payout_id, bank_reference, paid_at)
    uow.record(
        events.PayoutSettled(
            round_id=payout.round_id,
            area_code=round_.area_code,
            initiative_id=payout.initiative_id,
            initiators=initiative.initiators,
            payout_id=payout_id,
            payout_reference=payout.reference,
            amount_cents=payout.amount_cents,
            bank_reference=bank_reference,
        )
    )
    return await repo.payout(payout_id)  # type: ignore[return-value]


# -- reactions to the initiatives service ----------------------------------------------------


async def initiative_approved(
    uow: UnitOfWork,
    initiative_id: uuid.UUID,
    area_code: str,
    title: str,
    initiators: list[str],
    approved_amount_cents: int,
) -> None:
    await Repository(uow.connection).upsert_approved(
        Initiative(initiative_id, area_code, title, initiators, approved_amount_cents, InitiativeStatus.APPROVED)
    )


async def initiative_withdrawn(uow: UnitOfWork, initiative_id: uuid.UUID) -> int:
    """Its pledges go back to the wallets; it can no longer receive any. Returns the cents returned."""
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    # The initiative's lock first: a pledge in flight commits before this reads the pledges, and any pledge
    # after it finds the initiative withdrawn. (Round rows are not locked here; pledge rows are.)
    initiative = await repo.initiative(initiative_id, for_update=True)
    if initiative is None or initiative.status is not InitiativeStatus.APPROVED:
        return 0
    await repo.set_initiative_status(initiative_id, InitiativeStatus.WITHDRAWN)
    rounds = [await _round(repo, r, lock=None) for r in await repo.rounds_with_active_pledges(initiative_id)]
    returned = 0
    for round_ in rounds:
        amount = await _return_pledges(uow, repo, ledger, round_, initiative_id, "initiative_withdrawn")
        if amount:
            uow.record(
                events.FundsReturned(
                    round_id=round_.id,
                    area_code=round_.area_code,
                    initiative_id=initiative_id,
                    amount_cents=amount,
                    reason="initiative_withdrawn",
                    to="wallets",
                )
            )
        returned += amount
    return returned


async def initiative_finished(uow: UnitOfWork, initiative_id: uuid.UUID, cancelled: bool) -> int:
    """Completed or cancelled: what is left of its budget returns to the round's pool (to the municipality
    when the round is closed). Claims still held stay held until decided. Returns the cents returned."""
    repo, ledger = Repository(uow.connection), Ledger(uow.connection)
    found = await repo.initiative(initiative_id)
    if found is None or found.round_id is None:
        return 0
    round_ = await _round(repo, found.round_id)
    initiative = await _initiative(repo, initiative_id)
    if initiative.status is not InitiativeStatus.AWARDED:
        return 0
    budget_account = Account.of_initiative(Kind.BUDGET, initiative_id)
    left = await ledger.balance(round_.id, budget_account) or 0
    closed = round_.status is RoundStatus.CLOSED
    if left:
        target = Account.returned() if closed else Account.pool()
        await ledger.post(
            round_.id, Entry.transfer("unspent_returned", str(initiative_id), budget_account, target, left)
        )
        uow.record(
            events.FundsReturned(
                round_id=round_.id,
                area_code=round_.area_code,
                initiative_id=initiative_id,
                amount_cents=left,
                reason="initiative_cancelled" if cancelled else "initiative_completed",
                to="municipality" if closed else "pool",
            )
        )
    await repo.set_initiative_status(
        initiative_id, InitiativeStatus.CANCELLED if cancelled else InitiativeStatus.COMPLETED
    )
    return left
