"""The callers, the running services and the resources of the authorization matrix
(`test_authorization_matrix.py`).

Eight callers, one per column of the matrix, as the identity provider would issue their tokens (claims `sub`,
`roles`, `areas`; the roles are `buurtkracht_kit.tokens.Role`):

- anonymous: no Authorization header;
- resident: a resident of the area (role resident, home buurt BU03630101 in the wijk WK036301);
- resident_elsewhere: a resident of another wijk (role resident, home buurt BU03630201 in WK036302);
- official: the wijkcoördinator of the wijk (role official, areas [WK036301]);
- official_elsewhere: the wijkcoördinator of another wijk (role official, areas [WK036302]);
- steering_group: a member of the wijk's steering group (roles resident and steering_group, home buurt
  BU03630102 in the wijk). Membership is data of the vouchers service: an official registers the members of an
  area (`PUT /api/v1/areas/{area_code}/steering-group`); the role alone makes nobody a member;
- admin: the operator (role admin, areas [GM0363]: the whole municipality, which grants nothing by itself);
- integration: the finance system with a service token (role integration, no areas).

Every resource belongs to the wijk WK036301. Other people appear only while resources are set up: a neighbour
who initiates the initiatives the resident of the area has no part in, neighbours who support an initiative to
its review, and a second member of the steering group.

The services run in-process, each on a scratch database of its own, as an `api` process (`process_role`): HTTP
only, without a Kafka consumer, outbox relay or background loop, so the matrix neither needs nor disturbs Kafka.
What another service would tell them by an event (an initiative approved, or funded) is applied with the
service's own reaction in a unit of work, as its consumer would.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from initiatives.app import create as create_initiatives
from initiatives.service import commands as initiative_commands
from initiatives.settings import InitiativesSettings
from notifications.app import create as create_notifications
from notifications.domain.recipients import KINDS
from notifications.settings import NotificationsSettings
from portal.app import create as create_portal
from portal.service import projection
from portal.settings import PortalSettings
from vouchers.app import create as create_vouchers
from vouchers.service import reactions
from vouchers.settings import VouchersSettings

from buurtkracht_contracts import initiatives as initiative_events
from buurtkracht_kit.auth import mint
from buurtkracht_kit.runtime import Service
from tests import areas
from tests.keys import PRIVATE, PUBLIC
from tests.stack import KAFKA, PG_ADMIN_URL, database_url

MUNICIPALITY, AREA, AREA_ELSEWHERE = "GM0363", "WK036301", "WK036302"
SUPPORT_THRESHOLD = 3
BUDGET_LINES = [{"description": "plants", "amount_cents": 60_000}, {"description": "tools", "amount_cents": 15_000}]
APPROVED_CENTS = 50_000


@dataclass(frozen=True)
class Person:
    subject: str
    roles: tuple[str, ...]
    areas: tuple[str, ...]


COLUMNS = (
    "anonymous",
    "resident",
    "resident_elsewhere",
    "official",
    "official_elsewhere",
    "steering_group",
    "admin",
    "integration",
)

CALLERS: dict[str, Person | None] = {
    "anonymous": None,
    "resident": Person("r-here", ("resident",), ("BU03630101",)),
    "resident_elsewhere": Person("r-away", ("resident",), ("BU03630201",)),
    "official": Person("o-here", ("official",), (AREA,)),
    "official_elsewhere": Person("o-away", ("official",), (AREA_ELSEWHERE,)),
    "steering_group": Person("sg-here", ("resident", "steering_group"), ("BU03630102",)),
    "admin": Person("admin", ("admin",), (MUNICIPALITY,)),
    "integration": Person("finance", ("integration",), ()),
}
RESIDENT = CALLERS["resident"]
OFFICIAL = CALLERS["official"]
MEMBER = CALLERS["steering_group"]
ADMIN = CALLERS["admin"]
NEIGHBOUR = Person("r-neighbour", ("resident",), ("BU03630103",))
SUPPORTERS = [Person(f"r-supporter-{n}", ("resident",), ("BU03630104",)) for n in range(SUPPORT_THRESHOLD)]
OTHER_MEMBER = Person("sg-other", ("resident", "steering_group"), ("BU03630105",))

_tokens: dict[Person, str] = {}


def authorization(person: Person | None) -> dict[str, str]:
    """The Authorization header of `person`'s token (none for the anonymous caller)."""
    if person is None:
        return {}
    if person not in _tokens:
        _tokens[person] = mint(
            PRIVATE,
            issuer="https://login.buurtkracht.local",
            audience="buurtkracht",
            subject=person.subject,
            roles=list(person.roles),
            areas=list(person.areas),
            ttl_seconds=4 * 3600,
        )
    return {"Authorization": f"Bearer {_tokens[person]}"}


