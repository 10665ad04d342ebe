# ruff: noqa: E501  (the matrix is one table, a row a line)
"""Who may call what: every route of every service × eight callers × the answer, in one table (`MATRIX`).

The columns are the callers of `authz_fixtures` (the roles of `buurtkracht_kit.tokens.Role` as tokens carry them):

    anon  anonymous: no token
    res   a resident of the area (role resident, home buurt in the wijk WK036301)
    away  a resident elsewhere (role resident, home buurt in another wijk)
    off   the official of the wijk (role official, areas [WK036301])
    offx  an official elsewhere (role official, areas [WK036302])
    sg    a member of the wijk's steering group: roles resident and steering_group, home buurt in the wijk, and
          registered as a member by the official (membership is data of the vouchers service, not a claim)
    adm   the admin/operator (role admin, areas [GM0363]): the kit has the role, and only the webhook subscriptions
          ask for it; elsewhere an admin is a signed-in caller like any other, whatever their areas
    int   an integration with a service token (role integration, no areas): the finance system, which alone
          confirms payouts

Every resource belongs to the wijk WK036301. "The resident of the area" is the resident the row is about: the
initiator on the initiators' endpoints (edit, invite, submit, withdraw, start, cancel, report, claim an
expense), the invited resident on accepting an invitation, the supporter on withdrawing support, the holder of
the wallet, the pledge and the inbox message. On every other row the resources are a neighbour's, and the
resident of the area has no part in them. The steering-group member is a resident of the area too, but never
the one the row is about: their column shows what a neighbour without part in the resource may do, besides what
the steering group may.

An answer of 401 or 403 is a refusal. A 404 is one on purpose where the API does not tell that a thing exists to
whom may not see it (a draft, an expense claim) or where the thing is the caller's own and they have none (your
wallet, your pledge, your inbox message). Withdrawing support one never gave is a 409 (`you do not support this
initiative`). Everything else is the answer of an allowed caller.

Each row's `setup` makes what its request needs and gives the path's parameters and a valid body (with a new
Idempotency-Key where the endpoint takes one), so that the answer is the authorization decision and not a 404
or 422 by accident. A setup that changes something makes fresh resources for every caller; read-only rows share
theirs. `test_every_route_has_a_row_and_every_row_a_route` fails when a route of an app has no row, or a row names no route: a new
endpoint needs its row here.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from tests import areas
from tests.integration.authz_fixtures import (
    AREA,
    BUDGET_LINES,
    CALLERS,
    COLUMNS,
    MEMBER,
    NEIGHBOUR,
    OFFICIAL,
    OTHER_MEMBER,
    RESIDENT,
    Apps,
    Call,
    Initiatives,
    Notifications,
    Person,
    Portal,
    Vouchers,
    World,
    running,
    unstarted,
)

pytestmark = pytest.mark.integration

Setup = Callable[[Any, Person | None], Awaitable[Call]]


# -- setups: what a row's request needs ---------------------------------------------------------------------------


async def nothing(w: World, who: Person | None) -> Call:
    return Call()


async def new_initiative(w: Initiatives, who: Person | None) -> Call:
    body = {
        "title": "Bankjes op het plein",
        "summary": "Drie bankjes",
        "description": "Drie bankjes rond de boom op het plein.",
        "area_code": AREA,
        "category": "social",
        "budget_lines": [{"description": "benches", "amount_cents": 45_000}],
    }
    return Call(json=body)


async def own_draft(w: Initiatives, who: Person | None) -> Call:
    return Call({"initiative_id": await w.initiative("draft", owner=RESIDENT)})


async def own_draft_changes(w: Initiatives, who: Person | None) -> Call:
    return Call(
        {"initiative_id": await w.initiative("draft", owner=RESIDENT)}, json={"title": "Geveltuinen en bankjes"}
    )


async def own_draft_invitation(w: Initiatives, who: Person | None) -> Call:
    return Call({"initiative_id": await w.initiative("draft", owner=RESIDENT)}, json={"resident_id": NEIGHBOUR.subject})


async def invitation_of_resident(w: Initiatives, who: Person | None) -> Call:
    initiative_id = await w.initiative("draft")
    await w.ok(
        "POST", f"/api/v1/initiatives/{initiative_id}/co-initiators", NEIGHBOUR, json={"resident_id": RESIDENT.subject}
    )
    return Call({"initiative_id": initiative_id, "resident_id": RESIDENT.subject})


async def gathering_support(w: Initiatives, who: Person | None) -> Call:
    return Call({"initiative_id": await w.initiative("gathering_support")})


async def supported_by_resident(w: Initiatives, who: Person | None) -> Call:
    initiative_id = await w.initiative("gathering_support")
    await w.ok("POST", f"/api/v1/initiatives/{initiative_id}/supports", RESIDENT)
    return Call({"initiative_id": initiative_id})


async def volunteering(w: Initiatives, who: Person | None) -> Call:
    return Call({"initiative_id": await w.initiative("gathering_support")}, json={"offer": "Ik kan tuinieren"})


async def own_gathering_support(w: Initiatives, who: Person | None) -> Call:
    return Call({"initiative_id": await w.initiative("gathering_support", owner=RESIDENT)})


async def in_review_approval(w: Initiatives, who: Person | None) -> Call:
    body = {"decision": "approve", "approved_amount_cents": 60_000}
    return Call({"initiative_id": await w.initiative("in_review")}, json=body)


async def own_funded(w: Initiatives, who: Person | None) -> Call:
    return Call({"initiative_id": await w.initiative("funded", owner=RESIDENT)})


async def own_funded_cancellation(w: Initiatives, who: Person | None) -> Call:
    return Call(
        {"initiative_id": await w.initiative("funded", owner=RESIDENT)}, json={"reason": "De leverancier is failliet"}
    )


async def own_in_progress_report(w: Initiatives, who: Person | None) -> Call:
    spending = [{"description": line["description"], "spent_cents": line["amount_cents"]} for line in BUDGET_LINES]
    body = {"what_was_done": "Veertig geveltuinen aangelegd", "spending": spending}
    return Call({"initiative_id": await w.initiative("in_progress", owner=RESIDENT)}, json=body)


OFFER = {"tags": ["koken"], "hours_per_month": 4, "reach": "wijk", "max_asks_per_month": 31}
HELP_REQUEST = {"tags": ["klussen"], "description": "Helpen sjouwen", "hours_per_person": 2, "people_needed": 1}


async def an_offer(w: Initiatives, who: Person | None) -> Call:
    return Call(json=OFFER)


async def offer_of_resident(w: Initiatives, who: Person | None) -> Call:
    """The resident offers help; any other caller has withdrawn theirs."""
    await w.ok("PUT", "/api/v1/offers/me", RESIDENT, json=OFFER)
    if who is not None and who != RESIDENT:
        await w.request("DELETE", "/api/v1/offers/me", who)
    return Call()


async def own_gathering_support_help_request(w: Initiatives, who: Person | None) -> Call:
    return Call({"initiative_id": await w.initiative("gathering_support", owner=RESIDENT)}, json=HELP_REQUEST)


async def ask_to_resident(w: Initiatives) -> str:
    """A neighbour's initiative asks for help that only the resident offers; the asking pass asks them."""
    from initiatives.app import ask_neighbours

    await w.ok("PUT", "/api/v1/offers/me", RESIDENT, json=OFFER | {"tags": ["klussen"]})
    initiative_id = await w.initiative("gathering_support")
    request = await w.ok("POST", f"/api/v1/initiatives/{initiative_id}/help-requests", NEIGHBOUR, json=HELP_REQUEST)
    await ask_neighbours(w.service, datetime.now(UTC))
    export = await w.ok("GET", "/api/v1/me/export", RESIDENT)
    return next(ask["id"] for ask in export["asks"] if ask["help_request_id"] == request["id"])


