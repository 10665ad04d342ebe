"""The vouchers API on the real stack: a pledge round and a committee round from opening to closing, the
money at every step, each refusal moving nothing, and the ledger's invariants after it all."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from vouchers.adapters.ledger import Ledger
from vouchers.app import create
from vouchers.settings import VouchersSettings

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as initiative_events
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, VOUCHERS_EVENTS, all_topics
from buurtkracht_kit import topics
from buurtkracht_kit.auth import mint
from tests.integration.kit_domain import read_topic
from tests.keys import PRIVATE, PUBLIC

pytestmark = pytest.mark.integration

WIJK, BUURT = "WK036300", "BU03630001"
INITIATIVES_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
PREFIX = "nl.buurtkracht.vouchers."


def token(sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    issued = mint(
        PRIVATE, issuer="https://login.buurtkracht.local", audience="buurtkracht", subject=sub, roles=roles, areas=areas
    )
    return {"Authorization": f"Bearer {issued}"}


OFFICIAL = token("o-1", ["official"], [WIJK])
FINANCE = token("finance", ["integration"], [])


def resident(sub: str, buurt: str = BUURT) -> dict[str, str]:
    return token(sub, ["resident"], [buurt])


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory):
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, all_topics())
    public_key = tmp_path_factory.mktemp("keys") / "public.pem"
    public_key.write_text(PUBLIC)
    settings = VouchersSettings(
        service_name=f"vouchers-test-{uuid.uuid4().hex[:6]}",
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=public_key,
        consumer_start="latest",
        relay_poll_interval_seconds=0.1,
        ledger_check_seconds=3600,
    )
    service = create(settings)
    async with LifespanManager(service.app):
        for _ in range(300):
            if await service.consuming():
                break
            await asyncio.sleep(0.1)
        assert await service.consuming()
        yield service


@pytest.fixture(scope="module")
async def api(service):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as client:
        yield client


async def approve_initiative(service, kafka_bootstrap: str, amount: int, initiators=("r-owner",), area=BUURT):
    """The initiatives service approves an initiative: its event reaches this service through Kafka."""
    initiative_id = uuid.uuid4()
    event = initiative_events.InitiativeApproved(
        initiative_id=initiative_id,
        area_code=area,
        title="Geveltuinen",
        initiators=list(initiators),
        official_id="o-1",
        requested_amount_cents=amount,
        approved_amount_cents=amount,
    )
    record = to_kafka(Envelope.wrap(event, INITIATIVES_SOURCE))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    for _ in range(300):
        async with service.pool.acquire() as conn:
            if await conn.fetchval("SELECT status FROM initiatives WHERE id = $1", initiative_id) == "approved":
                return initiative_id
        await asyncio.sleep(0.1)
    raise AssertionError("the approved initiative never arrived")


async def open_round(api, mechanism="pledge", **extra) -> dict:
    now = datetime.now(UTC)
    body = {
        "area_code": WIJK,
        "name": "Buurtbudget De Pijp 2026",
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
    answer = await api.post("/api/v1/rounds", json=body | extra, headers=OFFICIAL | key())
    assert answer.status_code == 201, answer.text
    return answer.json()


async def totals(api, round_id: str) -> dict[str, int]:
    return (await api.get(f"/api/v1/rounds/{round_id}", headers=OFFICIAL)).json()["totals"]


async def refused(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


async def test_a_pledge_round_from_wallets_to_payout_and_closing(api, service, kafka_bootstrap):
    round_ = await open_round(api)
    rid = round_["id"]
    assert round_["totals"] == {"pool": 1_000_000}
    initiative = await approve_initiative(service, kafka_bootstrap, 5_000)

    issued = await api.post(
        f"/api/v1/rounds/{rid}/wallet-issuances", json={"resident_ids": ["r-1", "r-2", "r-2"]}, headers=OFFICIAL
    )
    assert issued.status_code == 201 and issued.json() == {
        "issued": 2,
        "already_had_a_wallet": 0,
        "issued_cents": 4_000,
    }
    csv_upload = await api.post(
        f"/api/v1/rounds/{rid}/wallet-issuances",
        content=b"resident_id\nr-2\nr-3\nr-4\n",
        headers=OFFICIAL | {"content-type": "text/csv"},
    )
    assert csv_upload.json() == {"issued": 2, "already_had_a_wallet": 1, "issued_cents": 4_000}
    claimed = await api.post(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-5"))
    assert claimed.status_code == 201 and claimed.json()["balance_cents"] == 2_000
    await refused(await api.post(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-5")), 409)
    assert await totals(api, rid) == {"pool": 990_000, "wallet": 10_000}

    pledge_body = {"initiative_id": str(initiative), "amount_cents": 2_000}
    same_key = key()
    first = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-1") | same_key)
    assert first.status_code == 201 and first.json()["wallet_balance_cents"] == 0
    replay = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-1") | same_key)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges",
            json=pledge_body | {"amount_cents": 1_000},
            headers=resident("r-1") | same_key,
        ),
        409,
    )
    problem = await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-1")), 400
    )
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    problem = await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges", json=pledge_body | {"amount_cents": 2_001}, headers=resident("r-2") | key()
        ),
        409,
    )
    assert problem["type"].endswith("/insufficient-funds")
    await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges", json=pledge_body | {"amount_cents": 1.5}, headers=resident("r-2") | key()
        ),
        422,
    )
    await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-none") | key()), 404
    )
    await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges",
            json={"initiative_id": str(uuid.uuid4()), "amount_cents": 100},
            headers=resident("r-2") | key(),
        ),
        404,
    )
    assert await totals(api, rid) == {"pool": 990_000, "wallet": 8_000, "pledged": 2_000}

    second = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-2") | key())
    withdrawn = await api.delete(f"/api/v1/rounds/{rid}/pledges/{second.json()['id']}", headers=resident("r-2"))
    assert withdrawn.status_code == 200 and withdrawn.json()["wallet_balance_cents"] == 2_000
    await refused(await api.delete(f"/api/v1/rounds/{rid}/pledges/{first.json()['id']}", headers=resident("r-2")), 404)
    await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-2") | key())
    last = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-3") | key())
    assert last.json()["amount_cents"] == 1_000 and last.json()["requested_cents"] == 2_000, "the last pledge is capped"
    assert last.json()["wallet_balance_cents"] == 1_000 and last.json()["initiative_awarded"] is True
    problem = await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-4") | key()), 409
    )
    assert problem["current_status"] == "awarded"
    await refused(await api.delete(f"/api/v1/rounds/{rid}/pledges/{first.json()['id']}", headers=resident("r-1")), 409)
    assert await totals(api, rid) == {"pool": 990_000, "wallet": 5_000, "pledged": 0, "budget": 5_000}

    budget = await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))
    assert budget.json() | {"round_id": None} == {
        "initiative_id": str(initiative),
        "round_id": None,
        "status": "awarded",
        "awarded_cents": 5_000,
        "held_cents": 0,
        "payable_cents": 0,
        "paid_cents": 0,
        "returned_cents": 0,
        "left_cents": 5_000,
    }
    claim_body = {
        "initiative_id": str(initiative),
        "supplier": "Tuincentrum Amstel",
        "amount_cents": 3_000,
        "invoice_reference": "F-2026-0042",
    }
    await refused(await api.post("/api/v1/expense-claims", json=claim_body, headers=resident("r-1") | key()), 403)
    await refused(
        await api.post(
            "/api/v1/expense-claims",
            json=claim_body | {"amount_cents": 5_001, "invoice_reference": "F-big"},
            headers=resident("r-owner") | key(),
        ),
        409,
    )
    claim = await api.post("/api/v1/expense-claims", json=claim_body, headers=resident("r-owner") | key())
    assert claim.status_code == 201 and claim.json()["status"] == "held"
    await refused(await api.post("/api/v1/expense-claims", json=claim_body, headers=resident("r-owner") | key()), 409)
    left = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (left["held_cents"], left["left_cents"]) == (3_000, 2_000)
    await refused(
        await api.post(
            f"/api/v1/expense-claims/{claim.json()['id']}/decision",
            json={"decision": "approve"},
            headers=resident("r-owner") | key(),
        ),
        403,
    )
    await refused(
        await api.post(
            f"/api/v1/expense-claims/{claim.json()['id']}/decision",
            json={"decision": "decline"},
            headers=OFFICIAL | key(),
        ),
        422,
    )
    decided = await api.post(
        f"/api/v1/expense-claims/{claim.json()['id']}/decision", json={"decision": "approve"}, headers=OFFICIAL | key()
    )
    assert decided.json()["status"] == "approved" and decided.json()["payout_reference"].startswith("BK-")
    payout_id = decided.json()["payout_id"]
    confirmation = {"bank_reference": "NL-SEPA-778899", "paid_at": datetime.now(UTC).isoformat()}
    await refused(await api.post(f"/api/v1/payouts/{payout_id}/confirmation", json=confirmation, headers=OFFICIAL), 403)
    settled = await api.post(f"/api/v1/payouts/{payout_id}/confirmation", json=confirmation, headers=FINANCE)
    assert settled.json()["status"] == "settled"
    again = await api.post(f"/api/v1/payouts/{payout_id}/confirmation", json=confirmation, headers=FINANCE)
    assert again.status_code == 200 and again.json() == settled.json()
    await refused(
        await api.post(
            f"/api/v1/payouts/{payout_id}/confirmation",
            json=confirmation | {"bank_reference": "other"},
            headers=FINANCE,
        ),
        409,
    )

    async with service.unit_of_work() as uow:  # the initiatives service reports the initiative completed
        from vouchers.service import reactions

        assert await reactions.initiative_finished(uow, initiative, cancelled=False) == 2_000
        await uow.commit()
    spent = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (spent["paid_cents"], spent["returned_cents"], spent["left_cents"]) == (3_000, 2_000, 0)

    await refused(await api.post(f"/api/v1/rounds/{rid}/close", headers=resident("r-1")), 403)
    closed = await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL)
    assert closed.json()["status"] == "closed"
    assert closed.json()["totals"] == {
        "pool": 0,
        "wallet": 0,
        "pledged": 0,
        "budget": 0,
        "held": 0,
        "payable": 0,
        "paid": 3_000,
        "returned": 997_000,
    }
    await refused(await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL), 409)
    await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-4") | key()), 409
    )

    ledger = await api.get(f"/api/v1/rounds/{rid}/ledger", headers=OFFICIAL)
    assert ledger.json()["problems"] == []
    assert {e["kind"] for e in ledger.json()["entries"]} >= {
        "round_opened",
        "wallets_issued",
        "pledge",
        "pledge_award",
        "claim_hold",
        "claim_approved",
        "payout_settled",
        "unspent_returned",
        "round_closed",
    }
    await refused(await api.get(f"/api/v1/rounds/{rid}/ledger", headers=resident("r-1")), 403)

    records = [
        r for r in await read_topic(kafka_bootstrap, VOUCHERS_EVENTS, at_least=1, timeout=10) if r.key == rid.encode()
    ]
    types = [dict(r.headers)["ce_type"].decode().removeprefix(PREFIX) for r in sorted(records, key=lambda r: r.offset)]
    assert types[0] == "round-opened.v1" and types[-1] == "round-closed.v1"
    assert types.count("initiative-awarded.v1") == 1 and types.count("payout-requested.v1") == 1


async def test_a_committee_round_awards_by_quorum(api, service, kafka_bootstrap):
    round_ = await open_round(api, mechanism="committee")
    rid = round_["id"]
    initiative = await approve_initiative(service, kafka_bootstrap, 40_000)
    member = token("sg-1", ["steering_group"], [WIJK])
    decision = {
        "initiative_id": str(initiative),
        "amount_cents": 40_000,
        "votes": [{"member_id": "sg-1", "vote": "for"}],
    }
    problem = await refused(await api.post(f"/api/v1/rounds/{rid}/awards", json=decision, headers=member | key()), 409)
    assert problem["current_status"] == "no_quorum"
    await refused(await api.post(f"/api/v1/rounds/{rid}/awards", json=decision, headers=OFFICIAL | key()), 403)
    outsider = token("sg-9", ["steering_group"], ["WK036302"])
    await refused(await api.post(f"/api/v1/rounds/{rid}/awards", json=decision, headers=outsider | key()), 403)
    too_much = decision | {
        "amount_cents": 40_001,
        "votes": [{"member_id": "sg-1", "vote": "for"}, {"member_id": "sg-2", "vote": "for"}],
    }
    await refused(await api.post(f"/api/v1/rounds/{rid}/awards", json=too_much, headers=member | key()), 422)
    assert await totals(api, rid) == {"pool": 1_000_000}
    rejected = decision | {
        "votes": [
            {"member_id": "sg-1", "vote": "for"},
            {"member_id": "sg-2", "vote": "against"},
            {"member_id": "sg-3", "vote": "against"},
        ]
    }
    answer = await api.post(f"/api/v1/rounds/{rid}/awards", json=rejected, headers=member | key())
    assert answer.status_code == 201 and answer.json()["awarded"] is False
    awarded = decision | {
        "votes": [
            {"member_id": "sg-1", "vote": "for"},
            {"member_id": "sg-2", "vote": "for"},
            {"member_id": "sg-3", "vote": "abstain"},
        ]
    }
    answer = await api.post(f"/api/v1/rounds/{rid}/awards", json=awarded, headers=member | key())
    assert answer.json()["awarded"] is True
    assert await totals(api, rid) == {"pool": 960_000, "budget": 40_000}
    await refused(await api.post(f"/api/v1/rounds/{rid}/awards", json=awarded, headers=member | key()), 409)
    await refused(await api.post(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-1")), 409)
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []


async def test_a_withdrawn_initiative_gets_its_pledges_returned_through_kafka(api, service, kafka_bootstrap):
    round_ = await open_round(api)
    rid = round_["id"]
    initiative = await approve_initiative(service, kafka_bootstrap, 10_000)
    await api.post(f"/api/v1/rounds/{rid}/wallet-issuances", json={"resident_ids": ["r-w1"]}, headers=OFFICIAL)
    await api.post(
        f"/api/v1/rounds/{rid}/pledges",
        json={"initiative_id": str(initiative), "amount_cents": 1_500},
        headers=resident("r-w1") | key(),
    )
    withdrawn = initiative_events.InitiativeWithdrawn(
        initiative_id=initiative,
        area_code=BUURT,
        title="Geveltuinen",
        initiators=["r-owner"],
        withdrawn_by="r-owner",
        previous_status="approved",
    )
    record = to_kafka(Envelope.wrap(withdrawn, INITIATIVES_SOURCE))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    for _ in range(2):  # delivered twice: returned once
        await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
    await producer.stop()
    for _ in range(100):
        wallet = (await api.get(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-w1"))).json()
        if wallet["balance_cents"] == 2_000:
            break
        await asyncio.sleep(0.1)
    assert wallet["balance_cents"] == 2_000 and wallet["pledges"][0]["status"] == "returned"
    await asyncio.sleep(1)
    assert (await api.get(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-w1"))).json()[
        "balance_cents"
    ] == 2_000
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []


async def test_round_input_is_validated(api):
    now = datetime.now(UTC)
    base = {
        "area_code": WIJK,
        "name": "x",
        "total_budget_cents": 1000,
        "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "mechanism": "pledge",
        "voucher_amount_cents": 100,
    }
    problem = await refused(
        await api.post("/api/v1/rounds", json=base | {"total_budget_cents": 10.5}, headers=OFFICIAL | key()), 422
    )
    assert problem["errors"][0]["field"] == "total_budget_cents"
    problem = await refused(
        await api.post("/api/v1/rounds", json=base | {"closes_at": now.isoformat()}, headers=OFFICIAL | key()), 422
    )
    assert problem["errors"][0]["field"] == "closes_at"
    problem = await refused(
        await api.post("/api/v1/rounds", json=base | {"voucher_amount_cents": None}, headers=OFFICIAL | key()), 422
    )
    assert problem["errors"][0]["field"] == "voucher_amount_cents"
    await refused(
        await api.post("/api/v1/rounds", json=base | {"area_code": "WK036302"}, headers=OFFICIAL | key()), 403
    )
    await refused(await api.post("/api/v1/rounds", json=base, headers=resident("r-1") | key()), 403)
    await refused(await api.get(f"/api/v1/rounds/{uuid.uuid4()}", headers=OFFICIAL), 404)


async def test_opening_a_round_takes_an_idempotency_key_and_a_retry_opens_no_second_funded_round(api, service):
    now = datetime.now(UTC)
    body = {
        "area_code": WIJK,
        "name": f"Buurtbudget {uuid.uuid4()}",
        "total_budget_cents": 250_000,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=30)).isoformat(),
        "mechanism": "committee",
        "committee_quorum": 1,
    }
    problem = await refused(await api.post("/api/v1/rounds", json=body, headers=OFFICIAL), 400)
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    same_key = key()
    first = await api.post("/api/v1/rounds", json=body, headers=OFFICIAL | same_key)
    retried = await api.post("/api/v1/rounds", json=body, headers=OFFICIAL | same_key)
    assert first.status_code == retried.status_code == 201, retried.text
    assert retried.json() == first.json() and retried.headers.get("idempotent-replayed") == "true"
    await refused(
        await api.post("/api/v1/rounds", json=body | {"total_budget_cents": 1}, headers=OFFICIAL | same_key), 409
    )
    async with service.pool.acquire() as conn:
        opened = await conn.fetch("SELECT id FROM rounds WHERE name = $1", body["name"])
        assert [r["id"] for r in opened] == [uuid.UUID(first.json()["id"])], "one round, funded once"
        assert await Ledger(conn).check() == []


async def test_finance_confirms_a_payout_by_its_reference_and_a_confirmation_for_another_amount_moves_nothing(
    api, service, kafka_bootstrap
):
    round_ = await open_round(api, mechanism="committee")
    initiative = await approve_initiative(service, kafka_bootstrap, 8_000)
    member = token("sg-1", ["steering_group"], [WIJK])
    votes = [{"member_id": "sg-1", "vote": "for"}, {"member_id": "sg-2", "vote": "for"}]
    awarded = await api.post(
        f"/api/v1/rounds/{round_['id']}/awards",
        json={"initiative_id": str(initiative), "amount_cents": 8_000, "votes": votes},
        headers=member | key(),
    )
    assert awarded.json()["awarded"] is True
    claim = await api.post(
        "/api/v1/expense-claims",
        json={
            "initiative_id": str(initiative),
            "supplier": "Drukkerij",
            "amount_cents": 2_500,
            "invoice_reference": "D-7",
        },
        headers=resident("r-owner") | key(),
    )
    approved = await api.post(
        f"/api/v1/expense-claims/{claim.json()['id']}/decision", json={"decision": "approve"}, headers=OFFICIAL | key()
    )
    reference, payout_id = approved.json()["payout_reference"], approved.json()["payout_id"]
    by_reference = f"/api/v1/payouts/by-reference/{reference}/confirmation"
    confirmation = {"bank_reference": "NL-SEPA-4455", "paid_at": datetime.now(UTC).isoformat(), "amount_cents": 2_500}

    problem = await refused(
        await api.post(by_reference, json=confirmation | {"amount_cents": 2_499}, headers=FINANCE), 409
    )
    assert problem["type"].endswith("/amount-mismatch") and "amount_cents" in problem["detail"]
    budget = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (budget["payable_cents"], budget["paid_cents"]) == (2_500, 0), "a refused confirmation moves nothing"
    await refused(await api.post(by_reference, json=confirmation, headers=OFFICIAL), 403)
    await refused(
        await api.post("/api/v1/payouts/by-reference/BK-UNKNOWN/confirmation", json=confirmation, headers=FINANCE), 404
    )
    await refused(await api.post(by_reference, json=confirmation | {"amount_cents": None}, headers=FINANCE), 422)

    settled = await api.post(by_reference, json=confirmation, headers=FINANCE)
    assert settled.status_code == 200, settled.text
    assert settled.json()["id"] == payout_id and settled.json()["status"] == "settled"
    again = await api.post(by_reference, json=confirmation, headers=FINANCE)
    assert again.status_code == 200 and again.json() == settled.json()
    by_id = f"/api/v1/payouts/{payout_id}/confirmation"
    problem = await refused(await api.post(by_id, json=confirmation | {"amount_cents": 3_000}, headers=FINANCE), 409)
    assert problem["type"].endswith("/amount-mismatch") and "amount_cents" in problem["detail"]
    assert (await api.post(by_id, json=confirmation, headers=FINANCE)).json() == settled.json()
    budget = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (budget["payable_cents"], budget["paid_cents"], budget["left_cents"]) == (0, 2_500, 5_500)
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []
