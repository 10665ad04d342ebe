"""The portal's pages on the real stack: the public pages from the read model (events in, HTML out), and the
signed-in pages calling the real initiatives and vouchers services (each on a scratch database, on Kafka) with the
person's access token. A session is made in the portal's database as sign-in makes it (the browser tier signs in
through the local identity provider).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from initiatives.app import create as create_initiatives
from initiatives.settings import InitiativesSettings
from notifications.app import create as create_notifications
from notifications.settings import NotificationsSettings
from portal.app import create as create_portal
from portal.service import web_sessions
from portal.settings import PortalSettings
from vouchers.app import create as create_vouchers
from vouchers.settings import VouchersSettings

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.registry import model_for
from buurtkracht_contracts.topics import TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import topics
from buurtkracht_kit.tokens import mint
from tests import areas
from tests.keys import PRIVATE, PUBLIC
from tests.stack import PG_ADMIN_URL, database_url
from tests.waiting import eventually

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
WIJK = f"WK0598{uuid.uuid4().int % 100:02d}"  # areas of its own: other tests put events on the same topics
BUURT = f"BU{WIJK[2:]}01"
OWNER, NEIGHBOUR, OFFICIAL, MEMBER = (f"{who}-{RUN}" for who in ("r-owner", "r-neighbour", "o-official", "s-member"))
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-tests"
NOW = datetime.now(UTC)
ISSUER, AUDIENCE = "https://login.buurtkracht.local", "buurtkracht"
SECRET = "test-session-secret"


def token_of(subject: str, roles: list[str], areas: list[str]) -> str:
    return mint(PRIVATE, issuer=ISSUER, audience=AUDIENCE, subject=subject, roles=roles, areas=areas)


class Hosts(httpx.AsyncBaseTransport):
    """The services by host name, each an app in this process; any other host is unreachable."""

    def __init__(self, apps: dict) -> None:
        self._transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}
        self.down: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in self._transports or request.url.host in self.down:
            raise httpx.ConnectError(f"{request.url.host} unreachable", request=request)
        return await self._transports[request.url.host].handle_async_request(request)


@pytest.fixture(scope="module")
async def databases():
    names = {
        service: f"test_{service}_{uuid.uuid4().hex[:10]}"
        for service in ("portal", "initiatives", "vouchers", "notifications")
    }
    admin = await asyncpg.connect(PG_ADMIN_URL)
    for name in names.values():
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {service: database_url(name) for service, name in names.items()}
    finally:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def started(service):
    for _ in range(300):
        if await service.consuming():
            return
        await asyncio.sleep(0.1)
    assert await service.consuming()


@pytest.fixture(scope="module")
async def system(databases, kafka_bootstrap, tmp_path_factory):
    """The initiatives and vouchers services and the portal, each consuming the shared topics as its own group."""
    groups = {name: f"{name}-web-test-{RUN}" for name in ("portal", "initiatives", "vouchers", "notifications")}
    await topics.ensure(
        {"bootstrap_servers": kafka_bootstrap},
        [*all_topics(), *(TopicSpec(dead_letter_topic(group), 1) for group in groups.values())],
    )
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    common = {
        "jwt_public_key_file": key,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "kafka_bootstrap_servers": kafka_bootstrap,
        "consumer_start": "latest",
        "relay_poll_interval_seconds": 0.05,
    }
    initiatives = create_initiatives(
        InitiativesSettings(
            service_name=groups["initiatives"], database_url=databases["initiatives"], support_threshold=1, **common
        )
    )
    vouchers = create_vouchers(
        VouchersSettings(service_name=groups["vouchers"], database_url=databases["vouchers"], **common)
    )
    notifications = create_notifications(
        NotificationsSettings(
            service_name=groups["notifications"], database_url=databases["notifications"], smtp_port=9, **common
        )
    )
    hosts = Hosts(
        {"initiatives.test": initiatives.app, "vouchers.test": vouchers.app, "notifications.test": notifications.app}
    )
    portal = create_portal(
        PortalSettings(
            service_name=groups["portal"],
            database_url=databases["portal"],
            session_secret=SECRET,
            initiatives_url="http://initiatives.test",
            vouchers_url="http://vouchers.test",
            notifications_url="http://notifications.test",
            municipality_name="Gemeente Testdorp",
            area_names_seconds=0,  # the names as registered a moment ago, not as read a minute ago
            **common,
        ),
        web_transport=hosts,
    )
    async with (
        LifespanManager(initiatives.app),
        LifespanManager(vouchers.app),
        LifespanManager(notifications.app),
        LifespanManager(portal.app),
    ):
        for service in (initiatives, vouchers, notifications, portal):
            await started(service)
        async with httpx.AsyncClient(transport=hosts, base_url="http://initiatives.test") as registry:
            admin = {"authorization": f"Bearer {token_of('a-web-test', ['admin'], ['GM0598'])}"}
            await areas.register(registry, admin, "GM0598", WIJK, BUURT)
        yield {"portal": portal, "initiatives": initiatives, "vouchers": vouchers, "hosts": hosts}


def browser(system) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=system["portal"].app), base_url="http://portal.test")


async def signed_in_browser(
    system, subject: str, roles: list[str], areas: list[str], access_token: str | None = None
) -> httpx.AsyncClient:
    """A browser with the session that signing in as `subject` leaves, its cookie signed as the portal signs it."""
    from portal.domain.web import signed

    async with system["portal"].unit_of_work() as uow:
        token, _ = await web_sessions.signed_in(
            uow,
            None,
            subject=subject,
            display_name=f"Bewoner {subject}",
            roles=roles,
            areas=areas,
            access_token=access_token or token_of(subject, roles, areas),
            id_token=None,
            hours=1,
        )
        await uow.commit()
    client = browser(system)
    client.cookies.set("bk_session", signed(token, SECRET))
    return client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def hidden(html: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', html).group(1)


async def publish(kafka_bootstrap: str, *events: Event) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            record = to_kafka(Envelope.wrap(event, SOURCE))
            await producer.send_and_wait(
                model_for(event.event_type).topic, record.value, key=record.key, headers=record.headers
            )
    finally:
        await producer.stop()


def assert_secure_html(answer: httpx.Response) -> None:
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in answer.text and " style=" not in answer.text and "<style" not in answer.text
    assert answer.text.count("<h1") == 1


# ---------------------------------------------------------------------------------------------------- public


PARK = uuid.uuid4()


@pytest.fixture(scope="module")
async def park(system, kafka_bootstrap):
    """A completed initiative of the buurt, through Kafka: submitted, supported, approved, funded, reported."""
    facts = {"initiative_id": PARK, "area_code": BUURT, "title": "Speeltuin in het park", "initiators": [OWNER]}
    await publish(
        kafka_bootstrap,
        i.InitiativeSubmitted(
            **facts,
            category="play",
            summary="Een klimrek voor de kleintjes",
            requested_amount_cents=80_000,
            status="gathering_support",
            support_threshold=1,
            support_deadline=NOW + timedelta(days=42),
            budget_lines=[i.PlannedBudgetLine(description="Klimrek", amount_cents=80_000)],
        ),
        i.InitiativeSupported(**facts, supporter_id=NEIGHBOUR, support_count=1),
        i.InitiativeApproved(
            **facts, official_id=OFFICIAL, requested_amount_cents=80_000, approved_amount_cents=80_000
        ),
        i.InitiativeFunded(**facts, round_id=uuid.uuid4(), awarded_amount_cents=80_000),
        i.InitiativeCompleted(
            **facts,
            reported_by=OWNER,
            what_was_done="Het klimrek staat er",
            spent_amount_cents=79_500,
            spending=[i.BudgetLineSpending(description="Klimrek", budgeted_cents=80_000, spent_cents=79_500)],
        ),
    )

    async def completed():
        async with browser(system) as client:
            answer = await client.get(f"/initiatieven/{PARK}")
            return answer.status_code == 200 and "Het klimrek staat er" in answer.text

    assert await eventually(completed)


async def test_the_public_pages_show_the_read_model_without_signing_in_and_name_no_resident(system, park):
    async with browser(system) as client:
        home = await client.get("/")
        area = await client.get(f"/buurten/{BUURT}")
        page = await client.get(f"/initiatieven/{PARK}")
    for answer in (home, area, page):
        assert answer.status_code == 200, answer.text
        assert_secure_html(answer)
        assert 'lang="nl"' in answer.text and 'href="#main"' in answer.text and "Gemeente Testdorp" in answer.text
        for resident in (OWNER, NEIGHBOUR, OFFICIAL):
            assert resident not in answer.text
    assert f'href="/buurten/{BUURT}"' in home.text
    assert "Speeltuin in het park" in area.text and "Klaar: wat er is gedaan" in area.text
    assert "Klimrek" in page.text and "€ 795,00" in page.text and "Het klimrek staat er" in page.text
    assert f"/initiatieven/{PARK}/steun" not in page.text  # nobody signed in: no support button


async def test_the_pages_name_an_area_as_the_registry_tells_it(system, park):
    async def named():
        async with browser(system) as client:
            area = await client.get(f"/buurten/{BUURT}")
            page = await client.get(f"/initiatieven/{PARK}")
        heading = f'<h1 class="utrecht-heading-1">Testgebied {BUURT}</h1>'
        return heading in area.text and f'href="/buurten/{BUURT}">Testgebied {BUURT}</a>' in page.text

    assert await eventually(named)


async def test_the_buurt_page_draws_the_outline_the_registry_tells(system, park):
    outlined = areas.stand_ins(BUURT)
    outlined["features"][0]["geometry"] = {  # 400 by 300 metres in RD New coordinates
        "type": "Polygon",
        "coordinates": [[[120000, 487000], [120400, 487000], [120400, 487300], [120000, 487300], [120000, 487000]]],
    }
    async with httpx.AsyncClient(transport=system["hosts"], base_url="http://initiatives.test") as registry:
        admin = {"authorization": f"Bearer {token_of('a-web-test', ['admin'], ['GM0598'])}"}
        assert (await registry.put("/api/v1/areas", json=outlined, headers=admin)).status_code == 200

    async def drawn():
        async with browser(system) as client:
            page = await client.get(f"/buurten/{BUURT}")
        return page if 'd="M 0.0 240.0 L 320.0 240.0 L 320.0 0.0 L 0.0 0.0 L 0.0 240.0 Z"' in page.text else None

    page = await eventually(drawn)
    assert page, "the outline never reached the buurt page"
    assert (
        'viewBox="0 0 320.0 240.0"' in page.text
        and f'<title id="map-title">Kaart: de grens van Testgebied {BUURT}' in page.text
    )
    assert_secure_html(page)  # an SVG drawn from attributes: no inline style for the CSP to block


async def test_english_is_one_form_away_and_stays(system, park):
    async with browser(system) as client:
        first = await client.get(f"/buurten/{BUURT}")
        switched = await client.post(
            "/taal", data={"csrf_token": csrf_of(first.text), "taal": "en", "next": f"/buurten/{BUURT}"}
        )
        assert switched.status_code == 303 and switched.headers["location"] == f"/buurten/{BUURT}"
        english = await client.get(f"/buurten/{BUURT}")
    assert 'lang="en"' in english.text and "Done: what was achieved" in english.text


async def test_after_switching_language_a_foreign_next_goes_to_the_front_page(system):
    async with browser(system) as client:
        first = await client.get("/")
        for foreign in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            answer = await client.post("/taal", data={"csrf_token": csrf_of(first.text), "taal": "nl", "next": foreign})
            assert (answer.status_code, answer.headers["location"]) == (303, "/")


async def test_unknown_pages_and_areas_answer_a_page_not_a_traceback(system):
    async with browser(system) as client:
        for path in ("/buurten/nowhere", f"/initiatieven/{uuid.uuid4()}", "/initiatieven/not-an-id"):
            answer = await client.get(path)
            assert answer.status_code == 404, path
            assert_secure_html(answer)


async def test_only_the_named_assets_are_served_and_kept_long_under_a_url_that_names_their_content(system):
    async with browser(system) as client:
        home = await client.get("/")
        for name in ("utrecht.css", "tokens.css", "htmx.min.js", "portal.css"):
            [url] = re.findall(rf'"(/static/{re.escape(name)}\?v=[0-9a-f]{{12}})"', home.text)
            answer = await client.get(url)
            assert answer.status_code == 200, name
            assert "max-age=31536000" in answer.headers["cache-control"]
            assert url.endswith(hashlib.sha256(answer.content).hexdigest()[:12]), name
        assert (await client.get("/static/package.json")).status_code == 404
        assert (await client.get("/static/..%2Fpackage.json")).status_code == 404


async def test_the_api_documentation_page_keeps_its_scripts_and_the_json_api_gets_no_page_headers(system, park):
    async with browser(system) as client:
        docs = await client.get("/docs")
        api = await client.get(f"/api/v1/public/initiatives/{PARK}")
    assert docs.status_code == 200 and "content-security-policy" not in docs.headers
    assert docs.headers["x-frame-options"] == "DENY"
    assert api.status_code == 200 and "content-security-policy" not in api.headers


async def test_the_openapi_document_holds_the_json_api_only(system):
    async with browser(system) as client:
        document = (await client.get("/openapi.json")).json()
    assert document["paths"] and all(
        path.startswith("/public/") or path == "/openapi.json" for path in document["paths"]
    )


# ---------------------------------------------------------------------------------------------------- sign-in


@pytest.mark.parametrize(
    "path", ["/portemonnee", "/inbox", "/instellingen", "/initiatieven/nieuw", "/beoordelen", "/declaraties"]
)
async def test_pages_for_people_signed_in_send_others_to_sign_in_and_back(system, path):
    async with browser(system) as client:
        answer = await client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/auth/login?next={path}"


async def test_without_an_identity_provider_sign_in_is_off_with_a_page(system):
    async with browser(system) as client:
        answer = await client.get("/auth/login?next=https://evil.example/")
    assert answer.status_code == 503
    assert_secure_html(answer)
    assert "Inloggen is hier niet ingesteld" in answer.text


async def test_an_identity_provider_that_cannot_be_reached_gives_a_page(databases, tmp_path):
    key = tmp_path / "public.pem"
    key.write_text(PUBLIC)
    portal = create_portal(
        PortalSettings(
            service_name=f"portal-web-test-idp-{RUN}",
            database_url=databases["portal"],
            jwt_public_key_file=key,
            process_role="api",
            oidc_issuer="http://idp.test",  # not among the hosts: unreachable
        ),
        web_transport=Hosts({}),
    )
    async with LifespanManager(portal.app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=portal.app), base_url="http://portal.test"
        ) as client:
            answer = await client.get("/auth/login?next=/portemonnee")
    assert answer.status_code == 503
    assert_secure_html(answer)
    assert "de inlogdienst is niet bereikbaar" in answer.text


async def test_a_forged_or_unsigned_session_cookie_is_nobody(system):
    async with browser(system) as client:
        client.cookies.set("bk_session", "made-up.0123456789abcdef0123456789abcdef")
        answer = await client.get("/portemonnee")
    assert answer.status_code == 303


async def test_a_page_a_role_may_not_see_answers_403(system):
    async with await signed_in_browser(system, f"r-other-{RUN}", ["resident"], [BUURT]) as client:
        answer = await client.get("/beoordelen")
    assert answer.status_code == 403
    assert_secure_html(answer)


async def test_a_public_page_stays_when_the_service_behind_its_buttons_is_away(system, park):
    system["hosts"].down.add("initiatives.test")
    try:
        async with await signed_in_browser(system, f"r-reader-{RUN}", ["resident"], [BUURT]) as client:
            answer = await client.get(f"/initiatieven/{PARK}")
    finally:
        system["hosts"].down.clear()
    assert answer.status_code == 200 and "Het klimrek staat er" in answer.text


async def test_a_service_that_cannot_be_reached_gives_a_friendly_page(system):
    system["hosts"].down.add("notifications.test")
    try:
        async with await signed_in_browser(system, f"r-inbox-{RUN}", ["resident"], [BUURT]) as client:
            answer = await client.get("/inbox")
    finally:
        system["hosts"].down.clear()
    assert answer.status_code == 503
    assert "niet bereikbaar" in answer.text and "Traceback" not in answer.text


async def test_an_access_token_a_service_no_longer_takes_means_signing_in_again(system, pledge_round):
    expired = mint(
        PRIVATE, issuer=ISSUER, audience=AUDIENCE, subject=NEIGHBOUR, roles=["resident"], areas=[BUURT], ttl_seconds=-60
    )
    async with await signed_in_browser(system, NEIGHBOUR, ["resident"], [BUURT], access_token=expired) as client:
        answer = await client.get(f"/rondes/{pledge_round}")
        assert (answer.status_code, answer.headers["location"]) == (303, f"/auth/login?next=/rondes/{pledge_round}")
        assert (await client.get("/portemonnee")).status_code == 303  # the session is gone


async def test_an_unexpected_failure_is_a_page_too(system, monkeypatch):
    async def broken(uow, area_code):
        raise RuntimeError("a defect")

    monkeypatch.setattr("portal.service.pages.area_page", broken)
    async with browser(system) as client:
        answer = await client.get(f"/buurten/{BUURT}")
    assert answer.status_code == 500
    assert_secure_html(answer)
    assert "Er ging bij ons iets mis" in answer.text and "a defect" not in answer.text


async def test_signing_out_forgets_the_session(system):
    client = await signed_in_browser(system, f"r-leaving-{RUN}", ["resident"], [BUURT])
    async with client:
        page = await client.get("/portemonnee")
        assert page.status_code == 200
        cookie = client.cookies["bk_session"]
        out = await client.post("/auth/logout", data={"csrf_token": csrf_of(page.text)})
        assert (out.status_code, out.headers["location"]) == (303, "/")
        client.cookies.set("bk_session", cookie)  # the old cookie kept by someone
        assert (await client.get("/portemonnee")).status_code == 303


# ---------------------------------------------------------------------------------------------------- the journey


async def propose(client: httpx.AsyncClient, **fields) -> httpx.Response:
    form = await client.get("/initiatieven/nieuw")
    assert form.status_code == 200, form.text
    assert_secure_html(form)
    data = {
        "csrf_token": csrf_of(form.text),
        "key": hidden(form.text, "key"),
        "title": "Bankjes bij de speeltuin",
        "summary": "Drie bankjes",
        "description": "Zodat ouders kunnen zitten",
        "area_code": BUURT,
        "category": "social",
        "budget_lines.0.description": "Bankjes",
        "budget_lines.0.amount_cents": "600,00",
        "action": "submit",
    } | fields
    return await client.post("/initiatieven/nieuw", data=data)


async def test_a_problem_of_the_service_is_shown_next_to_its_field_and_the_form_keeps_what_was_typed(system):
    async with await signed_in_browser(system, OWNER, ["resident"], [BUURT]) as owner:
        answer = await propose(owner, title="ab", summary="Wat ik typte")
    assert answer.status_code == 422
    assert_secure_html(answer)
    assert 'id="f-title-error"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'href="#f-title"' in answer.text  # the error summary links to the field
    assert 'value="Wat ik typte"' in answer.text and 'value="600,00"' in answer.text


async def test_an_amount_that_is_no_amount_is_refused_before_any_service_is_asked(system):
    async with await signed_in_browser(system, OWNER, ["resident"], [BUURT]) as owner:
        answer = await propose(owner, **{"budget_lines.0.amount_cents": "zes"})
    assert answer.status_code == 422
    assert 'id="f-budget_lines-0-amount_cents-error"' in answer.text


async def test_a_draft_is_the_owners_alone_until_they_ask_the_neighbourhood(system):
    async with await signed_in_browser(system, OWNER, ["resident"], [BUURT]) as owner:
        saved = await propose(owner, action="save", title="Boomspiegels")
        assert saved.status_code == 303, saved.text
        page_path = saved.headers["location"].split("?")[0]
        draft = await owner.get(page_path)
        assert draft.status_code == 200 and "Concept" in draft.text and "Boomspiegels" in draft.text
        async with await signed_in_browser(system, NEIGHBOUR, ["resident"], [BUURT]) as neighbour:
            assert (await neighbour.get(page_path)).status_code == 404
        submitted = await owner.post(f"{page_path}/indienen", data={"csrf_token": csrf_of(draft.text)})
        assert (submitted.status_code, submitted.headers["location"]) == (303, f"{page_path}?melding=submitted")
    assert (await initiative_in_service(system, page_path.split("/")[2]))["status"] == "gathering_support"


@pytest.fixture(scope="module")
async def benches(system):
    """An initiative proposed and submitted through the pages by its owner; its id."""
    async with await signed_in_browser(system, OWNER, ["resident"], [BUURT]) as owner:
        answer = await propose(owner)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.endswith("?melding=submitted")
    return uuid.UUID(location.split("/")[2].split("?")[0])


async def initiative_in_service(system, initiative_id):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system["initiatives"].app), base_url="http://initiatives.test"
    ) as api:
        token = token_of(OFFICIAL, ["official"], [WIJK])
        return (
            await api.get(f"/api/v1/initiatives/{initiative_id}", headers={"Authorization": f"Bearer {token}"})
        ).json()


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(system, benches):
    async with await signed_in_browser(system, NEIGHBOUR, ["resident"], [BUURT]) as neighbour:
        for token in (None, "wrong"):
            data = {"action": "support"} | ({"csrf_token": token} if token else {})
            answer = await neighbour.post(f"/initiatieven/{benches}/steun", data=data)
            assert answer.status_code == 403
            assert_secure_html(answer)
    assert (await initiative_in_service(system, benches))["support_count"] == 0


async def test_a_neighbour_supports_and_an_official_approves_through_the_pages(system, benches):
    async with await signed_in_browser(system, NEIGHBOUR, ["resident"], [BUURT]) as neighbour:
        page = await neighbour.get(f"/initiatieven/{benches}")
        assert page.status_code == 200 and "Steunen" in page.text
        answer = await neighbour.post(
            f"/initiatieven/{benches}/steun", data={"csrf_token": csrf_of(page.text), "action": "support"}
        )
        assert (answer.status_code, answer.headers["location"]) == (303, f"/initiatieven/{benches}?melding=supported")
        again = await neighbour.post(
            f"/initiatieven/{benches}/steun", data={"csrf_token": csrf_of(page.text), "action": "support"}
        )
        assert again.status_code in (409, 422)  # the service's refusal, shown on the page
        assert "utrecht-alert--error" in again.text
        volunteered = await neighbour.post(
            f"/initiatieven/{benches}/meedoen", data={"csrf_token": csrf_of(page.text), "offer": ""}
        )
        assert volunteered.status_code == 422 and 'id="f-offer-error"' in volunteered.text
    assert (await initiative_in_service(system, benches))["status"] == "in_review"

    async with await signed_in_browser(system, OFFICIAL, ["official"], [WIJK]) as official:
        queue = await official.get("/beoordelen")
        assert queue.status_code == 200 and f"/beoordelen/{benches}" in queue.text
        page = await official.get(f"/beoordelen/{benches}")
        assert page.status_code == 200
        refused = await official.post(
            f"/beoordelen/{benches}",
            data={"csrf_token": csrf_of(page.text), "decision": "approve", "approved_amount_cents": "99999,00"},
        )
        assert refused.status_code == 422 and "utrecht-alert--error" in refused.text
        assert 'value="99999,00"' in refused.text
        approved = await official.post(
            f"/beoordelen/{benches}",
            data={
                "csrf_token": csrf_of(page.text),
                "decision": "approve",
                "approved_amount_cents": hidden(page.text, "approved_amount_cents"),  # the requested, filled in
            },
        )
        assert approved.status_code == 303, approved.text
        assert approved.headers["location"] == "/beoordelen?melding=reviewed"
    assert (await initiative_in_service(system, benches))["status"] == "approved"


@pytest.fixture(scope="module")
async def approved(system, benches):
    """The benches approved (by the pages in the test before, or here through the service's API)."""
    if (await initiative_in_service(system, benches))["status"] != "approved":
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=system["initiatives"].app), base_url="http://initiatives.test"
        ) as api:
            for subject, roles, area, path, body in (
                (NEIGHBOUR, ["resident"], BUURT, "supports", None),
                (OFFICIAL, ["official"], WIJK, "review", {"decision": "approve", "approved_amount_cents": 60_000}),
            ):
                headers = {"Authorization": f"Bearer {token_of(subject, roles, [area])}"}
                await api.post(f"/api/v1/initiatives/{benches}/{path}", headers=headers, json=body)
    assert (await initiative_in_service(system, benches))["status"] == "approved"
    return benches


@pytest.fixture(scope="module")
async def pledge_round(system):
    """A pledge round of the wijk, opened by its official, where residents may claim a wallet of € 50; its id."""
    official = {"Authorization": f"Bearer {token_of(OFFICIAL, ['official'], [WIJK])}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system["vouchers"].app), base_url="http://vouchers.test"
    ) as vouchers:
        opened = await vouchers.post(
            "/api/v1/rounds",
            headers=official | {"Idempotency-Key": str(uuid.uuid4())},
            json={
                "area_code": WIJK,
                "name": "Buurtbudget",
                "mechanism": "pledge",
                "total_budget_cents": 100_000,
                "voucher_amount_cents": 5_000,
                "allow_wallet_claims": True,
                "opens_at": (NOW - timedelta(minutes=1)).isoformat(),
                "closes_at": (NOW + timedelta(days=30)).isoformat(),
            },
        )
    assert opened.status_code == 201, opened.text
    return opened.json()["id"]


async def test_the_same_pledge_form_sent_twice_is_one_pledge(system, approved, pledge_round):
    benches, round_id = approved, pledge_round
    vouchers = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system["vouchers"].app), base_url="http://vouchers.test"
    )
    async with vouchers:
        async with await signed_in_browser(system, NEIGHBOUR, ["resident"], [BUURT]) as neighbour:
            page = await neighbour.get(f"/rondes/{round_id}")
            assert page.status_code == 200, page.text
            claimed = await neighbour.post(f"/rondes/{round_id}/portemonnee", data={"csrf_token": csrf_of(page.text)})
            assert claimed.status_code == 303, claimed.text

            async def pledgeable():
                shown = await neighbour.get(f"/rondes/{round_id}")
                return shown if f'value="{benches}"' in shown.text else None

            form = await eventually(pledgeable)  # vouchers learns of the approval through Kafka
            assert form, (await neighbour.get(f"/rondes/{round_id}")).text
            assert_secure_html(form)
            data = {
                "csrf_token": csrf_of(form.text),
                "key": hidden(form.text, "key"),
                "initiative_id": str(benches),
                "amount_cents": "20,00",
            }
            first = await neighbour.post(f"/rondes/{round_id}/toezeggingen", data=data)
            second = await neighbour.post(f"/rondes/{round_id}/toezeggingen", data=data)
            assert first.status_code == second.status_code == 303, (first.text, second.text)
            too_much = await neighbour.post(
                f"/rondes/{round_id}/toezeggingen", data=data | {"key": str(uuid.uuid4()), "amount_cents": "500,00"}
            )
            assert too_much.status_code == 422 and 'value="500,00"' in too_much.text
            assert "utrecht-alert--error" in too_much.text

        resident = {"Authorization": f"Bearer {token_of(NEIGHBOUR, ['resident'], [BUURT])}"}
        wallet = (await vouchers.get(f"/api/v1/rounds/{round_id}/wallets/me", headers=resident)).json()
    assert [pledge["amount_cents"] for pledge in wallet["pledges"]] == [2_000]
    assert wallet["balance_cents"] == 3_000