async def an_ask(w: Initiatives, who: Person | None) -> Call:
    return Call({"ask_id": await w.shared("ask to the resident", lambda: ask_to_resident(w))})


async def ask_answered_yes(w: Initiatives, who: Person | None) -> Call:
    return Call({"ask_id": await ask_to_resident(w)}, json={"answer": "yes"})


async def new_round(w: Vouchers, who: Person | None) -> Call:
    opens = datetime.now(UTC) + timedelta(days=7)
    body = {
        "area_code": AREA,
        "name": "Wijkbudget volgend kwartaal",
        "total_budget_cents": 500_000,
        "opens_at": opens.isoformat(),
        "closes_at": (opens + timedelta(days=60)).isoformat(),
        "mechanism": "pledge",
        "voucher_amount_cents": 2_500,
    }
    return Call(json=body, idempotency_key=True)


async def a_round(w: Vouchers, who: Person | None) -> Call:
    return Call({"round_id": await w.shared("round", w.round)})


async def fresh_round(w: Vouchers, who: Person | None) -> Call:
    return Call({"round_id": await w.round()})


async def wallet_issuance(w: Vouchers, who: Person | None) -> Call:
    return Call({"round_id": await w.round()}, json={"resident_ids": ["r-listed-1", "r-listed-2"]})


async def wallet_of_resident(w: Vouchers, who: Person | None) -> Call:
    round_id, _ = await w.shared("round with wallet", w.round_with_wallet)
    return Call({"round_id": round_id})


async def pledge(w: Vouchers, who: Person | None) -> Call:
    round_id, initiative_id = await w.round_with_wallet()
    return Call(
        {"round_id": round_id}, json={"initiative_id": initiative_id, "amount_cents": 1_000}, idempotency_key=True
    )


async def pledge_of_resident(w: Vouchers, who: Person | None) -> Call:
    round_id, pledge_id = await w.pledge()
    return Call({"round_id": round_id, "pledge_id": pledge_id})


