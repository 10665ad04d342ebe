"""Pledges decided together (group commit) on the real PostgreSQL: a batch decides exactly what the same pledges made
one after another decide — the same acceptances, caps, refusals and award, the same balances — and over HTTP the
pledges that arrive together share transactions, a repeated Idempotency-Key still moves money once, a refusal
stores nothing, and a batch that fails as a whole is made pledge by pledge instead of failing its requests."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime
from functools import partial

import pytest
from vouchers.adapters.ledger import Ledger
from vouchers.app import SPEC
from vouchers.domain.ledger import Kind
from vouchers.domain.rounds import Mechanism
from vouchers.service import reactions, wallets
from vouchers.service.pledges import PledgeRequest, PledgeResult, pledge, pledge_together

from buurtkracht_contracts.refusals import DomainError
from buurtkracht_kit import migrations
from buurtkracht_kit.auth import Principal, Role, mint
from buurtkracht_kit.db import create_pool
from tests.keys import PRIVATE

pytestmark = pytest.mark.integration

WIJK, BUURT = "WK036300", "BU03630001"
OFFICIAL = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({WIJK}))
AMOUNTS = [3_000, 5_000, 1_000_000]  # the approved amounts of the initiatives: the first two get awarded


def resident(subject: str) -> Principal:
    return Principal(subject, frozenset({Role.RESIDENT}), frozenset({BUURT}))


@pytest.fixture(scope="module")
async def pool(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, SPEC.migrations)
    pool = await create_pool(scratch_database, min_size=2, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


async def twin(once, open_round, residents: list[str]) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A pledge round with a wallet of 2,000 cents for each resident, and one approved initiative per amount."""
    round_id = (await open_round(Mechanism.PLEDGE, WIJK, total=1_000_000, voucher=2_000)).id
    await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, residents, datetime.now(UTC)))
    initiatives = []
    for amount in AMOUNTS:
        initiatives.append(uuid.uuid4())
        await once(
            partial(
                reactions.initiative_approved,
                initiative_id=initiatives[-1],
                area_code=BUURT,
                title="Geveltuinen",
                initiators=["i"],
                approved_amount_cents=amount,
            )
        )
    return round_id, initiatives


def outcome(result: object) -> tuple:
    """What a pledge's outcome is, without the ids that differ between twins."""
    if isinstance(result, PledgeResult):
        return ("accepted", result.pledge.amount_cents, result.wallet_balance_cents, result.awarded)
    assert isinstance(result, DomainError), result
    return ("refused", type(result).__name__, getattr(result, "current_status", None))


async def books(pool, round_id: uuid.UUID, initiatives: list[uuid.UUID]) -> dict:
    async with pool.acquire() as conn:
        ledger = Ledger(conn)
        assert await ledger.check(round_id) == []
        named = {str(initiative_id): f"initiative-{i}" for i, initiative_id in enumerate(initiatives)}
        statuses = await conn.fetch("SELECT id, status FROM initiatives WHERE id = ANY($1::uuid[])", initiatives)
        return {(b.kind, named.get(b.owner, b.owner)): b.balance_cents for b in await ledger.balances(round_id)} | {
            named[str(r["id"])]: r["status"] for r in statuses
        }


async def test_a_batch_decides_what_the_same_pledges_one_after_another_decide(pool, once, open_round):
    residents = [f"r-{n}" for n in range(12)]
    chance = random.Random(20261130)  # a fixed sequence: the same test every run
    plan = [
        (
            chance.choice([*residents, "r-without-wallet"]),
            chance.randrange(len(AMOUNTS) + 1),
            chance.randrange(1, 1_800),
        )
        for _ in range(60)
    ]
    now = datetime.now(UTC)

    def requests(round_id: uuid.UUID, initiatives: list[uuid.UUID]) -> list[PledgeRequest]:
        unknown = uuid.uuid4()  # the last choice: an initiative the service does not know
        return [
            PledgeRequest(resident(who), round_id, [*initiatives, unknown][which], cents) for who, which, cents in plan
        ]

    batched_round, batched_initiatives = await twin(once, open_round, residents)
    batched = await once(lambda uow: pledge_together(uow, requests(batched_round, batched_initiatives), now))
    alone = [i for i, result in enumerate(batched) if result is None]

    async def made_alone(request: PledgeRequest) -> object:
        try:
            return await once(
                lambda uow: pledge(
                    uow, request.actor, request.round_id, request.initiative_id, request.amount_cents, now
                )
            )
        except DomainError as refusal:
            return refusal

    for i in alone:
        batched[i] = await made_alone(requests(batched_round, batched_initiatives)[i])

    serial_round, serial_initiatives = await twin(once, open_round, residents)
    serial: list[object] = [None] * len(plan)
    for i in [i for i in range(len(plan)) if i not in alone] + alone:  # the order the batch made them in
        serial[i] = await made_alone(requests(serial_round, serial_initiatives)[i])

    assert [outcome(r) for r in batched] == [outcome(r) for r in serial]
    assert await books(pool, batched_round, batched_initiatives) == await books(pool, serial_round, serial_initiatives)
    decided = [outcome(r) for r in batched]
    # the plan exercises every way a pledge can go, so this test cannot pass by accident
    assert sum(d[0] == "accepted" for d in decided) >= 20
    assert {d[1] for d in decided if d[0] == "refused"} >= {"NotFound", "InsufficientFunds", "Conflict"}
    assert alone and any(outcome(batched[i])[-1] is True for i in alone)  # an award, made alone


