"""Payouts through a real bank, on the real stack: the initiators' bank account, approved payouts collected in the
open batch, a payout cancelled before the batch closed, the batch closed into a pain.001 file valid against the
official XSD, and camt.053 statements (built against the official XSD) that settle, report and return payouts —
the same statement twice changing nothing, the ledger balanced after each step, and the daily close done once when
several replicas try it at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bank_statements import Booking, camt053, pain001_transactions
from test_vouchers_api import (
    FINANCE,
    OFFICIAL,
    approve_initiative,
    events_keyed,
    key,
    open_round,
    propose,
    refused,
    resident,
    steering_group,
    token,
)
from vouchers.adapters.ledger import Ledger
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.service import payouts, privacy

from buurtkracht_contracts.topics import all_topics
from buurtkracht_kit import topics
from buurtkracht_kit.auth import Principal, Role

pytestmark = pytest.mark.integration

MUNICIPALITY_IBAN = "NL38BNGH0285012345"
OWNER = resident("r-bank-owner")
ACCOUNT = {"iban": "NL91 ABNA 0417 1643 00", "account_holder": "Stichting Geveltuinen"}
XML = {"content-type": "application/xml"}


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory, running_service):
    """The service, its daily batch close looked for only at its start (the tests close batches themselves)."""
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, all_topics())
    async with running_service(
        scratch_database,
        kafka_bootstrap,
        tmp_path_factory.mktemp("keys"),
        relay_poll_interval_seconds=0.1,
        payout_batch_check_seconds=3600,
    ) as service:
        for _ in range(300):
            if await service.consuming():
                break
            await asyncio.sleep(0.1)
        assert await service.consuming()
        yield service


@pytest.fixture(scope="module", autouse=True)
async def group(api):
    await steering_group(api)


async def awarded(api, service, kafka_bootstrap, amount: int = 50_000) -> uuid.UUID:
    round_ = await open_round(api, mechanism="committee", committee_quorum=1)
    initiative = await approve_initiative(service, kafka_bootstrap, amount, initiators=("r-bank-owner",))
    assert (await propose(api, round_["id"], initiative, amount)).json()["awarded"] is True
    return initiative


async def approved_payout(api, initiative, amount: int, invoice: str, **claim) -> dict:
    answer = await api.post(
        "/api/v1/expense-claims",
        json={
            "initiative_id": str(initiative),
            "supplier": "Tuincentrum Amstel",
            "amount_cents": amount,
            "invoice_reference": invoice,
        }
        | claim,
        headers=OWNER | key(),
    )
    assert answer.status_code == 201, answer.text
    decided = await api.post(
        f"/api/v1/expense-claims/{answer.json()['id']}/decision", json={"decision": "approve"}, headers=OFFICIAL | key()
    )
    assert decided.status_code == 200, decided.text
    payouts_page = (await api.get("/api/v1/payouts?limit=100", headers=FINANCE)).json()["items"]
    return next(p for p in payouts_page if p["id"] == decided.json()["payout_id"])


async def budget(api, initiative) -> dict:
    return (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=OWNER)).json()


async def balanced(service) -> None:
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []


async def open_batch(api) -> dict:
    page = (await api.get("/api/v1/payout-batches?status=open", headers=OFFICIAL)).json()
    assert page["total"] == 1, page
    return page["items"][0]


async def test_a_payout_goes_to_the_bank_in_a_batch_file_and_the_statement_settles_it_once(
    api, service, kafka_bootstrap
):
    initiative = await awarded(api, service, kafka_bootstrap)
    account_path = f"/api/v1/initiative-budgets/{initiative}/bank-account"
    problem = await refused(
        await api.put(account_path, json=ACCOUNT | {"iban": "NL91ABNA0417164301"}, headers=OWNER), 422
    )
    assert problem["errors"][0]["field"] == "iban" and "checksum" in problem["detail"].lower()
    await refused(await api.put(account_path, json=ACCOUNT, headers=resident("r-neighbour")), 403)
    await refused(await api.get(account_path, headers=OWNER), 404)

    bad_claim = await api.post(
        "/api/v1/expense-claims",
        json={
            "initiative_id": str(initiative),
            "supplier": "X",
            "amount_cents": 100,
            "invoice_reference": "X-1",
            "bank_account": ACCOUNT | {"iban": "NL00ABNA0417164300"},
        },
        headers=OWNER | key(),
    )
    assert (await refused(bad_claim, 422))["errors"][0]["field"] == "bank_account.iban"
    assert (await budget(api, initiative))["held_cents"] == 0, "a refused claim holds nothing"

    paid = await approved_payout(api, initiative, 30_000, "F-1", bank_account=ACCOUNT)
    given = (await api.get(account_path, headers=OWNER)).json()
    assert (given["iban"], given["bic"], given["iban_masked"]) == ("NL91ABNA0417164300", "ABNANL2A", "…4300")
    assert (await api.get(account_path, headers=FINANCE)).status_code == 200
    await refused(await api.get(account_path, headers=OFFICIAL), 404)
    cancelled = await approved_payout(api, initiative, 5_000, "F-2")
    batch = await open_batch(api)
    assert paid["batch_id"] == cancelled["batch_id"] == batch["id"]

    await refused(
        await api.post(f"/api/v1/payouts/{cancelled['id']}/cancellation", json={"reason": "x"}, headers=OWNER), 403
    )
    answer = await api.post(
        f"/api/v1/payouts/{cancelled['id']}/cancellation", json={"reason": "dubbel ingediend"}, headers=OFFICIAL
    )
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled", answer.text
    assert (await budget(api, initiative))["payable_cents"] == 30_000
    assert (await budget(api, initiative))["left_cents"] == 20_000, "the cancelled payout's amount is back"
    await refused(
        await api.post(
            f"/api/v1/payouts/{cancelled['id']}/cancellation", json={"reason": "nog eens"}, headers=OFFICIAL
        ),
        409,
    )

    await refused(await api.post(f"/api/v1/payout-batches/{batch['id']}/close", headers=OWNER), 403)
    await refused(await api.get(f"/api/v1/payout-batches/{batch['id']}/pain001", headers=FINANCE), 409)
    closed = await api.post(f"/api/v1/payout-batches/{batch['id']}/close", headers=OFFICIAL)
    assert closed.status_code == 200, closed.text
    assert (closed.json()["status"], closed.json()["payout_count"], closed.json()["total_cents"]) == (
        "closed",
        1,
        30_000,
    )
    await refused(await api.post(f"/api/v1/payout-batches/{batch['id']}/close", headers=OFFICIAL), 409)
    problem = await refused(
        await api.post(f"/api/v1/payouts/{paid['id']}/cancellation", json={"reason": "te laat"}, headers=OFFICIAL), 409
    )
    assert problem["current_status"] == "sent"

    await refused(await api.get(f"/api/v1/payout-batches/{batch['id']}/pain001", headers=OFFICIAL), 403)
    download = await api.get(f"/api/v1/payout-batches/{batch['id']}/pain001", headers=FINANCE)
    assert download.status_code == 200 and download.headers["content-type"].startswith("application/xml")
    debtor, transactions = pain001_transactions(download.content)
    assert debtor == MUNICIPALITY_IBAN
    assert transactions == [
        {
            "end_to_end_id": paid["reference"],
            "amount": "300.00",
            "iban": "NL91ABNA0417164300",
            "name": "Stichting Geveltuinen",
            "bic": "ABNANL2A",
        }
    ]
    assert (await api.get(f"/api/v1/payout-batches/{batch['id']}/pain001", headers=FINANCE)).content == download.content

    statement = camt053(
        "STMT-2026-001",
        MUNICIPALITY_IBAN,
        [
            Booking(paid["reference"], 29_999),  # the bank booked another amount: reported, not settled
            Booking("BK-NOBODYKNOWSME00", 1_000),
            Booking(cancelled["reference"], 5_000),  # never sent
            Booking(paid["reference"], 30_000),
        ],
    )
    await refused(await api.post("/api/v1/bank-statements", content=statement, headers=OFFICIAL | XML), 403)
    read = await api.post("/api/v1/bank-statements", content=statement, headers=FINANCE | XML)
    assert read.status_code == 200, read.text
    assert [line["outcome"] for line in read.json()["lines"]] == [
        "amount_mismatch",
        "unknown_reference",
        "not_sent",
        "settled",
    ]
    assert (read.json()["settled"], read.json()["reported"], read.json()["already_read"]) == (1, 3, 0)
    after = await budget(api, initiative)
    assert (after["payable_cents"], after["paid_cents"], after["left_cents"]) == (0, 30_000, 20_000)
    await balanced(service)

    again = await api.post("/api/v1/bank-statements", content=statement, headers=FINANCE | XML)
    assert again.status_code == 200 and again.json()["already_read"] == 4 and again.json()["settled"] == 0
    assert [line["outcome"] for line in again.json()["lines"]] == [line["outcome"] for line in read.json()["lines"]]
    assert await budget(api, initiative) == after, "the same statement again changes nothing"
    stored = (await api.get("/api/v1/bank-statements/STMT-2026-001", headers=OFFICIAL)).json()
    assert [line["outcome"] for line in stored["lines"]] == [line["outcome"] for line in read.json()["lines"]]

    types = [t for t, _ in await events_keyed(service, kafka_bootstrap, batch["id"], 1)]
    assert types == ["payout-batch-closed.v1"]
    (closed_event,) = [data for _, data in await events_keyed(service, kafka_bootstrap, batch["id"], 1)]
    assert closed_event["payout_references"] == [paid["reference"]] and "NL91" not in str(closed_event)
    by_round = await events_keyed(service, kafka_bootstrap, paid["round_id"], 9)
    kinds = [t for t, _ in by_round]
    assert kinds.count("payout-settled.v1") == 1 and kinds.count("payout-cancelled.v1") == 1
    assert not any("NL91" in str(data) for _, data in by_round), "no IBAN in any event"

    export = (await api.get("/api/v1/me/export", headers=OWNER)).json()
    assert [a["iban"] for a in export["bank_accounts_given"]] == ["NL91ABNA0417164300"]


async def test_a_returned_transfer_is_sent_again_with_the_next_batch_and_settles_then(api, service, kafka_bootstrap):
    initiative = await awarded(api, service, kafka_bootstrap, 20_000)
    await api.put(f"/api/v1/initiative-budgets/{initiative}/bank-account", json=ACCOUNT, headers=OWNER)
    payout = await approved_payout(api, initiative, 12_500, "R-1")
    first = await open_batch(api)
    assert (await api.post(f"/api/v1/payout-batches/{first['id']}/close", headers=FINANCE)).status_code == 200
    booked = camt053("STMT-R-1", MUNICIPALITY_IBAN, [Booking(payout["reference"], 12_500)])
    assert (await api.post("/api/v1/bank-statements", content=booked, headers=FINANCE | XML)).json()["settled"] == 1
    assert (await budget(api, initiative))["paid_cents"] == 12_500

    returned = camt053(
        "STMT-R-2", MUNICIPALITY_IBAN, [Booking(payout["reference"], 12_500, debit=False, return_reason="AC04")]
    )
    read = (await api.post("/api/v1/bank-statements", content=returned, headers=FINANCE | XML)).json()
    assert (read["returned"], read["lines"][0]["outcome"]) == (1, "returned")
    after = await budget(api, initiative)
    assert (after["payable_cents"], after["paid_cents"]) == (12_500, 0), "the settlement is undone"
    await balanced(service)
    second = await open_batch(api)
    waiting = next(
        p
        for p in (await api.get("/api/v1/payouts?limit=100", headers=FINANCE)).json()["items"]
        if p["id"] == payout["id"]
    )
    assert (waiting["status"], waiting["batch_id"], waiting["attempt"]) == ("requested", second["id"], 2)
    events = await events_keyed(service, kafka_bootstrap, payout["round_id"], 6)
    (returned_event,) = [data for t, data in events if t == "payout-returned.v1"]
    assert returned_event["return_reason"] == "AC04" and returned_event["was_settled"] is True

    assert (await api.post(f"/api/v1/payout-batches/{second['id']}/close", headers=FINANCE)).status_code == 200
    resent = (await api.get(f"/api/v1/payout-batches/{second['id']}/pain001", headers=FINANCE)).content
    assert [t["end_to_end_id"] for t in pain001_transactions(resent)[1]] == [payout["reference"]]
    again = camt053("STMT-R-3", MUNICIPALITY_IBAN, [Booking(payout["reference"], 12_500)])
    assert (await api.post("/api/v1/bank-statements", content=again, headers=FINANCE | XML)).json()["settled"] == 1
    assert (await budget(api, initiative))["paid_cents"] == 12_500
    await balanced(service)


async def test_the_daily_close_is_done_once_when_several_replicas_try_at_the_same_moment(api, service, kafka_bootstrap):
    initiative = await awarded(api, service, kafka_bootstrap, 9_000)
    await api.put(f"/api/v1/initiative-budgets/{initiative}/bank-account", json=ACCOUNT, headers=OWNER)
    await approved_payout(api, initiative, 9_000, "D-1")
    batch = await open_batch(api)
    banking = service.app.state.banking
    source = service.settings.event_source

    def unit_of_work() -> VouchersUnitOfWork:
        return VouchersUnitOfWork(service.pool, source)

    assert await payouts.close_due_batch(unit_of_work, banking, datetime.now(UTC) - timedelta(days=2)) is None
    tomorrow = datetime.now(UTC) + timedelta(days=1, hours=1)
    closed = await asyncio.gather(*(payouts.close_due_batch(unit_of_work, banking, tomorrow) for _ in range(4)))
    assert [c.id for c in closed if c is not None] == [uuid.UUID(batch["id"])]
    assert (await api.get(f"/api/v1/payout-batches/{batch['id']}", headers=FINANCE)).json()["status"] == "closed"
    assert len(await events_keyed(service, kafka_bootstrap, batch["id"], 1)) == 1


async def test_a_statement_read_halfway_when_the_process_died_is_finished_by_uploading_it_again_each_line_once(
    api, service, kafka_bootstrap, monkeypatch
):
    initiative = await awarded(api, service, kafka_bootstrap, 3_000)
    await api.put(f"/api/v1/initiative-budgets/{initiative}/bank-account", json=ACCOUNT, headers=OWNER)
    first, second = [await approved_payout(api, initiative, 1_000, f"H-{n}") for n in (1, 2)]
    batch = await open_batch(api)
    assert (await api.post(f"/api/v1/payout-batches/{batch['id']}/close", headers=FINANCE)).status_code == 200
    statement = camt053(
        "STMT-HALF", MUNICIPALITY_IBAN, [Booking(first["reference"], 1_000), Booking(second["reference"], 1_000)]
    )
    read_line = payouts._read_line
    lines_read = 0

    async def dies_at_the_second_line(*arguments):
        nonlocal lines_read
        lines_read += 1
        if lines_read == 2:
            raise SystemExit("the process dies")
        return await read_line(*arguments)

    monkeypatch.setattr(payouts, "_read_line", dies_at_the_second_line)
    with pytest.raises(SystemExit):
        await payouts.import_statement(
            service.unit_of_work, payouts_principal(), statement, service.app.state.banking, datetime.now(UTC)
        )
    monkeypatch.setattr(payouts, "_read_line", read_line)
    assert (await budget(api, initiative))["paid_cents"] == 1_000, "the first line settled before the process died"

    read = (await api.post("/api/v1/bank-statements", content=statement, headers=FINANCE | XML)).json()
    assert [(line["outcome"], line["already_read"]) for line in read["lines"]] == [
        ("settled", True),
        ("settled", False),
    ]
    after = await budget(api, initiative)
    assert (after["paid_cents"], after["payable_cents"]) == (2_000, 0)
    await balanced(service)
    settled = [t for t, _ in await events_keyed(service, kafka_bootstrap, first["round_id"], 8)]
    assert settled.count("payout-settled.v1") == 2, "each payout settled once"


def payouts_principal() -> Principal:
    return Principal("finance", frozenset({Role.INTEGRATION}), frozenset())


@pytest.mark.parametrize(
    "content, headers, status",
    [
        (b"<a/>", {"content-type": "text/plain"}, 415),
        (b"not xml at all", XML, 422),
        (camt053("STMT-OTHER", "NL91ABNA0417164300", [Booking("BK-1", 100)]), XML, 422),
    ],
)
async def test_an_upload_that_is_not_a_statement_of_the_payout_account_is_refused_and_changes_nothing(
    api, service, content, headers, status
):
    problem = await refused(
        await api.post("/api/v1/bank-statements", content=content, headers=FINANCE | headers), status
    )
    assert problem["errors"][0]["field"] == "statement"
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM bank_statements WHERE statement_id = 'STMT-OTHER'") == 0


async def test_forgetting_who_gave_a_bank_account_removes_it_and_its_payouts_leave_the_open_batch(
    api, service, kafka_bootstrap
):
    initiative = await awarded(api, service, kafka_bootstrap, 4_000)
    giver = token("r-bank-owner", ["resident"], ["BU03630001"])
    await api.put(f"/api/v1/initiative-budgets/{initiative}/bank-account", json=ACCOUNT, headers=giver)
    payout = await approved_payout(api, initiative, 4_000, "P-1")
    assert payout["batch_id"] is not None
    async with VouchersUnitOfWork(service.pool, service.settings.event_source) as uow:
        await privacy.forget_resident(uow, "r-bank-owner", "forgotten-" + uuid.uuid4().hex)
        await uow.commit()
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM payees WHERE given_by = 'r-bank-owner'") == 0
        assert await conn.fetchval("SELECT batch_id FROM payouts WHERE id = $1", uuid.UUID(payout["id"])) is None
        assert await conn.fetchval("SELECT count(*) FROM payees WHERE iban = 'NL91ABNA0417164300'") == 0
    await balanced(service)