async def steering_group_registration(w: Vouchers, who: Person | None) -> Call:
    members = [{"member_id": MEMBER.subject, "chair": True}, {"member_id": OTHER_MEMBER.subject, "chair": False}]
    return Call({"area_code": AREA}, json={"members": members})


async def the_area(w: Vouchers, who: Person | None) -> Call:
    return Call({"area_code": AREA})


async def award_proposal(w: Vouchers, who: Person | None) -> Call:
    round_id, initiative_id = await w.round("committee", quorum=2), await w.approved_initiative()
    return Call(
        {"round_id": round_id}, json={"initiative_id": initiative_id, "amount_cents": 20_000}, idempotency_key=True
    )


async def vote_on_open_proposal(w: Vouchers, who: Person | None) -> Call:
    round_id, award_id, _ = await w.proposal()
    return Call({"round_id": round_id, "award_id": award_id}, json={"vote": "for"})


async def open_proposal(w: Vouchers, who: Person | None) -> Call:
    round_id, award_id, _ = await w.shared("proposal", w.proposal)
    return Call({"round_id": round_id, "award_id": award_id})


async def awarded_initiative(w: Vouchers, who: Person | None) -> Call:
    return Call({"initiative_id": await w.shared("awarded initiative", w.awarded_initiative)})


async def expense(w: Vouchers, who: Person | None) -> Call:
    body = {
        "initiative_id": await w.awarded_initiative(),
        "supplier": "Tuincentrum",
        "amount_cents": 5_000,
        "invoice_reference": "F-0001",
    }
    return Call(json=body, idempotency_key=True)


async def claim_of_resident(w: Vouchers, who: Person | None) -> Call:
    return Call({"claim_id": await w.shared("claim", w.claim)})


async def claim_approval(w: Vouchers, who: Person | None) -> Call:
    return Call({"claim_id": await w.claim()}, json={"decision": "approve"}, idempotency_key=True)


async def payout_confirmation(w: Vouchers, who: Person | None) -> Call:
    payout = await w.payout()
    body = {
        "bank_reference": "NL-BANK-0001",
        "paid_at": datetime.now(UTC).isoformat(),
        "amount_cents": payout["amount_cents"],
    }
    return Call({"payout_id": payout["id"]}, json=body)


async def payout_confirmation_by_reference(w: Vouchers, who: Person | None) -> Call:
    payout = await w.payout()
    body = {
        "bank_reference": "NL-BANK-0002",
        "paid_at": datetime.now(UTC).isoformat(),
        "amount_cents": payout["amount_cents"],
    }
    return Call({"reference": payout["reference"]}, json=body)


BANK_ACCOUNT = {"iban": "NL91ABNA0417164300", "account_holder": "Stichting Geveltuinen"}
FINANCE = CALLERS["integration"]


async def batched_payout(w: Vouchers) -> dict[str, Any]:
    """An approved payout of an initiative with a bank account: it waits in the open payout batch."""
    initiative_id = await w.awarded_initiative()
    await w.ok("PUT", f"/api/v1/initiative-budgets/{initiative_id}/bank-account", RESIDENT, json=BANK_ACCOUNT)
    claim = {"initiative_id": initiative_id, "supplier": "Tuincentrum", "amount_cents": 10_000}
    claimed = await w.ok(
        "POST",
        "/api/v1/expense-claims",
        RESIDENT,
        json=claim | {"invoice_reference": f"B-{uuid.uuid4().hex[:8]}"},
        idempotency_key=True,
    )
    decided = await w.ok(
        "POST",
        f"/api/v1/expense-claims/{claimed['id']}/decision",
        CALLERS["official"],
        json={"decision": "approve"},
        idempotency_key=True,
    )
    payouts = await w.ok("GET", "/api/v1/payouts?limit=100", FINANCE)
    return next(p for p in payouts["items"] if p["id"] == decided["payout_id"])


async def closed_batch(w: Vouchers) -> str:
    batch_id = (await batched_payout(w))["batch_id"]
    await w.ok("POST", f"/api/v1/payout-batches/{batch_id}/close", FINANCE)
    return batch_id


def bank_statement(statement_id: str) -> bytes:
    """A camt.053.001.02 statement of the municipality's payout account with one transfer of a reference nobody
    knows."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>
<GrpHdr><MsgId>M-{statement_id}</MsgId><CreDtTm>2026-12-01T18:00:00</CreDtTm></GrpHdr>
<Stmt><Id>{statement_id}</Id><CreDtTm>2026-12-01T18:00:00</CreDtTm><Acct><Id><IBAN>NL38BNGH0285012345</IBAN></Id></Acct>
<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-12-01</Dt></Dt></Bal>
<Ntry><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-12-01</Dt></BookgDt>
<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></BkTxCd>
<NtryDtls><TxDtls><Refs><EndToEndId>BK-NOBODY</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>
</Stmt></BkToCstmrStmt></Document>""".encode()


