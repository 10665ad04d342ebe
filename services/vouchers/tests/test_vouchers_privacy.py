"""What the vouchers service holds about a resident, on the real stack: their export (AVG/GDPR article 15), and
forgetting them when `ResidentForgetRequested` comes through Kafka (article 17) — their id is then nowhere in the
database, while every amount, balance, decision and ledger invariant stays as it was."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from vouchers.adapters.ledger import Ledger
from vouchers.domain.pledges import claimed_wallet_reference

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as initiative_events
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.notifications import ResidentForgetRequested
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, NOTIFICATIONS_EVENTS, VOUCHERS_EVENTS
from buurtkracht_kit.auth import mint
from tests.keys import PRIVATE
from tests.personal_data import rows_naming, snapshot

pytestmark = pytest.mark.integration

WIJK, BUURT = "WK036300", "BU03630001"
INITIATIVES_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
NOTIFICATIONS_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-notifications"


def token(sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    issued = mint(
        PRIVATE, issuer="https://login.buurtkracht.local", audience="buurtkracht", subject=sub, roles=roles, areas=areas
    )
    return {"Authorization": f"Bearer {issued}"}


OFFICIAL = token("o-1", ["official"], [WIJK])


def resident(sub: str) -> dict[str, str]:
    return token(sub, ["resident"], [BUURT])


def member(sub: str) -> dict[str, str]:
    return token(sub, ["steering_group", "resident"], [WIJK])


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def new_resident() -> str:
    """A resident id that is no part of any other id or text, so a search for it finds only what is theirs."""
    return f"r-forget-{uuid.uuid4().hex[:12]}"


def new_tombstone() -> str:
    return f"forgotten-{uuid.uuid4().hex}"


async def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()


async def send(kafka_bootstrap: str, topic: str, envelope: Envelope) -> None:
    record = to_kafka(envelope)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


async def applied(service, envelope: Envelope) -> None:
    for _ in range(300):
        async with service.pool.acquire() as conn:
            outcome = await conn.fetchval("SELECT outcome FROM inbox WHERE message_id = $1", str(envelope.id))
        if outcome is not None:
            assert outcome == "processed"
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{envelope.type} never took effect")


async def approved(service, kafka_bootstrap: str, amount: int, initiators: list[str]) -> str:
    """The initiatives service approved an initiative of the buurt; its event reached this service."""
    event = initiative_events.InitiativeApproved(
        initiative_id=uuid.uuid4(),
        area_code=BUURT,
        title="Geveltuinen",
        initiators=initiators,
        official_id="o-1",
        requested_amount_cents=amount,
        approved_amount_cents=amount,
    )
    envelope = Envelope.wrap(event, INITIATIVES_SOURCE)
    await send(kafka_bootstrap, INITIATIVES_EVENTS, envelope)
    await applied(service, envelope)
    return str(event.initiative_id)


async def forget(service, kafka_bootstrap: str, resident_id: str, tombstone: str) -> None:
    """The notifications service asks to forget the resident; returns once this service applied it."""
    envelope = Envelope.wrap(
        ResidentForgetRequested(resident_id=resident_id, tombstone=tombstone), NOTIFICATIONS_SOURCE
    )
    await send(kafka_bootstrap, NOTIFICATIONS_EVENTS, envelope)
    await applied(service, envelope)


async def open_round(api, mechanism: str, headers: dict[str, str] = OFFICIAL) -> str:
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "area_code": WIJK,
        "name": "Buurtbudget",
        "total_budget_cents": 1_000_000,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=30)).isoformat(),
        "mechanism": mechanism,
    }
    body |= (
        {"voucher_amount_cents": 2_000, "allow_wallet_claims": True}
        if mechanism == "pledge"
        else {"committee_quorum": 2}
    )
    return (await ok(await api.post("/api/v1/rounds", json=body, headers=headers | key()), 201))["id"]


async def money(conn: asyncpg.Connection) -> tuple[list[tuple], list[tuple]]:
    """Every account's balance (by its id, round and kind), and every round's total per kind of account."""
    accounts = await conn.fetch("SELECT id, round_id, kind, balance_cents FROM accounts ORDER BY id")
    totals = await conn.fetch(
        "SELECT round_id, kind, sum(balance_cents) AS total FROM accounts GROUP BY round_id, kind ORDER BY 1, 2"
    )
    return [tuple(r) for r in accounts], [tuple(r) for r in totals]


async def published_all(service) -> None:
    """Wait until the relay published every event the commands recorded (the rows put in backoff stay)."""
    for _ in range(300):
        async with service.pool.acquire() as conn:
            if not await conn.fetchval("SELECT count(*) FROM outbox WHERE retry_after IS NULL"):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the relay never published the commands' events")


async def test_a_forgotten_resident_is_nowhere_in_the_database_while_every_amount_and_decision_stays(
    api, service, kafka_bootstrap
):
    me, tombstone = new_resident(), new_tombstone()
    await ok(
        await api.put(
            f"/api/v1/areas/{WIJK}/steering-group",
            json={"members": [{"member_id": me, "chair": True}, {"member_id": "sg-a"}, {"member_id": "sg-b"}]},
            headers=OFFICIAL,
        )
    )

    # a pledge round: a wallet issued to them, one pledge active and one withdrawn
    issued_round = await open_round(api, "pledge")
    await ok(
        await api.post(
            f"/api/v1/rounds/{issued_round}/wallet-issuances", json={"resident_ids": [me, "r-p1"]}, headers=OFFICIAL
        ),
        201,
    )
    pledged_to = await approved(service, kafka_bootstrap, 5_000, ["r-owner"])
    pledges = f"/api/v1/rounds/{issued_round}/pledges"
    active = await ok(
        await api.post(pledges, json={"initiative_id": pledged_to, "amount_cents": 500}, headers=resident(me) | key()),
        201,
    )
    withdrawn = await ok(
        await api.post(pledges, json={"initiative_id": pledged_to, "amount_cents": 300}, headers=resident(me) | key()),
        201,
    )
    await ok(await api.delete(f"{pledges}/{withdrawn['id']}", headers=resident(me)))
    # a pledge round they opened as an official, in which they claimed their own wallet as a resident
    claimed_round = await open_round(api, "pledge", headers=token(me, ["official"], [WIJK]))
    await ok(await api.post(f"/api/v1/rounds/{claimed_round}/wallets/me", headers=resident(me)), 201)

    # a committee round: their own initiative awarded by the other members, an expense they claimed on it (approved
    # by the official), an award they proposed and voted for, a claim they declined as a member
    committee = await open_round(api, "committee")
    awards = f"/api/v1/rounds/{committee}/awards"
    theirs = await approved(service, kafka_bootstrap, 10_000, [me, "r-co"])
    proposal = await ok(
        await api.post(awards, json={"initiative_id": theirs, "amount_cents": 10_000}, headers=member("sg-a") | key()),
        201,
    )
    await ok(await api.put(f"{awards}/{proposal['id']}/votes/me", json={"vote": "for"}, headers=member("sg-b")))
    claim = await ok(
        await api.post(
            "/api/v1/expense-claims",
            json={"initiative_id": theirs, "supplier": "Bouwmarkt", "amount_cents": 3_000, "invoice_reference": "F-1"},
            headers=resident(me) | key(),
        ),
        201,
    )
    await ok(
        await api.post(
            f"/api/v1/expense-claims/{claim['id']}/decision", json={"decision": "approve"}, headers=OFFICIAL | key()
        )
    )
    other = await approved(service, kafka_bootstrap, 4_000, ["r-owner3"])
    proposed = await ok(
        await api.post(awards, json={"initiative_id": other, "amount_cents": 4_000}, headers=member(me) | key()), 201
    )
    await ok(await api.put(f"{awards}/{proposed['id']}/votes/me", json={"vote": "for"}, headers=member("sg-a")))
    declined = await ok(
        await api.post(
            "/api/v1/expense-claims",
            json={"initiative_id": other, "supplier": "Drukkerij", "amount_cents": 1_000, "invoice_reference": "Z-9"},
            headers=resident("r-owner3") | key(),
        ),
        201,
    )
    await ok(
        await api.post(
            f"/api/v1/expense-claims/{declined['id']}/decision",
            json={"decision": "decline", "reason": "Geen bon bijgevoegd"},
            headers=member(me) | key(),
        )
    )
    # an event about them waiting in backoff to be published, a failure naming them
    async with service.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at,
                                   payload, attempts, retry_after)
               VALUES ($1, 'round', $2, 'test', $3, 'test', now(), $4, 1, now() + interval '1 day')""",
            uuid.uuid4(),
            issued_round,
            VOUCHERS_EVENTS,
            {"resident_ids": [me, "r-p1"]},
        )
        await conn.execute(
            "INSERT INTO consumer_failures (consumer, message_id, attempts, last_error) VALUES ('v', 'm-1', 1, $1)",
            f"no wallet of {me}",
        )
        assert set(await rows_naming(conn, me)) >= {
            "accounts.owner",
            "pledges.resident_id",
            "initiatives.initiators",
            "rounds.created_by",
            "expense_claims.claimed_by",
            "expense_claims.decided_by",
            "award_proposals.proposed_by",
            "award_votes.member_id",
            "steering_group_members.member_id",
            "idempotency_keys.principal",
            "idempotency_keys.response",
            "outbox.payload",
            "consumer_failures.last_error",
        }

    # their export: everything there is about them
    export = await ok(await api.get("/api/v1/me/export", headers=resident(me)))
    assert export["subject"] == me
    assert [(w["round_id"], w["balance_cents"]) for w in export["wallets"]] == [
        (issued_round, 1_500),
        (claimed_round, 2_000),
    ]
    assert [(p["id"], p["status"], p["amount_cents"]) for p in export["pledges"]] == [
        (active["id"], "active", 500),
        (withdrawn["id"], "withdrawn", 300),
    ]
    assert [(i["id"], i["initiators"], i["status"]) for i in export["initiatives"]] == [
        (theirs, [me, "r-co"], "awarded")
    ]
    assert [(c["id"], c["claimed_by"], c["decided_by"]) for c in export["expense_claims"]] == [
        (claim["id"], me, "o-1"),
        (declined["id"], "r-owner3", me),
    ]
    assert export["expense_claims"][0]["payout_reference"].startswith("BK-")
    assert export["steering_group_memberships"] == [{"area_code": WIJK, "chair": True}]
    assert [(a["id"], a["status"]) for a in export["award_proposals"]] == [(proposed["id"], "awarded")]
    assert [(v["award_id"], v["initiative_id"], v["vote"]) for v in export["award_votes"]] == [
        (proposed["id"], other, "for")
    ]
    assert [r["id"] for r in export["rounds_opened"]] == [claimed_round]
    assert export["steering_groups_registered"] == []
    assert (await api.get("/api/v1/me/export")).status_code == 401

    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []
        money_before = await money(conn)
    decisions_before = [
        await ok(await api.get(f"{awards}/{proposal['id']}", headers=OFFICIAL)),
        await ok(await api.get(f"/api/v1/expense-claims/{claim['id']}", headers=OFFICIAL)),
    ]

    await forget(service, kafka_bootstrap, me, tombstone)

    async with service.pool.acquire() as conn:
        assert set(await rows_naming(conn, me)) == set(), "the resident's id is nowhere in the database"
        assert await Ledger(conn).check() == [], "the ledger check finds nothing"
        assert await money(conn) == money_before, "every balance and every total as it was"
        wallets = await conn.fetch("SELECT round_id, balance_cents FROM accounts WHERE owner = $1", tombstone)
        references = await conn.fetch("SELECT reference FROM journal_entries WHERE reference LIKE '%:claim:%'")
        answer = await conn.fetchval("SELECT response FROM idempotency_keys WHERE response ->> 'id' = $1", claim["id"])
    assert sorted((str(w["round_id"]), w["balance_cents"]) for w in wallets) == sorted(
        [(issued_round, 1_500), (claimed_round, 2_000)]
    )
    assert [r["reference"] for r in references] == [claimed_wallet_reference(uuid.UUID(claimed_round), me)]
    assert answer["claimed_by"] == tombstone, "the official's stored answer names the tombstone"
    assert decisions_before[1]["claimed_by"] == me
    assert await ok(await api.get(f"/api/v1/expense-claims/{claim['id']}", headers=OFFICIAL)) == decisions_before[1] | {
        "claimed_by": tombstone
    }
    assert await ok(await api.get(f"{awards}/{proposal['id']}", headers=OFFICIAL)) == decisions_before[0]
    group = await ok(await api.get(f"/api/v1/areas/{WIJK}/steering-group", headers=OFFICIAL))
    assert group["members"][0] == {"member_id": tombstone, "chair": True}

    assert await ok(await api.get("/api/v1/me/export", headers=resident(me))) == {
        "subject": me,
        "wallets": [],
        "pledges": [],
        "initiatives": [],
        "expense_claims": [],
        "steering_group_memberships": [],
        "award_proposals": [],
        "award_votes": [],
        "rounds_opened": [],
        "steering_groups_registered": [],
        "ballots": [],
        "bank_accounts_given": [],
        "payouts_cancelled": [],
        "payout_batches_closed": [],
        "bank_statements_uploaded": [],
    }

    # forgetting again, and forgetting someone never seen, change nothing
    await published_all(service)
    async with service.pool.acquire() as conn:
        state = await snapshot(conn)
    await forget(service, kafka_bootstrap, me, tombstone)
    await forget(service, kafka_bootstrap, new_resident(), new_tombstone())
    async with service.pool.acquire() as conn:
        assert await snapshot(conn) == state

    # being forgotten is no way to a second wallet: the claim's journal reference stays taken
    second = await api.post(f"/api/v1/rounds/{claimed_round}/wallets/me", headers=resident(me))
    assert second.status_code == 409, second.text

    # the money goes on moving as before: the round closes, the tombstone's active pledge back to its wallet and on
    # to the pool, and the books balance
    closed = await ok(await api.post(f"/api/v1/rounds/{issued_round}/close", headers=OFFICIAL))
    assert closed["totals"]["wallet"] == 0 and closed["totals"]["pledged"] == 0
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []
        assert await conn.fetchval("SELECT status FROM pledges WHERE id = $1", uuid.UUID(active["id"])) == "returned"


async def test_a_journal_entry_changes_in_no_way(api, service):
    round_id = uuid.UUID(await open_round(api, "committee"))
    async with service.pool.acquire() as conn:
        entry = await conn.fetchrow("SELECT id, reference FROM journal_entries WHERE round_id = $1", round_id)
        changes = (
            "kind = 'other'",
            "reference = 'other'",
            "created_at = now() - interval '1 day'",
            f"reference = reference || ':{new_tombstone()}'",  # once allowed to forget a resident: no more
        )
        for change in changes:
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(f"UPDATE journal_entries SET {change} WHERE id = $1", entry["id"])
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM journal_entries WHERE id = $1", entry["id"])
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(
                "UPDATE journal_lines SET amount_cents = amount_cents + 1 WHERE entry_id = $1", entry["id"]
            )