# ---------------------------------------------------------------------------------------------------- my settings


async def test_settings_reach_the_notifications_service_and_its_problems_stay_next_to_the_field(system):
    async with await signed_in_browser(system, f"r-settings-{RUN}", ["resident"], [BUURT]) as client:
        page = await client.get("/instellingen")
        assert page.status_code == 200, page.text
        assert_secure_html(page)
        data = {"csrf_token": csrf_of(page.text), "language": "en", "frequency": "daily", "area_codes": BUURT}
        refused = await client.post("/instellingen", data=data | {"email": "geen-adres"})
        assert refused.status_code == 422
        assert 'id="f-email-error"' in refused.text and 'value="geen-adres"' in refused.text
        saved = await client.post("/instellingen", data=data | {"email": "bewoner@example.org", "email_enabled": "on"})
        assert (saved.status_code, saved.headers["location"]) == (303, "/instellingen?melding=saved")
        shown = await client.get("/instellingen")
        inbox = await client.get("/inbox")
    assert 'value="bewoner@example.org"' in shown.text and f'value="{BUURT}"' in shown.text
    assert '<option value="daily" selected>' in shown.text
    assert inbox.status_code == 200 and "Geen berichten." in inbox.text


# ---------------------------------------------------------------------------------------------------- officials


async def test_claims_and_awards_pages_for_officials_and_the_steering_group(system, pledge_round, approved):
    member = {"Authorization": f"Bearer {token_of(OFFICIAL, ['official'], [WIJK])}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system["vouchers"].app), base_url="http://vouchers.test"
    ) as vouchers:
        registered = await vouchers.put(
            f"/api/v1/areas/{WIJK}/steering-group",
            headers=member,
            json={"members": [{"member_id": MEMBER, "chair": True}]},
        )
        assert registered.status_code == 200, registered.text
    async with await signed_in_browser(system, OFFICIAL, ["official"], [WIJK]) as official:
        claims = await official.get("/declaraties")
        assert claims.status_code == 200 and "Er wachten geen declaraties." in claims.text
        assert_secure_html(claims)
        assert (await official.get(f"/declaraties/{uuid.uuid4()}")).status_code == 404
    async with await signed_in_browser(system, MEMBER, ["steering_group"], [WIJK]) as steering:

        async def proposable():  # the approved benches, as the portal's read model learns of them
            shown = await steering.get(f"/rondes/{pledge_round}/toekenningen")
            assert shown.status_code == 200, shown.text
            return shown if f'value="{approved}"' in shown.text else None

        page = await eventually(proposable)
        assert page
        assert_secure_html(page)
        data = {"csrf_token": csrf_of(page.text), "key": hidden(page.text, "key"), "initiative_id": str(approved)}
        refused = await steering.post(f"/rondes/{pledge_round}/toekenningen", data=data | {"amount_cents": "-"})
        assert refused.status_code == 422 and 'id="f-amount_cents-error"' in refused.text
        by_service = await steering.post(f"/rondes/{pledge_round}/toekenningen", data=data | {"amount_cents": "10,00"})
        assert by_service.status_code == 422 and "utrecht-alert--error" in by_service.text  # a pledge round: no awards
    async with await signed_in_browser(system, f"r-nosy-{RUN}", ["resident"], [BUURT]) as resident:
        assert (await resident.get(f"/rondes/{pledge_round}/toekenningen")).status_code == 403
        assert (await resident.get("/declaraties")).status_code == 403