async def bank_account_to_give(w: Vouchers, who: Person | None) -> Call:
    return Call({"initiative_id": await w.shared("awarded initiative", w.awarded_initiative)}, json=BANK_ACCOUNT)


async def given_bank_account(w: Vouchers, who: Person | None) -> Call:
    async def given() -> str:
        initiative_id = await w.awarded_initiative()
        await w.ok("PUT", f"/api/v1/initiative-budgets/{initiative_id}/bank-account", RESIDENT, json=BANK_ACCOUNT)
        return initiative_id

    return Call({"initiative_id": await w.shared("initiative with a bank account", given)})


async def payout_cancellation(w: Vouchers, who: Person | None) -> Call:
    return Call({"payout_id": (await w.payout())["id"]}, json={"reason": "dubbel ingediend"})


async def a_batch(w: Vouchers, who: Person | None) -> Call:
    return Call({"batch_id": await w.shared("closed batch", lambda: closed_batch(w))})


async def open_batch(w: Vouchers, who: Person | None) -> Call:
    return Call({"batch_id": (await batched_payout(w))["batch_id"]})


async def statement_upload(w: Vouchers, who: Person | None) -> Call:
    return Call(content=bank_statement(f"S-{uuid.uuid4().hex[:12]}"), content_type="application/xml")


async def uploaded_statement(w: Vouchers, who: Person | None) -> Call:
    async def uploaded() -> str:
        answer = await w.request(
            "POST",
            "/api/v1/bank-statements",
            FINANCE,
            content=bank_statement("S-SHARED"),
            content_type="application/xml",
        )
        assert answer.status_code == 200, answer.text
        return "S-SHARED"

    return Call({"statement_id": await w.shared("statement", uploaded)})


CONTACT = {"email": "bewoner@example.nl", "language": "en"}


async def contact_details(w: Notifications, who: Person | None) -> Call:
    return Call(json=CONTACT)


async def registered_contact_details(w: Notifications, who: Person | None) -> Call:
    if who is not None:
        await w.ok("PUT", "/api/v1/contact-details/me", who, json=CONTACT)
    return Call()


async def preferences(w: Notifications, who: Person | None) -> Call:
    return Call(json={"email_enabled": True, "frequency": "weekly", "muted_kinds": []})


async def area_follows(w: Notifications, who: Person | None) -> Call:
    return Call(json={"area_codes": [AREA]})


async def message_to_resident(w: Notifications, who: Person | None) -> Call:
    return Call({"notification_id": await w.message_to(RESIDENT)})


async def new_subscription(w: Notifications, who: Person | None) -> Call:
    return Call(json={"url": "https://website.example.org/hooks", "event_types": ["nl.buurtkracht.initiatives.*"]})


async def a_subscription(w: Notifications, who: Person | None) -> Call:
    return Call({"subscription_id": await w.shared("subscription", w.subscription)})


async def fresh_subscription(w: Notifications, who: Person | None) -> Call:
    return Call({"subscription_id": await w.subscription()})


async def in_the_area(w: World, who: Person | None) -> Call:
    return Call({"area_code": AREA})


async def areas_of_the_municipality(w: Initiatives, who: Person | None) -> Call:
    return Call(json=areas.sample())


async def public_area(w: Portal, who: Person | None) -> Call:
    return Call({"area_code": await w.public_area()})


async def public_initiative(w: Portal, who: Person | None) -> Call:
    return Call({"initiative_id": await w.public_initiative()})


async def page_ids(w: World, who: Person | None) -> Call:
    """The parameters of a portal page: ids of nothing (a page sends to sign-in before it looks one up), and the
    name of an asset it serves."""
    ids = ("initiative_id", "round_id", "claim_id", "notification_id", "ask_id")
    return Call({name: str(uuid.uuid4()) for name in ids} | {"name": "portal.css"})


async def subscription_change(w: Notifications, who: Person | None) -> Call:
    return Call({"subscription_id": await w.subscription()}, json={"description": "Financiële administratie"})


async def disabled_subscription(w: Notifications, who: Person | None) -> Call:
    return Call({"subscription_id": await w.subscription(disabled=True)})


async def equal_shares_ballot(w: Vouchers, who: Person | None) -> Call:
    round_id, initiative_id = await w.shared("equal shares round", equal_shares_round(w))
    return Call({"round_id": round_id}, json={"initiative_ids": [initiative_id]})


async def ballot_of_resident(w: Vouchers, who: Person | None) -> Call:
    """The resident of the area's ballot, in a round where nobody else cast one."""

    async def voted() -> str:
        round_id, initiative_id = await equal_shares_round(w)()
        await w.ok("PUT", f"/api/v1/rounds/{round_id}/ballots/me", RESIDENT, json={"initiative_ids": [initiative_id]})
        return round_id

    return Call({"round_id": await w.shared("equal shares round with a ballot", voted)})


async def closed_equal_shares_round(w: Vouchers, who: Person | None) -> Call:
    async def closed() -> str:
        round_id, initiative_id = await equal_shares_round(w)()
        await w.ok("PUT", f"/api/v1/rounds/{round_id}/ballots/me", RESIDENT, json={"initiative_ids": [initiative_id]})
        await w.ok("POST", f"/api/v1/rounds/{round_id}/close", OFFICIAL)
        return round_id

    return Call({"round_id": await w.shared("closed equal shares round", closed)})


def equal_shares_round(w: Vouchers) -> Callable[[], Awaitable[tuple[str, str]]]:
    async def make() -> tuple[str, str]:
        return await w.round("equal_shares"), await w.approved_initiative()

    return make


async def pabulib_file(w: Vouchers, who: Person | None) -> Call:
    text = "META\nkey;value\nbudget;100\nvote_type;approval\nPROJECTS\nproject_id;cost\np1;60\np2;50\nVOTES\nvoter_id;vote\n1;p1\n2;p2\n"
    return Call(json={"pabulib": text})


# -- the matrix -----------------------------------------------------------------------------------------------------

INITIATIVE = "/api/v1/initiatives/{initiative_id}"
ROUND = "/api/v1/rounds/{round_id}"
SUBSCRIPTION = "/api/v1/webhook-subscriptions/{subscription_id}"

Answer = int | frozenset[int]  # a status code, or the few an allowed caller may honestly get
Row = tuple[str, str, str, Setup, Answer, Answer, Answer, Answer, Answer, Answer, Answer, Answer]