# -- over HTTP ---------------------------------------------------------------------------------------------


def bearer(sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    issued = mint(
        PRIVATE, issuer="https://login.buurtkracht.local", audience="buurtkracht", subject=sub, roles=roles, areas=areas
    )
    return {"Authorization": f"Bearer {issued}"}


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory, running_service):
    async with running_service(
        scratch_database, kafka_bootstrap, tmp_path_factory.mktemp("keys"), pledge_batch_max=16
    ) as service:
        yield service


async def http_round(api, service, residents: list[str], amount: int) -> tuple[str, uuid.UUID]:
    official = bearer("o-1", ["official"], [WIJK])
    answer = await api.post(
        "/api/v1/rounds",
        json={
            "area_code": WIJK,
            "name": "Buurtbudget",
            "total_budget_cents": 10_000_000,
            "opens_at": "2026-01-01T00:00:00Z",
            "closes_at": "2099-01-01T00:00:00Z",
            "mechanism": "pledge",
            "voucher_amount_cents": 2_000,
        },
        headers=official | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 201, answer.text
    round_id = answer.json()["id"]
    issued = await api.post(
        f"/api/v1/rounds/{round_id}/wallet-issuances", json={"resident_ids": residents}, headers=official
    )
    assert issued.status_code in (200, 201), issued.text
    initiative_id = uuid.uuid4()
    async with service.unit_of_work() as uow:
        await reactions.initiative_approved(uow, initiative_id, BUURT, "Geveltuinen", ["i"], amount)
        await uow.commit()
    return round_id, initiative_id


async def test_pledges_that_arrive_together_share_transactions_and_keys_still_move_money_once(api, service):
    residents = [f"h-{n}" for n in range(40)]
    round_id, initiative_id = await http_round(api, service, residents, amount=1_000_000)
    headers = {who: bearer(who, ["resident"], [BUURT]) for who in residents}
    keys = {who: str(uuid.uuid4()) for who in residents}

    def send(who: str, cents: int, key: str | None = None) -> asyncio.Future:
        return api.post(
            f"/api/v1/rounds/{round_id}/pledges",
            json={"initiative_id": str(initiative_id), "amount_cents": cents},
            headers=headers[who] | {"Idempotency-Key": key or keys[who]},
        )

    desk_before = getattr(service.app.state, "pledge_desk", None)
    batches_before = desk_before.batches if desk_before else 0
    # each resident pledges 1,500 twice with one key (a double click), the last ten ask for more than they hold
    answers = await asyncio.gather(
        *(send(who, 2_500 if n >= 30 else 1_500) for n, who in enumerate(residents) for _ in range(2))
    )
    desk = service.app.state.pledge_desk
    assert desk.batches - batches_before < len(answers)  # they did not each take a transaction of their own

    accepted = [a for a in answers if a.status_code == 201]
    replayed = [a for a in accepted if a.headers.get("Idempotent-Replayed") == "true"]
    refused = [a for a in answers if a.status_code == 409]
    assert len(accepted) == 60 and len(replayed) == 30, [a.text for a in answers if a.status_code not in (201, 409)]
    assert len(refused) == 20 and all(a.headers["content-type"] == "application/problem+json" for a in refused)
    assert len({a.json()["id"] for a in accepted}) == 30  # a replay answers the first pledge, it makes no second
    # a refused pledge stored nothing under its key: the same key with an amount the wallet holds is a new pledge
    retried = await send("h-35", 2_000)
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried.headers

    async with service.pool.acquire() as conn:
        ledger = Ledger(conn)
        assert await ledger.check() == []
        pledged = {
            b.owner: b.balance_cents for b in await ledger.balances(uuid.UUID(round_id)) if b.kind is Kind.PLEDGED
        }
        count = await conn.fetchval("SELECT count(*) FROM pledges WHERE round_id = $1", uuid.UUID(round_id))
    assert pledged == {str(initiative_id): 30 * 1_500 + 2_000} and count == 31


async def test_a_batch_that_fails_as_a_whole_is_made_pledge_by_pledge(api, service, monkeypatch):
    residents = [f"f-{n}" for n in range(12)]
    round_id, initiative_id = await http_round(api, service, residents, amount=12 * 1_000)
    failures = []

    async def fails_once(self, entries):
        failures.append(len(entries))
        raise ConnectionResetError("the connection went away mid-batch")

    monkeypatch.setattr(Ledger, "post_together", fails_once)
    answers = await asyncio.gather(
        *(
            api.post(
                f"/api/v1/rounds/{round_id}/pledges",
                json={"initiative_id": str(initiative_id), "amount_cents": 1_000},
                headers=bearer(who, ["resident"], [BUURT]) | {"Idempotency-Key": str(uuid.uuid4())},
            )
            for who in residents
        )
    )
    assert failures  # the batch path was taken, and failed
    assert [a.status_code for a in answers] == [201] * 12, [a.text for a in answers]
    assert sum(a.json()["initiative_awarded"] for a in answers) == 1  # the twelfth completed the amount: one award
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []
        status = await conn.fetchval("SELECT status FROM initiatives WHERE id = $1", initiative_id)
    assert status == "awarded"