@dataclass(frozen=True)
class Call:
    """What a row's request needs besides its method and path template: the path's parameters, a body, and
    whether it carries an Idempotency-Key (a new one on every request)."""

    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    idempotency_key: bool = False
    content: bytes | None = None  # a body that is not JSON, sent as `content_type`
    content_type: str | None = None


class World:
    """One running service, a client for its API, and the resources set up in it so far."""

    def __init__(self, service: Service, client: httpx.AsyncClient) -> None:
        self.service, self.client = service, client
        self._shared: dict[str, Any] = {}

    async def request(
        self,
        method: str,
        path: str,
        who: Person | None,
        *,
        json: Any = None,
        idempotency_key: bool = False,
        content: bytes | None = None,
        content_type: str | None = None,
    ) -> httpx.Response:
        headers = authorization(who)
        if idempotency_key:
            headers["Idempotency-Key"] = str(uuid.uuid4())
        if content_type:
            headers["Content-Type"] = content_type
        return await self.client.request(method, path, json=json, content=content, headers=headers)

    async def ok(
        self, method: str, path: str, who: Person | None, *, json: Any = None, idempotency_key: bool = False
    ) -> Any:
        """The JSON answer of a request that sets something up; it must succeed."""
        answer = await self.request(method, path, who, json=json, idempotency_key=idempotency_key)
        assert answer.is_success, f"setting up: {method} {path} as {who} answered {answer.status_code}: {answer.text}"
        return answer.json() if answer.content else None

    async def shared(self, name: str, make: Callable[[], Awaitable[Any]]) -> Any:
        """A resource made once and read by several rows (never changed by any)."""
        if name not in self._shared:
            self._shared[name] = await make()
        return self._shared[name]


class Initiatives(World):
    async def initiative(self, status: str, owner: Person = NEIGHBOUR) -> str:
        """A new initiative of the area, proposed by `owner` and taken to `status`: draft, gathering_support,
        in_review, approved, funded or in_progress."""
        steps = ["draft", "gathering_support", "in_review", "approved", "funded", "in_progress"]
        body = {
            "title": "Geveltuinen in de straat",
            "summary": "Groen langs de gevels",
            "description": "We leggen geveltuinen aan en onderhouden ze samen.",
            "area_code": AREA,
            "category": "green",
            "budget_lines": BUDGET_LINES,
            "volunteers_wanted": 4,
        }
        initiative_id = (await self.ok("POST", "/api/v1/initiatives", owner, json=body))["id"]
        path = f"/api/v1/initiatives/{initiative_id}"
        reached = steps.index(status)
        if reached >= 1:
            await self.ok("POST", f"{path}/submit", owner)
        if reached >= 2:
            for supporter in SUPPORTERS:
                await self.ok("POST", f"{path}/supports", supporter)
        if reached >= 3:
            review = {"decision": "approve", "approved_amount_cents": APPROVED_CENTS}
            await self.ok("POST", f"{path}/review", OFFICIAL, json=review)
        if reached >= 4:  # the vouchers service awarded it: its event, applied as the consumer applies it
            async with self.service.unit_of_work() as uow:
                await initiative_commands.mark_funded(
                    uow, uuid.UUID(initiative_id), uuid.uuid4(), APPROVED_CENTS, datetime.now(UTC)
                )
                await uow.commit()
        if reached >= 5:
            await self.ok("POST", f"{path}/start", owner)
        return initiative_id