async def test_the_inbox_shows_a_message_of_the_notifications_service_and_marks_it_read(system, benches):
    async with await signed_in_browser(system, OWNER, ["resident"], [BUURT]) as owner:

        async def with_message():
            shown = await owner.get("/inbox")
            assert shown.status_code == 200, shown.text
            return shown if f"/initiatieven/{benches}" in shown.text else None

        inbox = await eventually(with_message)  # the submission reaches the notifications service through Kafka
        assert inbox is not None and "Initiatief ingediend" in inbox.text
        assert_secure_html(inbox)
        action = re.search(r'action="(/inbox/[^"]+/gelezen)"', inbox.text).group(1)
        read = await owner.post(action, data={"csrf_token": csrf_of(inbox.text)})
        assert (read.status_code, read.headers["location"]) == (303, "/inbox")
        after = await owner.get("/inbox")
    assert action not in after.text


# ---------------------------------------------------------------------------------------------------- initiators

MAKER = f"r-maker-{RUN}"
PLANTERS = "Geveltuinen in de straat"


def api(system, service: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=system[service].app), base_url=f"http://{service}.test")


def bearer(subject: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_of(subject, roles, areas)}"}


@pytest.fixture(scope="module")
async def funded(system, pledge_round):
    """An initiative of € 100 (planten € 60, gereedschap € 40) proposed by its maker through the pages, supported,
    approved and funded in the pledge round by two residents' pledges of € 50, through the services; its id."""
    async with await signed_in_browser(system, MAKER, ["resident"], [BUURT]) as maker:
        proposed = await propose(
            maker,
            title=PLANTERS,
            **{
                "budget_lines.0.description": "planten",
                "budget_lines.0.amount_cents": "60,00",
                "budget_lines.1.description": "gereedschap",
                "budget_lines.1.amount_cents": "40,00",
            },
        )
    assert proposed.status_code == 303, proposed.text
    initiative_id = proposed.headers["location"].split("/")[2].split("?")[0]
    async with api(system, "initiatives") as initiatives, api(system, "vouchers") as vouchers:
        supported = await initiatives.post(
            f"/api/v1/initiatives/{initiative_id}/supports", headers=bearer(NEIGHBOUR, ["resident"], [BUURT])
        )
        assert supported.status_code in (200, 201), supported.text
        reviewed = await initiatives.post(
            f"/api/v1/initiatives/{initiative_id}/review",
            headers=bearer(OFFICIAL, ["official"], [WIJK]),
            json={"decision": "approve", "approved_amount_cents": 10_000},
        )
        assert reviewed.status_code == 200, reviewed.text
        for n in range(2):
            pledger = bearer(f"r-pledger{n}-{RUN}", ["resident"], [BUURT])
            await vouchers.post(f"/api/v1/rounds/{pledge_round}/wallets/me", headers=pledger)

            async def open_for_pledges(pledger=pledger):
                found = await vouchers.get(f"/api/v1/rounds/{pledge_round}/initiatives", headers=pledger)
                return any(
                    one["initiative_id"] == initiative_id and one.get("status") == "open"
                    for one in found.json().get("items", [])
                )

            assert await eventually(open_for_pledges)
            pledged = await vouchers.post(
                f"/api/v1/rounds/{pledge_round}/pledges",
                headers=pledger | {"Idempotency-Key": str(uuid.uuid4())},
                json={"initiative_id": initiative_id, "amount_cents": 5_000},
            )
            assert pledged.status_code == 201, pledged.text

    async def is_funded():
        return (await initiative_in_service(system, initiative_id))["status"] == "funded"

    assert await eventually(is_funded)
    return initiative_id