# fmt: off
MATRIX: list[Row] = [
    # service        method    path                                                      setup                              anon res  away off  offx sg   adm  int
    ("initiatives",   "POST",   "/api/v1/initiatives",                                    new_initiative,                    401, 201, 403, 403, 403, 201, 403, 403),
    ("initiatives",   "GET",    "/api/v1/initiatives",                                    nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    "/api/v1/me/export",                                      nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    INITIATIVE,                                               own_draft,                         401, 200, 404, 200, 404, 404, 404, 404),
    ("initiatives",   "PATCH",  INITIATIVE,                                               own_draft_changes,                 401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/co-initiators",                            own_draft_invitation,              401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/co-initiators/{resident_id}/acceptance",   invitation_of_resident,            401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/submit",                                   own_draft,                         401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/supports",                                 gathering_support,                 401, 201, 403, 403, 403, 201, 403, 403),
    ("initiatives",   "DELETE", INITIATIVE + "/supports",                                 supported_by_resident,             401, 200, 409, 409, 409, 409, 409, 409),
    ("initiatives",   "POST",   INITIATIVE + "/volunteers",                               volunteering,                      401, 201, 201, 403, 403, 201, 403, 403),
    ("initiatives",   "GET",    INITIATIVE + "/volunteers",                               own_gathering_support,             401, 200, 403, 200, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/review",                                   in_review_approval,                401, 403, 403, 200, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/withdraw",                                 own_gathering_support,             401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/start",                                    own_funded,                        401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/cancel",                                   own_funded_cancellation,           401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/report",                                   own_in_progress_report,            401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "POST",   INITIATIVE + "/help-requests",                            own_gathering_support_help_request, 401, 201, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "GET",    INITIATIVE + "/help-requests",                            own_gathering_support,             401, 200, 403, 403, 403, 403, 403, 403),
    ("initiatives",   "GET",    "/api/v1/offers/tags",                                    nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "PUT",    "/api/v1/offers/me",                                      an_offer,                          401, 200, 200, 403, 403, 200, 403, 403),
    ("initiatives",   "GET",    "/api/v1/offers/me",                                      offer_of_resident,                 401, 200, 404, 404, 404, 404, 404, 404),
    ("initiatives",   "GET",    "/api/v1/asks/{ask_id}",                                  an_ask,                            401, 200, 404, 404, 404, 404, 404, 404),
    ("initiatives",   "POST",   "/api/v1/asks/{ask_id}/answer",                           ask_answered_yes,                  401, 200, 404, 404, 404, 404, 404, 404),
    ("initiatives",   "GET",    "/api/v1/areas/{area_code}/help-statistics",              in_the_area,                       401, 403, 403, 200, 403, 403, 403, 403),
    # withdrawing finds the caller's offer or none: the same answer either way
    ("initiatives",   "DELETE", "/api/v1/offers/me",                                      nothing,                           401, 204, 204, 204, 204, 204, 204, 204),

    ("vouchers",      "POST",   "/api/v1/rounds",                                         new_round,                         401, 403, 403, 201, 403, 403, 403, 403),
    ("vouchers",      "GET",    "/api/v1/rounds",                                         nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/api/v1/me/export",                                      nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    ROUND,                                                    a_round,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    ROUND + "/initiatives",                                   a_round,                           401, 200, 403, 200, 403, 200, 403, 403),
    ("vouchers",      "GET",    ROUND + "/ledger",                                        a_round,                           401, 403, 403, 200, 403, 403, 403, 403),
    ("vouchers",      "POST",   ROUND + "/close",                                         fresh_round,                       401, 403, 403, 200, 403, 403, 403, 403),
    ("vouchers",      "POST",   ROUND + "/wallet-issuances",                              wallet_issuance,                   401, 403, 403, 201, 403, 403, 403, 403),
    ("vouchers",      "POST",   ROUND + "/wallets/me",                                    fresh_round,                       401, 201, 403, 403, 403, 201, 403, 403),
    ("vouchers",      "GET",    ROUND + "/wallets/me",                                    wallet_of_resident,                401, 200, 404, 404, 404, 404, 404, 404),
    ("vouchers",      "POST",   ROUND + "/pledges",                                       pledge,                            401, 201, 404, 404, 404, 404, 404, 404),
    ("vouchers",      "DELETE", ROUND + "/pledges/{pledge_id}",                           pledge_of_resident,                401, 200, 404, 404, 404, 404, 404, 404),
    ("vouchers",      "PUT",    ROUND + "/ballots/me",                                    equal_shares_ballot,               401, 200, 403, 403, 403, 200, 403, 403),
    ("vouchers",      "GET",    ROUND + "/ballots/me",                                    ballot_of_resident,                401, 200, 404, 404, 404, 404, 404, 404),
    ("vouchers",      "GET",    ROUND + "/outcome",                                       closed_equal_shares_round,         401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    ROUND + "/pabulib",                                       closed_equal_shares_round,         401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "POST",   "/api/v1/pabulib-checks",                                 pabulib_file,                      401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "PUT",    "/api/v1/areas/{area_code}/steering-group",               steering_group_registration,       401, 403, 403, 200, 403, 403, 403, 403),
    ("vouchers",      "GET",    "/api/v1/areas/{area_code}/steering-group",               the_area,                          401, 403, 403, 200, 403, 200, 403, 403),
    ("vouchers",      "POST",   ROUND + "/awards",                                        award_proposal,                    401, 403, 403, 403, 403, 201, 403, 403),
    ("vouchers",      "PUT",    ROUND + "/awards/{award_id}/votes/me",                    vote_on_open_proposal,             401, 403, 403, 403, 403, 200, 403, 403),
    ("vouchers",      "GET",    ROUND + "/awards",                                        open_proposal,                     401, 403, 403, 200, 403, 200, 403, 403),
    ("vouchers",      "GET",    ROUND + "/awards/{award_id}",                             open_proposal,                     401, 403, 403, 200, 403, 200, 403, 403),
    ("vouchers",      "GET",    "/api/v1/initiative-budgets/{initiative_id}",             awarded_initiative,                401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "POST",   "/api/v1/expense-claims",                                 expense,                           401, 201, 403, 403, 403, 403, 403, 403),
    ("vouchers",      "GET",    "/api/v1/expense-claims",                                 nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/api/v1/expense-claims/{claim_id}",                      claim_of_resident,                 401, 200, 404, 200, 404, 200, 404, 404),
    ("vouchers",      "POST",   "/api/v1/expense-claims/{claim_id}/decision",             claim_approval,                    401, 403, 403, 200, 403, 200, 403, 403),
    ("vouchers",      "GET",    "/api/v1/payouts",                                        nothing,                           401, 403, 403, 200, 200, 403, 403, 200),
    ("vouchers",      "POST",   "/api/v1/payouts/{payout_id}/confirmation",               payout_confirmation,               401, 403, 403, 403, 403, 403, 403, 200),
    ("vouchers",      "POST",   "/api/v1/payouts/by-reference/{reference}/confirmation",  payout_confirmation_by_reference,  401, 403, 403, 403, 403, 403, 403, 200),
    ("vouchers",      "PUT",    "/api/v1/initiative-budgets/{initiative_id}/bank-account", bank_account_to_give,             401, 200, 403, 403, 403, 403, 403, 403),
    ("vouchers",      "GET",    "/api/v1/initiative-budgets/{initiative_id}/bank-account", given_bank_account,               401, 200, 404, 404, 404, 404, 404, 200),
    ("vouchers",      "POST",   "/api/v1/payouts/{payout_id}/cancellation",               payout_cancellation,               401, 403, 403, 200, 403, 403, 403, 200),
    ("vouchers",      "GET",    "/api/v1/payout-batches",                                 nothing,                           401, 403, 403, 200, 200, 403, 403, 200),
    ("vouchers",      "GET",    "/api/v1/payout-batches/{batch_id}",                      a_batch,                           401, 403, 403, 200, 200, 403, 403, 200),
    ("vouchers",      "POST",   "/api/v1/payout-batches/{batch_id}/close",                open_batch,                        401, 403, 403, 200, 200, 403, 403, 200),
    ("vouchers",      "GET",    "/api/v1/payout-batches/{batch_id}/pain001",              a_batch,                           401, 403, 403, 403, 403, 403, 403, 200),
    ("vouchers",      "POST",   "/api/v1/bank-statements",                                statement_upload,                  401, 403, 403, 403, 403, 403, 403, 200),
    ("vouchers",      "GET",    "/api/v1/bank-statements/{statement_id}",                 uploaded_statement,                401, 403, 403, 200, 200, 403, 403, 200),

    ("notifications", "PUT",    "/api/v1/contact-details/me",                             contact_details,                   401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/api/v1/contact-details/me",                             registered_contact_details,        401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "DELETE", "/api/v1/contact-details/me",                             nothing,                           401, 204, 204, 204, 204, 204, 204, 204),
    ("notifications", "PUT",    "/api/v1/preferences/me",                                 preferences,                       401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/api/v1/preferences/me",                                 nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "PUT",    "/api/v1/area-follows/me",                                area_follows,                      401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/api/v1/area-follows/me",                                nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/api/v1/inbox",                                          nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "POST",   "/api/v1/inbox/{notification_id}/read",                   message_to_resident,               401, 200, 404, 404, 404, 404, 404, 404),
    ("notifications", "GET",    "/api/v1/notifications/me",                               nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "POST",   "/api/v1/webhook-subscriptions",                          new_subscription,                  401, 403, 403, 403, 403, 403, 201, 403),
    ("notifications", "GET",    "/api/v1/webhook-subscriptions",                          nothing,                           401, 403, 403, 403, 403, 403, 200, 403),
    ("notifications", "GET",    SUBSCRIPTION,                                             a_subscription,                    401, 403, 403, 403, 403, 403, 200, 403),
    ("notifications", "PATCH",  SUBSCRIPTION,                                             subscription_change,               401, 403, 403, 403, 403, 403, 200, 403),
    ("notifications", "DELETE", SUBSCRIPTION,                                             fresh_subscription,                401, 403, 403, 403, 403, 403, 204, 403),
    ("notifications", "POST",   SUBSCRIPTION + "/secret",                                 fresh_subscription,                401, 403, 403, 403, 403, 403, 200, 403),
    ("notifications", "GET",    SUBSCRIPTION + "/deliveries",                             a_subscription,                    401, 403, 403, 403, 403, 403, 200, 403),
    ("notifications", "POST",   SUBSCRIPTION + "/enable",                                 disabled_subscription,             401, 403, 403, 403, 403, 403, 200, 403),

    # probes, metrics and the published documents: served to anyone
    ("initiatives",   "GET",    "/healthz",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    "/readyz",                                                nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    "/metrics",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    "/openapi.json",                                          nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    "/api/v1/openapi.json",                                  nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    "/asyncapi.json",                                         nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/healthz",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/readyz",                                                nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/metrics",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/openapi.json",                                          nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/api/v1/openapi.json",                                  nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("vouchers",      "GET",    "/asyncapi.json",                                         nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/healthz",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/readyz",                                                nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/metrics",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/openapi.json",                                          nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/api/v1/openapi.json",                                  nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("notifications", "GET",    "/asyncapi.json",                                         nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/healthz",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/readyz",                                                nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/metrics",                                               nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/openapi.json",                                          nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/api/v1/openapi.json",                                  nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/asyncapi.json",                                         nothing,                           200, 200, 200, 200, 200, 200, 200, 200),

    # the area registry: the administrator imports the CBS wijk- en buurtkaart; anyone reads the areas
    ("initiatives",   "PUT",    "/api/v1/areas",                                          areas_of_the_municipality,         401, 403, 403, 403, 403, 403, 200, 403),
    ("initiatives",   "GET",    "/api/v1/areas",                                          nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("initiatives",   "GET",    "/api/v1/areas/{area_code}",                              in_the_area,                       200, 200, 200, 200, 200, 200, 200, 200),

    # the portal's public read side: anyone, signed in or not, whatever their roles and areas
    ("portal",        "GET",    "/api/v1/public/areas/{area_code}",                       public_area,                       200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/api/v1/public/areas/{area_code}/initiatives",           in_the_area,                       200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/api/v1/public/areas/{area_code}/rounds",                in_the_area,                       200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/api/v1/public/initiatives/{initiative_id}",             public_initiative,                 200, 200, 200, 200, 200, 200, 200, 200),
    # the portal's pages: a bearer token signs nobody in there (a session cookie does), so every caller is anonymous;
    # pages for people signed in send them to sign in (303), forms without their CSRF token are refused (403), and
    # sign-in answers 503 where no identity provider is set
    ("portal",        "GET",    "/",                                                           nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/static/{name}",                                              page_ids,                          200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "POST",   "/taal",                                                       nothing,                           403, 403, 403, 403, 403, 403, 403, 403),
    ("portal",        "GET",    "/buurten/{area_code}",                                        in_the_area,                       200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/initiatieven/{initiative_id}",                               public_initiative,                 200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "GET",    "/initiatieven/nieuw",                                         nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/nieuw",                                         nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/{initiative_id}/steun",                         page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/{initiative_id}/indienen",                      page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/{initiative_id}/meedoen",                       page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/{initiative_id}/beginnen",                      page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/{initiative_id}/hulpvraag",                     page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/vragen/{ask_id}",                                            page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/vragen/{ask_id}",                                            page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/instellingen/hulp",                                          nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/initiatieven/{initiative_id}/declareren",                    page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/{initiative_id}/declareren",                    page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/initiatieven/{initiative_id}/verslag",                       page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/initiatieven/{initiative_id}/verslag",                       page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/rondes/{round_id}",                                          page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/rondes/{round_id}/portemonnee",                              page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/rondes/{round_id}/toezeggingen",                             page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/rondes/{round_id}/stembiljet",                               page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/rondes/{round_id}/sluiten",                                  page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/rondes/{round_id}/toekenningen",                             page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/rondes/{round_id}/toekenningen",                             page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/portemonnee",                                                nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/beoordelen",                                                 nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/beoordelen/{initiative_id}",                                 page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/beoordelen/{initiative_id}",                                 page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/declaraties",                                                nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/declaraties/{claim_id}",                                     page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/declaraties/{claim_id}",                                     page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/inbox",                                                      nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/inbox/{notification_id}/gelezen",                            page_ids,                          303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/instellingen",                                               nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "POST",   "/instellingen",                                               nothing,                           303, 303, 303, 303, 303, 303, 303, 303),
    ("portal",        "GET",    "/auth/login",                                                 nothing,                           503, 503, 503, 503, 503, 503, 503, 503),
    ("portal",        "GET",    "/auth/callback",                                              nothing,                           503, 503, 503, 503, 503, 503, 503, 503),
    ("portal",        "GET",    "/auth/logout",                                                nothing,                           200, 200, 200, 200, 200, 200, 200, 200),
    ("portal",        "POST",   "/auth/logout",                                                nothing,                           403, 403, 403, 403, 403, 403, 403, 403),

    ("notifications", "GET",    "/api/v1/me/export",                                      nothing,                           401, 200, 200, 200, 200, 200, 200, 200),
    # last: every caller is forgotten by it
    ("notifications", "DELETE", "/api/v1/me",                                             nothing,                           401, 202, 202, 202, 202, 202, 202, 202),
]
# fmt: on

# FastAPI's pages for people who read the API in a browser: they serve /openapi.json (which has its rows)
DOCUMENTATION_PAGES = {"/docs", "/docs/oauth2-redirect", "/redoc"}


def served(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route `app` serves, HEAD and OPTIONS aside (Starlette answers them for
    GET routes itself); a route without methods (a mount) counts as method `*`."""
    routes = set()
    for route in iter_route_contexts(app.routes):
        if route.path in DOCUMENTATION_PAGES:
            continue
        methods = (route.methods or {"*"}) - {"HEAD", "OPTIONS"}
        routes |= {(method, route.path) for method in methods}
    return routes


def test_every_route_has_a_row_and_every_row_a_route(tmp_path):
    key_file = tmp_path / "public.pem"
    rows = {(service, method, path) for service, method, path, *_ in MATRIX}
    assert len(rows) == len(MATRIX), "a (service, method, path) has two rows"
    routes = {
        (name, method, path) for name, service in unstarted(key_file).items() for method, path in served(service.app)
    }
    without_row = sorted(routes - rows)
    without_route = sorted(rows - routes)
    assert not without_row, "routes without a row in MATRIX (add who may call them): " + ", ".join(
        map(" ".join, without_row)
    )
    assert not without_route, "rows of MATRIX that name no route: " + ", ".join(map(" ".join, without_route))


@pytest.fixture(scope="module")
async def apps(tmp_path_factory):
    async with running(tmp_path_factory.mktemp("keys")) as started:
        yield started


@pytest.mark.parametrize("row", MATRIX, ids=lambda row: f"{row[0]} {row[1]} {row[2]}")
async def test_each_caller_gets_the_answer_the_matrix_gives(apps: Apps, row: Row):
    service, method, template, setup, *expected = row
    world = apps[service]
    wrong = []
    for column, want in zip(COLUMNS, expected, strict=True):
        who = CALLERS[column]
        call = await setup(world, who)
        answer = await world.request(
            method,
            template.format(**call.params),
            who,
            json=call.json,
            idempotency_key=call.idempotency_key,
            content=call.content,
            content_type=call.content_type,
        )
        if answer.status_code not in (want if isinstance(want, frozenset) else {want}):
            problem = answer.json() if answer.headers.get("content-type", "").endswith("problem+json") else {}
            detail = problem.get("detail", "")
            wrong.append(f"{column}: got {answer.status_code}, expected {want} {detail}".rstrip())
    assert not wrong, f"{method} {template} on {service}:\n  " + "\n  ".join(wrong)