class Vouchers(World):
    async def steering_group(self) -> None:
        members = [{"member_id": MEMBER.subject, "chair": True}, {"member_id": OTHER_MEMBER.subject, "chair": False}]
        await self.ok("PUT", f"/api/v1/areas/{AREA}/steering-group", OFFICIAL, json={"members": members})

    async def approved_initiative(self, initiators: tuple[Person, ...] = (NEIGHBOUR,)) -> str:
        """An initiative of the area the initiatives service approved (its event, applied as the consumer does)."""
        initiative_id = uuid.uuid4()
        async with self.service.unit_of_work() as uow:
            await reactions.initiative_approved(
                uow, initiative_id, AREA, "Geveltuinen", [p.subject for p in initiators], APPROVED_CENTS
            )
            await uow.commit()
        return str(initiative_id)

    async def round(self, mechanism: str = "pledge", quorum: int = 1) -> str:
        """A round of the area, open for thirty days; a pledge round takes wallet claims."""
        now = datetime.now(UTC)
        body: dict[str, Any] = {
            "area_code": AREA,
            "name": "Wijkbudget",
            "total_budget_cents": 1_000_000,
            "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(days=30)).isoformat(),
            "mechanism": mechanism,
        }
        if mechanism == "pledge":
            body |= {"voucher_amount_cents": 2_000, "allow_wallet_claims": True}
        else:
            body |= {"committee_quorum": quorum}
        return (await self.ok("POST", "/api/v1/rounds", OFFICIAL, json=body, idempotency_key=True))["id"]

    async def round_with_wallet(self) -> tuple[str, str]:
        """A pledge round, an approved initiative of the neighbour, and a wallet for the resident of the area."""
        round_id, initiative_id = await self.round(), await self.approved_initiative()
        issuance = {"resident_ids": [RESIDENT.subject]}
        await self.ok("POST", f"/api/v1/rounds/{round_id}/wallet-issuances", OFFICIAL, json=issuance)
        return round_id, initiative_id

    async def pledge(self) -> tuple[str, str]:
        """The resident of the area's pledge in a round of its own: (round, pledge)."""
        round_id, initiative_id = await self.round_with_wallet()
        body = {"initiative_id": initiative_id, "amount_cents": 1_000}
        made = await self.ok("POST", f"/api/v1/rounds/{round_id}/pledges", RESIDENT, json=body, idempotency_key=True)
        return round_id, made["id"]

    async def proposal(self) -> tuple[str, str, str]:
        """An award proposal of the other member, open (quorum two) in a committee round: (round, award,
        initiative)."""
        round_id, initiative_id = await self.round("committee", quorum=2), await self.approved_initiative()
        body = {"initiative_id": initiative_id, "amount_cents": APPROVED_CENTS}
        proposed = await self.ok(
            "POST", f"/api/v1/rounds/{round_id}/awards", OTHER_MEMBER, json=body, idempotency_key=True
        )
        return round_id, proposed["id"], initiative_id

    async def awarded_initiative(self) -> str:
        """An initiative of the resident of the area, awarded its approved amount by the steering group."""
        round_id = await self.round("committee", quorum=1)
        initiative_id = await self.approved_initiative(initiators=(RESIDENT,))
        body = {"initiative_id": initiative_id, "amount_cents": APPROVED_CENTS}
        await self.ok("POST", f"/api/v1/rounds/{round_id}/awards", MEMBER, json=body, idempotency_key=True)
        return initiative_id

    async def claim(self) -> str:
        """An expense claim of the resident of the area on their awarded initiative, awaiting a decision."""
        body = {
            "initiative_id": await self.awarded_initiative(),
            "supplier": "Tuincentrum De Pijp",
            "amount_cents": 10_000,
            "invoice_reference": f"F-{uuid.uuid4().hex[:8]}",
        }
        return (await self.ok("POST", "/api/v1/expense-claims", RESIDENT, json=body, idempotency_key=True))["id"]

    async def payout(self) -> dict[str, Any]:
        """An approved claim's payout, requested from the finance side: its id, reference and amount."""
        claim_id = await self.claim()
        decided = await self.ok(
            "POST",
            f"/api/v1/expense-claims/{claim_id}/decision",
            OFFICIAL,
            json={"decision": "approve"},
            idempotency_key=True,
        )
        return {"id": decided["payout_id"], "reference": decided["payout_reference"], "amount_cents": 10_000}


class Notifications(World):
    async def message_to(self, person: Person) -> str:
        """A new message in `person`'s in-app inbox."""
        async with self.service.unit_of_work() as uow:
            await uow.notifications.to_inbox(person.subject, KINDS[0], {"title": "Geveltuinen"}, str(uuid.uuid4()))
            items, _, _ = await uow.notifications.inbox(person.subject, 1, 0)
            await uow.commit()
        return str(items[0].id)

    async def subscription(self, disabled: bool = False) -> str:
        """A webhook subscription an admin created; switched off as after repeated failures when `disabled`."""
        body = {"url": "https://finance.example.org/hooks/buurtkracht", "event_types": ["nl.buurtkracht.vouchers.*"]}
        subscription_id = (await self.ok("POST", "/api/v1/webhook-subscriptions", ADMIN, json=body))["id"]
        if disabled:
            async with self.service.unit_of_work() as uow:
                await uow.webhooks.disable(uuid.UUID(subscription_id), "repeated_failures")
                await uow.commit()
        return subscription_id