async def test_the_initiator_starts_declares_and_reports_through_the_pages(system, funded):
    async with await signed_in_browser(system, NEIGHBOUR, ["resident"], [BUURT]) as neighbour:
        page = await neighbour.get(f"/initiatieven/{funded}")
        assert page.status_code == 200 and "/beginnen" not in page.text and "/declareren" not in page.text
        assert (await neighbour.get(f"/initiatieven/{funded}/declareren")).status_code == 403
        assert (await neighbour.get(f"/initiatieven/{funded}/verslag")).status_code == 403

    async with await signed_in_browser(system, MAKER, ["resident"], [BUURT]) as maker:
        page = await maker.get(f"/initiatieven/{funded}")
        assert "Start de uitvoering" in page.text and "/steun" not in page.text and "/meedoen" not in page.text
        assert "/verslag" not in page.text  # reporting comes after the work started
        started = await maker.post(f"/initiatieven/{funded}/beginnen", data={"csrf_token": csrf_of(page.text)})
        assert (started.status_code, started.headers["location"]) == (303, f"/initiatieven/{funded}?melding=started")
        page = await maker.get(f"/initiatieven/{funded}")
        assert "Bezig" in page.text and "Start de uitvoering" not in page.text
        assert f"/initiatieven/{funded}/declareren" in page.text and f"/initiatieven/{funded}/verslag" in page.text

        form = await maker.get(f"/initiatieven/{funded}/declareren")
        assert form.status_code == 200 and PLANTERS in form.text and "€ 100,00" in form.text  # the budget left
        assert_secure_html(form)
        data = {
            "csrf_token": csrf_of(form.text),
            "key": hidden(form.text, "key"),
            "supplier": "Tuincentrum",
            "amount_cents": "30,5x",
            "invoice_reference": "F-1",
        }
        refused = await maker.post(f"/initiatieven/{funded}/declareren", data=data)
        assert refused.status_code == 422 and 'id="f-amount_cents-error"' in refused.text
        assert 'value="30,5x"' in refused.text and 'value="Tuincentrum"' in refused.text
        over = await maker.post(
            f"/initiatieven/{funded}/declareren", data=data | {"key": str(uuid.uuid4()), "amount_cents": "150,00"}
        )
        assert over.status_code == 422 and "utrecht-alert--error" in over.text and 'value="150,00"' in over.text
        first = await maker.post(f"/initiatieven/{funded}/declareren", data=data | {"amount_cents": "30,55"})
        second = await maker.post(f"/initiatieven/{funded}/declareren", data=data | {"amount_cents": "30,55"})
        assert first.status_code == second.status_code == 303, (first.text, second.text)
        assert first.headers["location"] == second.headers["location"]  # the same form sent twice: one claim
        claim_page = await maker.get(first.headers["location"])
        assert claim_page.status_code == 200 and "Wacht op besluit" in claim_page.text and PLANTERS in claim_page.text
        assert "Uw declaratie is ontvangen." in claim_page.text and 'name="decision"' not in claim_page.text
        maker.cookies.set("bk_taal", "en")
        in_english = await maker.get(first.headers["location"])
        assert "Waiting for a decision" in in_english.text and PLANTERS in in_english.text
        maker.cookies.set("bk_taal", "nl")

        form = await maker.get(f"/initiatieven/{funded}/verslag")
        assert form.status_code == 200 and "Uitgegeven aan planten (euro)" in form.text
        report = {
            "csrf_token": csrf_of(form.text),
            "what_was_done": "Twaalf geveltuinen aangelegd.",
            "spending.0.spent_cents": "30,55",
            "spending.1.spent_cents": "veel",
        }
        refused = await maker.post(f"/initiatieven/{funded}/verslag", data=report)
        assert refused.status_code == 422 and 'id="f-spending-1-spent_cents-error"' in refused.text
        assert "Twaalf geveltuinen aangelegd." in refused.text
        assert (await initiative_in_service(system, funded))["status"] == "in_progress"
        done = await maker.post(f"/initiatieven/{funded}/verslag", data=report | {"spending.1.spent_cents": "0"})
        assert (done.status_code, done.headers["location"]) == (303, f"/initiatieven/{funded}?melding=reported")
        page = await maker.get(f"/initiatieven/{funded}")
        assert "Twaalf geveltuinen aangelegd." in page.text and "€ 30,55" in page.text

    async with api(system, "vouchers") as vouchers:
        claims = await vouchers.get("/api/v1/expense-claims", headers=bearer(OFFICIAL, ["official"], [WIJK]))
    mine = [claim for claim in claims.json()["items"] if claim["initiative_id"] == funded]
    assert [(claim["amount_cents"], claim["status"]) for claim in mine] == [(3_055, "held")]
    report_in_service = (await initiative_in_service(system, funded))["report"]
    assert report_in_service["spending"] == [
        {"description": "planten", "spent_cents": 3_055},
        {"description": "gereedschap", "spent_cents": 0},
    ]


# ---------------------------------------------------------------------------------------------------- equal shares


async def test_a_resident_ticks_initiatives_on_the_ballot_of_an_equal_shares_round_and_reads_the_explained_outcome(
    system, approved
):
    benches = approved
    official = {"Authorization": f"Bearer {token_of(OFFICIAL, ['official'], [WIJK])}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system["vouchers"].app), base_url="http://vouchers.test"
    ) as vouchers:
        opened = await vouchers.post(
            "/api/v1/rounds",
            headers=official | {"Idempotency-Key": str(uuid.uuid4())},
            json={
                "area_code": WIJK,
                "name": "Gelijke delen",
                "mechanism": "equal_shares",
                "total_budget_cents": 100_000,
                "opens_at": (NOW - timedelta(minutes=1)).isoformat(),
                "closes_at": (NOW + timedelta(days=30)).isoformat(),
            },
        )
        assert opened.status_code == 201, opened.text
        round_id = opened.json()["id"]

        async with await signed_in_browser(system, NEIGHBOUR, ["resident"], [BUURT]) as neighbour:
            page = await neighbour.get(f"/rondes/{round_id}")
            assert page.status_code == 200, page.text
            assert_secure_html(page)
            assert f'name="initiative_ids" value="{benches}"' in page.text and " checked" not in page.text
            assert f"/rondes/{round_id}/portemonnee" not in page.text  # no wallets in an Equal Shares round
            csrf = csrf_of(page.text)
            forged = await neighbour.post(f"/rondes/{round_id}/stembiljet", data={"initiative_ids": str(benches)})
            assert forged.status_code == 403
            unknown = await neighbour.post(
                f"/rondes/{round_id}/stembiljet", data={"csrf_token": csrf, "initiative_ids": str(uuid.uuid4())}
            )
            assert unknown.status_code == 422 and "utrecht-form-field-error-message" in unknown.text
            cast = await neighbour.post(
                f"/rondes/{round_id}/stembiljet", data={"csrf_token": csrf, "initiative_ids": str(benches)}
            )
            assert cast.status_code == 303 and cast.headers["location"] == f"/rondes/{round_id}?melding=ballot_cast"
            shown = await neighbour.get(f"/rondes/{round_id}")
            assert f'value="{benches}" checked' in shown.text

        resident = {"Authorization": f"Bearer {token_of(NEIGHBOUR, ['resident'], [BUURT])}"}
        ballot = (await vouchers.get(f"/api/v1/rounds/{round_id}/ballots/me", headers=resident)).json()
        assert ballot["initiative_ids"] == [str(benches)]

    async with await signed_in_browser(system, OFFICIAL, ["official"], [WIJK]) as official_browser:
        page = await official_browser.get(f"/rondes/{round_id}")
        closed = await official_browser.post(f"/rondes/{round_id}/sluiten", data={"csrf_token": csrf_of(page.text)})
        assert closed.status_code == 303, closed.text
    async with await signed_in_browser(system, f"r-elsewhere-{RUN}", ["resident"], ["BU03630001"]) as anyone:
        anyone.cookies.set("bk_taal", "en")
        outcome = await anyone.get(f"/rondes/{round_id}")
        assert outcome.status_code == 200, outcome.text
        assert_secure_html(outcome)
        assert "Awarded (number 1)" in outcome.text and "1 neighbours voted" in outcome.text
        assert "Method of Equal Shares" in outcome.text


