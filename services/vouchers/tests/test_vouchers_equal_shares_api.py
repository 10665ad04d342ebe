"""Equal Shares rounds on the real stack: residents of the area cast and change ballots (every refusal moving
nothing), the close decides with the Method of Equal Shares and books each funded initiative as an award with its
events, the ledger balances, a second close and a close that fails halfway book nothing twice, and the outcome and
the Pabulib file are public once the round closed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from pabutools.election.pabulib import parse_pabulib_from_string
from test_vouchers_api import OFFICIAL, approve_initiative, events_keyed, key, refused, resident, token
from vouchers.adapters.equal_shares import EqualSharesRepository
from vouchers.adapters.ledger import Ledger
from vouchers.service import rounds

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.notifications import ResidentForgetRequested
from buurtkracht_contracts.topics import NOTIFICATIONS_EVENTS
from buurtkracht_kit.auth import Principal, Role

pytestmark = pytest.mark.integration

WIJK, BUURT = "WK036300", "BU03630001"

WARSAW = Path(__file__).parent / "data" / "poland_warszawa_2017_plac-wojska-polskiego.pb"


async def open_equal_shares_round(api, total: int = 100_000) -> dict:
    now = datetime.now(UTC)
    body = {
        "area_code": WIJK,
        "name": "Gelijke delen De Pijp",
        "total_budget_cents": total,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=30)).isoformat(),
        "mechanism": "equal_shares",
    }
    answer = await api.post("/api/v1/rounds", json=body, headers=OFFICIAL | key())
    assert answer.status_code == 201, answer.text
    assert answer.json()["voucher_amount_cents"] is None and answer.json()["committee_quorum"] is None
    return answer.json()


async def ballot(api, rid: str, who: str, *initiatives, buurt: str = "BU03630001"):
    return await api.put(
        f"/api/v1/rounds/{rid}/ballots/me",
        json={"initiative_ids": [str(i) for i in initiatives]},
        headers=resident(who, buurt),
    )


async def test_residents_cast_ballots_and_the_close_funds_what_equal_shares_decides_with_the_books_balanced(
    api, service, kafka_bootstrap
):
    # two groups of neighbours: 6 want the playground and the benches, 4 want the garden; the budget is 1000 euros
    playground = await approve_initiative(service, kafka_bootstrap, 40_000)
    benches = await approve_initiative(service, kafka_bootstrap, 40_000)
    garden = await approve_initiative(service, kafka_bootstrap, 40_000)
    nobody = await approve_initiative(service, kafka_bootstrap, 10_000)
    elsewhere = await approve_initiative(service, kafka_bootstrap, 10_000, area="BU03630700")  # another wijk
    rid = (await open_equal_shares_round(api))["id"]

    # refusals, each changing nothing
    problem = await refused(await ballot(api, rid, "r-es-x", playground, playground), 422)
    assert problem["errors"][0]["field"] == "initiative_ids"
    problem = await refused(await ballot(api, rid, "r-es-x", uuid.uuid4()), 422)
    assert problem["errors"][0]["field"] == "initiative_ids"
    problem = await refused(await ballot(api, rid, "r-es-x", elsewhere), 422)
    assert problem["errors"][0]["field"] == "initiative_ids"
    await refused(await ballot(api, rid, "r-es-x", playground, buurt="BU03630700"), 403)  # lives elsewhere
    answer = await api.put(f"/api/v1/rounds/{rid}/ballots/me", json={"initiative_ids": []}, headers=OFFICIAL)
    await refused(answer, 403)  # an official is no resident
    answer = await api.put(f"/api/v1/rounds/{rid}/ballots/me", json={"initiative_ids": "x"}, headers=resident("r-x"))
    await refused(answer, 422)
    await refused(await api.get(f"/api/v1/rounds/{rid}/ballots/me", headers=resident("r-es-x")), 404)
    pledge_round = (await api.get("/api/v1/rounds", headers=OFFICIAL)).json()["items"]
    assert all(r["id"] != rid or r["mechanism"] == "equal_shares" for r in pledge_round)

    for n in range(6):
        assert (await ballot(api, rid, f"r-es-a{n}", playground, benches)).status_code == 200
    for n in range(4):
        assert (await ballot(api, rid, f"r-es-b{n}", garden)).status_code == 200
    # one changes their mind, then casts the same ballot again (no change, no event)
    assert (await ballot(api, rid, "r-es-b3", benches)).status_code == 200
    mine = await ballot(api, rid, "r-es-b3", garden, benches)
    again = await ballot(api, rid, "r-es-b3", benches, garden)
    assert again.status_code == 200 and again.json()["cast_at"] == mine.json()["cast_at"]
    read = await api.get(f"/api/v1/rounds/{rid}/ballots/me", headers=resident("r-es-b3"))
    assert set(read.json()["initiative_ids"]) == {str(garden), str(benches)}
    await refused(await api.get(f"/api/v1/rounds/{rid}/outcome", headers=resident("r-es-b3")), 409)

    closed = await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL)
    assert closed.status_code == 200, closed.text
    await refused(await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL), 409)
    await refused(await ballot(api, rid, "r-es-a0", garden), 409)  # closed: no more ballots

    # 10 voters of 100 euro each: the 6 afford the playground and the benches (400 each), the 4 the garden
    outcome = (await api.get(f"/api/v1/rounds/{rid}/outcome", headers=resident("someone-else", "BU03630700"))).json()
    funded = {r["initiative_id"] for r in outcome["results"] if r["funded"]}
    assert outcome["voters"] == 10 and outcome["funded_cents"] == sum(
        r["cost_cents"] for r in outcome["results"] if r["funded"]
    )
    assert str(garden) in funded and len(funded) >= 2, outcome
    not_funded = {r["initiative_id"]: r for r in outcome["results"] if not r["funded"]}
    assert not_funded[str(nobody)]["reason"] == "no_supporters" and not_funded[str(nobody)]["supporters"] == 0
    supporters = {r["initiative_id"]: r["supporters"] for r in outcome["results"]}
    assert supporters[str(playground)] == 6 and supporters[str(benches)] == 7 and supporters[str(garden)] == 4

    async with service.pool.acquire() as conn:
        ledger = Ledger(conn)
        assert await ledger.check(uuid.UUID(rid)) == []
        totals = await ledger.totals(uuid.UUID(rid))
        budgets = {
            r["owner"]: r["balance_cents"]
            for r in await conn.fetch(
                "SELECT owner, balance_cents FROM accounts WHERE round_id = $1 AND kind = 'budget'", uuid.UUID(rid)
            )
        }
        entries = await conn.fetchval(
            "SELECT count(*) FROM journal_entries WHERE round_id = $1 AND kind = 'equal_shares_award'", uuid.UUID(rid)
        )
        statuses = dict(
            await conn.fetch(
                "SELECT id::text, status FROM initiatives WHERE id = ANY($1::uuid[])",
                [playground, benches, garden, nobody],
            )
        )
    assert budgets == {i: 40_000 for i in funded} and entries == len(funded)
    assert sum(totals.values()) == 0 and totals[rounds.Kind.RETURNED] == 100_000 - 40_000 * len(funded)
    assert {i for i, s in statuses.items() if s == "awarded"} == funded
    assert statuses[str(nobody)] == "expired"

    events = await events_keyed(service, kafka_bootstrap, rid, at_least=1 + 12 + len(funded) + 2)
    kinds = [kind for kind, _ in events]
    assert kinds.count("ballot-cast.v1") == 12  # 10 ballots and two changes; the repeat published nothing
    awarded = [data for kind, data in events if kind == "initiative-awarded.v2"]
    assert {a["initiative_id"] for a in awarded} == funded and {a["mechanism"] for a in awarded} == {"equal_shares"}
    summary = next(data for kind, data in events if kind == "round-closed.v2")
    assert summary["mechanism"] == "equal_shares"
    assert set(map(str, summary["summary"]["awarded_initiative_ids"])) == funded

    # the Pabulib file: pseudonymous votes, the outcome as `selected`, readable by pabutools
    answer = await api.get(f"/api/v1/rounds/{rid}/pabulib", headers=resident("anyone", "BU03630700"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    assert "r-es-" not in answer.text
    instance, profile = parse_pabulib_from_string(answer.text)
    assert len(profile) == 10 and int(instance.budget_limit) == 100_000
    assert {p.name for p in instance if instance.project_meta[p]["selected"] == "1"} == funded


async def test_a_close_that_fails_halfway_books_nothing_and_the_next_close_books_each_award_once(
    api, service, kafka_bootstrap, monkeypatch
):
    initiative = await approve_initiative(service, kafka_bootstrap, 30_000)
    rid = (await open_equal_shares_round(api, total=50_000))["id"]
    for n in range(3):
        assert (await ballot(api, rid, f"r-es-f{n}", initiative)).status_code == 200
    official = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({WIJK}))

    async def dies(self, round_id, outcome):
        raise RuntimeError("the process died while writing the outcome")

    with monkeypatch.context() as patched:
        patched.setattr(EqualSharesRepository, "add_results", dies)
        with pytest.raises(RuntimeError):
            async with service.unit_of_work() as uow:
                await rounds.close_round(uow, official, uuid.UUID(rid), datetime.now(UTC))
                await uow.commit()
    async with service.pool.acquire() as conn:
        booked = await conn.fetchval("SELECT count(*) FROM journal_entries WHERE reference LIKE $1", f"{rid}:%")
        status = await conn.fetchval("SELECT status FROM rounds WHERE id = $1", uuid.UUID(rid))
    assert booked == 0 and status == "open"

    closed = await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL)
    assert closed.status_code == 200, closed.text
    assert closed.json()["totals"]["budget"] == 30_000
    await refused(await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL), 409)
    async with service.pool.acquire() as conn:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM journal_entries WHERE kind = 'equal_shares_award' AND reference LIKE $1",
                f"{rid}:%",
            )
            == 1
        )
        assert await Ledger(conn).check(uuid.UUID(rid)) == []


async def test_ballots_and_outcomes_only_in_equal_shares_rounds(api):
    now = datetime.now(UTC)
    body = {
        "area_code": WIJK,
        "name": "Voucherdag",
        "total_budget_cents": 10_000,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "mechanism": "pledge",
        "voucher_amount_cents": 1_000,
    }
    rid = (await api.post("/api/v1/rounds", json=body, headers=OFFICIAL | key())).json()["id"]
    await refused(await ballot(api, rid, "r-es-p"), 409)
    await refused(await api.get(f"/api/v1/rounds/{rid}/outcome", headers=OFFICIAL), 409)
    await refused(await api.get(f"/api/v1/rounds/{uuid.uuid4()}/outcome", headers=OFFICIAL), 404)


async def test_a_published_pabulib_instance_computes_to_its_published_winners_and_a_bad_file_is_refused(api):
    anyone = token("r-check", ["resident"], ["BU03630001"])
    answer = await api.post(
        "/api/v1/pabulib-checks", content=WARSAW.read_bytes(), headers=anyone | {"content-type": "text/plain"}
    )
    assert answer.status_code == 200, answer.text
    checked = answer.json()
    assert checked["published_winners"] == ["1623", "2567", "427", "915"]
    assert checked["same_as_published"] is True and checked["voters"] == 27
    supporters = {p["project_id"]: p["supporters"] for p in checked["projects"]}
    assert supporters == {"427": 16, "915": 14, "2567": 12, "1623": 5}

    as_json = await api.post(
        "/api/v1/pabulib-checks", json={"pabulib": WARSAW.read_text(encoding="utf-8")}, headers=anyone
    )
    assert as_json.status_code == 200 and as_json.json()["projects"] == checked["projects"]
    problem = await refused(await api.post("/api/v1/pabulib-checks", json={"pabulib": 5}, headers=anyone), 422)
    assert "pabulib" in problem["errors"][0]["field"]

    cumulative = WARSAW.read_text(encoding="utf-8").replace("vote_type;approval", "vote_type;cumulative")
    problem = await refused(await api.post("/api/v1/pabulib-checks", content=cumulative.encode(), headers=anyone), 422)
    assert problem["errors"][0]["field"] in ("vote_type", "file")
    problem = await refused(await api.post("/api/v1/pabulib-checks", content=b"META\nkey;value\n", headers=anyone), 422)
    assert problem["errors"][0]["field"] in ("file", "budget", "projects")
    await refused(await api.post("/api/v1/pabulib-checks", content=b"\xff\xfe", headers=anyone), 400)
    await refused(await api.post("/api/v1/pabulib-checks", content=b"", headers=anyone), 400)


async def test_a_voter_reads_their_ballot_in_their_export_and_once_forgotten_it_counts_under_their_tombstone(
    api, service, kafka_bootstrap
):
    me, tombstone = f"r-forget-{uuid.uuid4().hex[:12]}", f"forgotten-{uuid.uuid4().hex}"
    initiative = await approve_initiative(service, kafka_bootstrap, 20_000)
    rid = (await open_equal_shares_round(api))["id"]
    assert (await ballot(api, rid, me, initiative)).status_code == 200
    export = (await api.get("/api/v1/me/export", headers=resident(me))).json()
    assert [(b["round_id"], b["initiative_ids"]) for b in export["ballots"]] == [(rid, [str(initiative)])]

    forgetting = Envelope.wrap(
        ResidentForgetRequested(resident_id=me, tombstone=tombstone),
        "urn:nld:oin:00000000000000000000:systeem:buurtkracht-notifications",
    )
    record = to_kafka(forgetting)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(NOTIFICATIONS_EVENTS, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    for _ in range(300):
        async with service.pool.acquire() as conn:
            done = await conn.fetchval("SELECT outcome FROM inbox WHERE message_id = $1", str(forgetting.id))
        if done is not None:
            break
        await asyncio.sleep(0.1)
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM ballots WHERE resident_id = $1", me) == 0
        kept = await conn.fetchval(
            "SELECT initiative_ids FROM ballots WHERE round_id = $1 AND resident_id = $2", uuid.UUID(rid), tombstone
        )
    assert kept == [initiative]
    assert (await api.get("/api/v1/me/export", headers=resident(me))).json()["ballots"] == []


async def test_two_replicas_closing_the_due_round_at_once_decide_and_book_it_once(api, service, kafka_bootstrap):
    initiative = await approve_initiative(service, kafka_bootstrap, 25_000)
    now = datetime.now(UTC)
    body = {
        "area_code": WIJK,
        "name": "Gelijke delen, kort",
        "total_budget_cents": 50_000,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(seconds=2)).isoformat(),
        "mechanism": "equal_shares",
    }
    rid = (await api.post("/api/v1/rounds", json=body, headers=OFFICIAL | key())).json()["id"]
    assert (await ballot(api, rid, "r-es-due", initiative)).status_code == 200
    await asyncio.sleep(2.5)
    await refused(await ballot(api, rid, "r-es-late", initiative), 409)  # past closes_at: no more ballots

    closed = await asyncio.gather(
        rounds.close_due_rounds(service.unit_of_work, datetime.now(UTC)),
        rounds.close_due_rounds(service.unit_of_work, datetime.now(UTC)),
    )
    assert sorted(closed) == [0, 1]  # one closed it; the other found it closed
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM rounds WHERE id = $1", uuid.UUID(rid)) == "closed"
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM journal_entries WHERE kind = 'equal_shares_award' AND reference LIKE $1",
                f"{rid}:%",
            )
            == 1
        )
        assert await conn.fetchval("SELECT count(*) FROM equal_shares_votes WHERE round_id = $1", uuid.UUID(rid)) == 1
        assert await Ledger(conn).check(uuid.UUID(rid)) == []
    outcome = (await api.get(f"/api/v1/rounds/{rid}/outcome", headers=OFFICIAL)).json()
    assert [r["initiative_id"] for r in outcome["results"] if r["funded"]] == [str(initiative)]