class Portal(World):
    async def public_area(self) -> str:
        """The area in the public read model, as the portal's consumer makes it known from the registry's event."""

        async def make() -> str:
            registered = initiative_events.AreaRegistered(
                code=AREA, name="Burgwallen-Nieuwe Zijde", kind="wijk", parent_code=MUNICIPALITY
            )
            async with self.service.unit_of_work() as uow:
                await projection.area_registered(uow, registered)
                await uow.commit()
            return AREA

        return await self.shared("public_area", make)

    async def public_initiative(self) -> str:
        """An initiative of the area in the public read model, as the portal's consumer makes it known."""

        async def make() -> str:
            submitted = initiative_events.InitiativeSubmitted(
                initiative_id=uuid.uuid4(),
                area_code="BU03630101",
                title="Geveltuinen",
                initiators=[NEIGHBOUR.subject],
                category="green",
                summary="Groen langs de gevels",
                requested_amount_cents=75_000,
                status="gathering_support",
                support_threshold=SUPPORT_THRESHOLD,
                support_deadline=None,
            )
            async with self.service.unit_of_work() as uow:
                await projection.initiative_changed(uow, submitted)
                await uow.commit()
            return str(submitted.initiative_id)

        return await self.shared("public_initiative", make)


@dataclass(frozen=True)
class Apps:
    initiatives: Initiatives
    vouchers: Vouchers
    notifications: Notifications
    portal: Portal

    def __getitem__(self, service: str) -> World:
        return getattr(self, service)


def settings(key_file: Path, database: str = "postgresql://unused/unused") -> dict[str, Any]:
    """What every service of the matrix is started with: an HTTP process of its own on `database`, checking
    tokens with the tests' key."""
    return {
        "database_url": database,
        "kafka_bootstrap_servers": KAFKA,
        "jwt_public_key_file": key_file,
        "process_role": "api",
    }


def unstarted(key_file: Path) -> dict[str, Service]:
    """Every service, built but not started: their routes are all there is to read."""
    return {
        "initiatives": create_initiatives(InitiativesSettings(**settings(key_file))),
        "vouchers": create_vouchers(VouchersSettings(**settings(key_file))),
        "notifications": create_notifications(NotificationsSettings(**settings(key_file))),
        "portal": create_portal(PortalSettings(**settings(key_file))),
    }


@contextlib.asynccontextmanager
async def scratch_databases(count: int) -> AsyncIterator[list[str]]:
    """`count` fresh, empty databases (one per service: each service has its own), dropped afterwards."""
    names = [f"test_authz_{uuid.uuid4().hex[:10]}" for _ in range(count)]
    admin = await asyncpg.connect(PG_ADMIN_URL)
    try:
        for name in names:
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield [database_url(name) for name in names]
    finally:
        for name in names:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def running(key_dir: Path) -> AsyncIterator[Apps]:
    """Every service started on scratch databases, with a client each; the steering group of the area
    registered."""
    key_file = key_dir / "public.pem"
    key_file.write_text(PUBLIC)
    async with scratch_databases(4) as (initiatives_db, vouchers_db, notifications_db, portal_db):
        services = (
            create_initiatives(
                InitiativesSettings(**settings(key_file, initiatives_db), support_threshold=SUPPORT_THRESHOLD)
            ),
            create_vouchers(VouchersSettings(**settings(key_file, vouchers_db))),
            create_notifications(NotificationsSettings(**settings(key_file, notifications_db))),
            create_portal(PortalSettings(**settings(key_file, portal_db))),
        )
        async with contextlib.AsyncExitStack() as stack:
            worlds = []
            for kind, service in zip((Initiatives, Vouchers, Notifications, Portal), services, strict=True):
                await stack.enter_async_context(LifespanManager(service.app))
                client = await stack.enter_async_context(
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test")
                )
                worlds.append(kind(service, client))
            apps = Apps(*worlds)
            # the municipality's areas (the committed CBS sample holds the wijken of the matrix) come first
            await areas.register(apps.initiatives.client, authorization(ADMIN))
            await apps.vouchers.steering_group()
            yield apps