# ---------------------------------------------------------------------------------------------------- asking neighbours


async def test_a_neighbour_offers_help_is_asked_personally_and_says_yes_through_the_pages(system):
    from initiatives.app import ask_neighbours

    helper, stranger = f"r-helper-{RUN}", f"r-stranger-{RUN}"
    async with await signed_in_browser(system, helper, ["resident"], [BUURT]) as neighbour:
        page = await neighbour.get("/instellingen")
        assert page.status_code == 200 and 'name="tag_klussen"' in page.text
        assert_secure_html(page)
        offer = {"csrf_token": csrf_of(page.text), "hours_per_month": "4", "reach": "buurt", "max_asks_per_month": "2"}
        refused = await neighbour.post("/instellingen/hulp", data=offer)  # no tag ticked
        assert refused.status_code == 422 and 'href="#f-tags"' in refused.text
        assert (await neighbour.post("/instellingen/hulp", data=offer | {"csrf_token": "wrong"})).status_code == 403
        saved = await neighbour.post(
            "/instellingen/hulp", data=offer | {"tag_klussen": "on", "introduction": "Piet, bel 06-12345678"}
        )
        assert (saved.status_code, saved.headers["location"]) == (303, "/instellingen?melding=offer_saved")
        assert 'name="tag_klussen" checked' in (await neighbour.get("/instellingen")).text

    async with await signed_in_browser(system, OWNER, ["resident"], [BUURT]) as owner:
        proposed = await propose(owner, title="Schuur opknappen")
        page_path = proposed.headers["location"].split("?")[0]
        page = await owner.get(page_path)
        assert "Buren om hulp vragen" in page.text
        request = {
            "csrf_token": csrf_of(page.text),
            "tag_klussen": "on",
            "description": "De schuur schilderen",
            "hours_per_person": "3",
            "people_needed": "1",
        }
        asked = await owner.post(f"{page_path}/hulpvraag", data=request)
        assert (asked.status_code, asked.headers["location"]) == (303, f"{page_path}?melding=help_requested")
    assert await ask_neighbours(system["initiatives"], datetime.now(UTC)) >= 1

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=system["initiatives"].app), base_url="http://initiatives.test"
    ) as api:
        export = await api.get(
            "/api/v1/me/export", headers={"Authorization": f"Bearer {token_of(helper, ['resident'], [BUURT])}"}
        )
    (ask,) = export.json()["asks"]
    async with await signed_in_browser(system, stranger, ["resident"], [BUURT]) as other:
        assert (await other.get(f"/vragen/{ask['id']}")).status_code == 404
    async with await signed_in_browser(system, helper, ["resident"], [BUURT]) as neighbour:
        shown = await neighbour.get(f"/vragen/{ask['id']}")
        assert shown.status_code == 200 and "Ja, ik help mee" in shown.text and "Nee, deze keer niet" in shown.text
        assert "De schuur schilderen" in shown.text
        assert_secure_html(shown)
        answered = await neighbour.post(
            f"/vragen/{ask['id']}", data={"csrf_token": csrf_of(shown.text), "answer": "yes"}
        )
        assert (answered.status_code, answered.headers["location"]) == (
            303,
            f"/vragen/{ask['id']}?melding=help_accepted",
        )
        assert 'id="ask-status"' in (await neighbour.get(f"/vragen/{ask['id']}")).text
    async with await signed_in_browser(system, OWNER, ["resident"], [BUURT]) as owner:
        page = await owner.get(page_path)
    assert "Piet, bel 06-12345678" in page.text and "Genoeg mensen helpen mee (1 van de 1)" in page.text

    async with await signed_in_browser(system, helper, ["resident"], [BUURT]) as neighbour:
        page = await neighbour.get("/instellingen")
        withdrawn = await neighbour.post(
            "/instellingen/hulp", data={"csrf_token": csrf_of(page.text), "action": "withdraw"}
        )
        assert (withdrawn.status_code, withdrawn.headers["location"]) == (303, "/instellingen?melding=offer_withdrawn")
        assert "Trek mijn aanbod in" not in (await neighbour.get("/instellingen")).text
