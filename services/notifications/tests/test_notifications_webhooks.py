"""Webhooks on the real PostgreSQL, delivered to real HTTP endpoints on 127.0.0.1: Standard Webhooks signatures
checked with the official verifier, the event-type filter, one delivery per event however often it comes,
retries with backoff until the last attempt, 410 and repeated failures switching a subscription off (and its
admin told), a slow endpoint holding up nobody else, leases that keep two dispatchers apart, and the
admin-only API."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from notifications.adapters import webhooks as store
from notifications.adapters.unit_of_work import NotificationsUnitOfWork
from notifications.app import create
from notifications.domain import webhooks as rules
from notifications.entrypoints import webhooks_http
from notifications.service import webhooks
from notifications.settings import NotificationsSettings
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as initiative_events
from buurtkracht_contracts import vouchers as voucher_events
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.notifications import WebhookDeliveryFailed, WebhookSubscriptionDisabled
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import housekeeping, migrations, topics
from buurtkracht_kit import http as kit_http
from buurtkracht_kit.auth import TokenVerifier, mint
from buurtkracht_kit.db import create_pool
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.runtime import Service, ServiceSpec
from tests.keys import PRIVATE, PUBLIC
from tests.stack import PG_ADMIN_URL, database_url

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
INITIATIVES_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
VOUCHERS_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-vouchers"
PLEDGE_MADE = "nl.buurtkracht.vouchers.pledge-made.v1"
ROUND_OPENED = "nl.buurtkracht.vouchers.round-opened.v2"
APPROVED = "nl.buurtkracht.initiatives.initiative-approved.v1"
SUBMITTED = "nl.buurtkracht.initiatives.initiative-submitted.v1"
BASE = "/api/v1/webhook-subscriptions"


def token(sub: str, roles: list[str], areas: list[str] | None = None) -> dict[str, str]:
    issued = mint(
        PRIVATE,
        issuer="https://login.buurtkracht.local",
        audience="buurtkracht",
        subject=sub,
        roles=roles,
        areas=areas or [],
    )
    return {"Authorization": f"Bearer {issued}"}


ADMIN = token("admin-1", ["admin"])


def envelope(event_type: str = PLEDGE_MADE) -> Envelope:
    return Envelope(
        source=VOUCHERS_SOURCE,
        type=event_type,
        subject=str(uuid.uuid4()),
        data={"round_id": str(uuid.uuid4()), "amount_cents": 1250},
    )


# --- a real HTTP endpoint that records what it receives --------------------------------------------------------


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """Endpoints on one uvicorn server: every POSTed request is recorded per path, then answered as
    `answers[path]` says: a status code (200 by default) or "slow" (200 after ten seconds)."""

    def __init__(self) -> None:
        self.received: dict[str, list[Received]] = defaultdict(list)
        self.answers: dict[str, int | str] = {}
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return self.base_url + path

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        self.received[path].append(Received(dict(request.headers), body, time.monotonic()))
        answer = self.answers.get(path, 200)
        if answer == "slow":
            await asyncio.sleep(10)
            answer = 200
        assert isinstance(answer, int)
        return Response(b"" if answer < 300 else b"not today", status_code=answer)

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        app = Starlette(routes=[Route("/{path:path}", self._endpoint, methods=["POST"])])
        config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        for _ in range(500):
            if self._server.started:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the receiving endpoint did not start")

    async def stop(self) -> None:
        assert self._server is not None and self._task is not None
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 5)


# --- fixtures -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def database(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    return scratch_database


@pytest.fixture(scope="module")
async def pool(database):
    pool = await create_pool(database)
    yield pool
    await pool.close()


@pytest.fixture
async def db(pool):
    """The pool, on tables emptied for this test."""
    await pool.execute("TRUNCATE webhook_subscriptions, webhook_deliveries, outbox, notifications")
    return pool


@pytest.fixture(scope="module")
async def receiver():
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture(scope="module")
def public_key(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "public.pem"
    path.write_text(PUBLIC)
    return path


def make_settings(database: str, public_key: Path, **overrides: object) -> NotificationsSettings:
    values: dict[str, object] = {
        "database_url": database,
        "jwt_public_key_file": public_key,
        "webhook_timeout_seconds": 1.0,
        "webhook_concurrency": 6,
        "webhook_max_attempts": 3,
        "webhook_disable_after_failures": 20,
        "webhook_dispatch_interval_seconds": 0.1,
        "webhook_allow_private_addresses": True,  # the receiving endpoints are on 127.0.0.1
    }
    return NotificationsSettings(**(values | overrides))


@pytest.fixture(scope="module")
def settings(database, public_key) -> NotificationsSettings:
    return make_settings(database, public_key)


@contextlib.asynccontextmanager
async def api_client(pool, settings: NotificationsSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The subscriptions router in an app wired as the kit wires a service's (problem+json, auth, the service's
    unit of work on `pool`)."""
    service = create(settings)
    service.pool = pool
    app = FastAPI()
    kit_http.install(app, ServiceMetrics("notifications-webhooks-test"), {})
    app.include_router(webhooks_http.router)
    app.state.service = service
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(
        issuer=settings.jwt_issuer, audience=settings.jwt_audience, public_key_file=settings.jwt_public_key_file
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest.fixture(scope="module")
async def api(pool, settings):
    async with api_client(pool, settings) as client:
        yield client


REGISTRY = CollectorRegistry()


@contextlib.asynccontextmanager
async def dispatcher(pool, settings: NotificationsSettings, **options) -> AsyncIterator[webhooks.Dispatcher]:
    options.setdefault("retry_delay", lambda attempts: 0.3 * attempts)
    sender = webhooks.Dispatcher(
        lambda: NotificationsUnitOfWork(pool, settings.event_source), settings, metrics(), **options
    )
    try:
        yield sender
    finally:
        await sender.close()


def running_on(pool, settings: NotificationsSettings) -> Service:
    """A service with `settings` on `pool`, for running its background loops as the service runs them."""
    spec = ServiceSpec(
        name="notifications-webhooks-test",
        title="test",
        version="0",
        migrations=MIGRATIONS,
        unit_of_work=NotificationsUnitOfWork,
    )
    service = Service(spec, settings)
    service.pool = pool
    return service


def metrics() -> webhooks.WebhookMetrics:
    return webhooks.metrics_in(REGISTRY)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def subscribe(api, url: str, event_types: list[str] | None = None, headers=ADMIN) -> dict:
    answer = await api.post(BASE, json={"url": url, "event_types": event_types or []}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


async def enqueue(pool, event: Envelope) -> int:
    async with NotificationsUnitOfWork(pool, VOUCHERS_SOURCE) as uow:
        added = await webhooks.enqueue(uow, event)
        await uow.commit()
    return added


async def deliveries_of(api, subscription_id: str, **params) -> dict:
    answer = await api.get(f"{BASE}/{subscription_id}/deliveries", params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def outbox(pool, event_type: str) -> list[dict]:
    rows = await pool.fetch("SELECT aggregate_id, payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type)
    return [{"aggregate_id": row["aggregate_id"], **row["payload"]} for row in rows]


def path() -> str:
    return f"/hooks/{uuid.uuid4().hex[:8]}"


# --- the rules, without I/O -----------------------------------------------------------------------------------


@pytest.mark.unit
def test_retry_schedule_spreads_attempts_over_hours_with_jitter():
    middle = [rules.retry_delay(n, rand=lambda: 0.5) for n in range(1, 8)]
    assert middle == [5, 60, 300, 1800, 7200, 18_000, 36_000]
    assert rules.retry_delay(1, rand=lambda: 0.0) == pytest.approx(4.0)
    assert rules.retry_delay(7, rand=lambda: 1.0) == pytest.approx(43_200)
    assert rules.retry_delay(12, rand=lambda: 0.5) == 36_000  # later attempts wait as long as the last step
    assert 17 * 3600 < sum(middle) < 18 * 3600  # eight attempts span most of a day
    jittered = {round(rules.retry_delay(3), 3) for _ in range(50)}
    assert len(jittered) > 1 and all(240 <= delay <= 360 for delay in jittered)


@pytest.mark.unit
def test_event_type_filters_match_full_types_and_prefixes():
    assert rules.matches([], PLEDGE_MADE)
    assert rules.matches(["nl.buurtkracht.vouchers.*"], PLEDGE_MADE)
    assert not rules.matches(["nl.buurtkracht.vouchers.*"], APPROVED)
    assert rules.matches([APPROVED], APPROVED)
    assert not rules.matches([APPROVED], SUBMITTED)
    assert not rules.matches(["nl.buurtkracht.vouch*"], PLEDGE_MADE)
    assert rules.normalised_filters(["a.b", "a.b", "*"]) == []
    for good in ("nl.buurtkracht.vouchers.*", APPROVED, "*"):
        assert rules.check_filter(good) == good
    for bad in ("", "nl.buurtkracht.*.v1", "nl..x", "nl.buurtkracht.vouchers.", "nl buurtkracht", ".*"):
        with pytest.raises(ValueError):
            rules.check_filter(bad)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.10", False),
        ("127.0.0.1", False),
        ("169.254.169.254", False),  # a cloud's metadata service
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fd00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.216.34", True),
    ],
)
def test_only_public_internet_addresses_count_as_public(address, public):
    assert rules.is_public(address) is public


@pytest.mark.unit
def test_a_url_names_a_literal_address_or_a_host_name():
    assert rules.literal_address("https://10.0.0.7:8443/hooks") == "10.0.0.7"
    assert rules.literal_address("http://[::1]/hooks") == "::1"
    assert rules.literal_address("https://hooks.example.org/x") is None


@pytest.mark.unit
def test_answers_mean_delivered_gone_or_try_again():
    assert rules.judge(200) is rules.Verdict.DELIVERED
    assert rules.judge(204) is rules.Verdict.DELIVERED
    assert rules.judge(410) is rules.Verdict.GONE
    for failed in (None, 301, 400, 404, 429, 500, 503):
        assert rules.judge(failed) is rules.Verdict.FAILED
    assert rules.outcome(rules.Verdict.FAILED, 2, 3, 5, 20) == rules.Outcome(False, False, None)
    assert rules.outcome(rules.Verdict.FAILED, 3, 3, 5, 20) == rules.Outcome(False, True, None)
    assert rules.outcome(rules.Verdict.FAILED, 1, 3, 20, 20).disable == "repeated_failures"
    day, minute = timedelta(hours=24), timedelta(minutes=1)
    # a busy endpoint down for a minute fails many deliveries: a long run, but young; the subscription stays on
    assert rules.outcome(rules.Verdict.FAILED, 1, 3, 500, 20, minute, day).disable is None
    assert rules.outcome(rules.Verdict.FAILED, 1, 3, 500, 20, day, day).disable == "repeated_failures"
    assert rules.outcome(rules.Verdict.FAILED, 1, 3, 5, 20, 2 * day, day).disable is None  # old, but short
    assert rules.outcome(rules.Verdict.GONE, 1, 3, 1, 20).disable == "gone"
    assert rules.outcome(rules.Verdict.DELIVERED, 3, 3, 0, 20) == rules.Outcome(True, True, None)


@pytest.mark.unit
def test_secrets_and_urls():
    secret = rules.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert rules.new_secret() != secret
    assert rules.check_url("https://example.org/hooks?x=1") == "https://example.org/hooks?x=1"
    for bad in ("ftp://example.org/", "example.org/hooks", "https:///nohost", "http://x:99999/", "https://a b/"):
        with pytest.raises(ValueError):
            rules.check_url(bad)


# --- deliveries -----------------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_a_delivery_is_signed_per_standard_webhooks_and_carries_the_cloudevent(db, api, receiver, settings):
    hook = path()
    subscription = await subscribe(api, receiver.url(hook))
    event = envelope()
    assert await enqueue(db, event) == 1

    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 1

    (received,) = receiver.received[hook]
    payload = Webhook(subscription["secret"]).verify(received.body, received.headers)
    assert payload == event.model_dump(mode="json")
    assert (
        payload["id"] == str(event.id) and payload["specversion"] == "1.0" and payload["data"]["amount_cents"] == 1250
    )
    assert received.headers["content-type"].startswith("application/cloudevents+json")
    with pytest.raises(WebhookVerificationError):
        Webhook(rules.new_secret()).verify(received.body, received.headers)

    (delivery,) = (await deliveries_of(api, subscription["id"]))["items"]
    assert received.headers["webhook-id"] == delivery["id"]
    assert delivery["event_id"] == str(event.id) and delivery["event_type"] == PLEDGE_MADE
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1 and delivery["last_status_code"] == 200
    assert delivery["delivered_at"] is not None and delivery["next_attempt_at"] is None
    assert delivery["last_error"] is None


@pytest.mark.integration
async def test_the_event_type_filter_picks_the_subscriptions_that_hear_an_event(db, api, receiver):
    everything = await subscribe(api, receiver.url(path()))
    vouchers = await subscribe(api, receiver.url(path()), ["nl.buurtkracht.vouchers.*"])
    approvals = await subscribe(api, receiver.url(path()), [APPROVED, "nl.buurtkracht.vouchers.round-opened.v2"])

    assert await enqueue(db, envelope(PLEDGE_MADE)) == 2
    assert await enqueue(db, envelope(ROUND_OPENED)) == 3
    assert await enqueue(db, envelope(APPROVED)) == 2
    assert await enqueue(db, envelope(SUBMITTED)) == 1

    heard = {
        name: sorted(d["event_type"] for d in (await deliveries_of(api, s["id"]))["items"])
        for name, s in (("everything", everything), ("vouchers", vouchers), ("approvals", approvals))
    }
    assert heard == {
        "everything": sorted([PLEDGE_MADE, ROUND_OPENED, APPROVED, SUBMITTED]),
        "vouchers": sorted([PLEDGE_MADE, ROUND_OPENED]),
        "approvals": sorted([ROUND_OPENED, APPROVED]),
    }


@pytest.mark.integration
async def test_a_redelivered_event_is_queued_once(db, api, receiver, settings):
    hook = path()
    subscription = await subscribe(api, receiver.url(hook))
    event = envelope()
    assert await enqueue(db, event) == 1
    assert await enqueue(db, event) == 0
    async with dispatcher(db, settings) as sender:
        await sender.dispatch_once()
    assert await enqueue(db, event) == 0  # also once it was delivered
    assert (await deliveries_of(api, subscription["id"]))["total"] == 1
    assert len(receiver.received[hook]) == 1


@pytest.mark.integration
async def test_a_failing_endpoint_is_retried_with_backoff_and_fails_after_the_last_attempt(db, api, receiver, settings):
    hook = path()
    receiver.answers[hook] = 500
    subscription = await subscribe(api, receiver.url(hook))
    event = envelope()
    await enqueue(db, event)
    failed_before = sample("buurtkracht_webhook_deliveries_total", outcome="failed")

    async with dispatcher(db, settings, retry_delay=lambda attempts: 0.4 * attempts) as sender:
        assert await sender.dispatch_once() == 1
        (delivery,) = (await deliveries_of(api, subscription["id"]))["items"]
        assert delivery["status"] == "pending" and delivery["attempts"] == 1 and delivery["last_status_code"] == 500
        assert "HTTP 500" in delivery["last_error"] and "not today" in delivery["last_error"]
        assert await sender.dispatch_once() == 0  # not due before its backoff passed
        for _ in range(100):
            await sender.dispatch_once()
            if len(receiver.received[hook]) == 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
        assert await sender.dispatch_once() == 0  # no fourth attempt

    attempts = receiver.received[hook]
    assert len(attempts) == 3
    assert len({a.headers["webhook-id"] for a in attempts}) == 1  # the same message every time
    assert {a.body for a in attempts} == {attempts[0].body}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.4 - 0.05 and gaps[1] >= 0.8 - 0.05  # exponential: each wait longer than the one before
    for attempt in attempts:
        Webhook(subscription["secret"]).verify(attempt.body, attempt.headers)

    (delivery,) = (await deliveries_of(api, subscription["id"]))["items"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 3 and delivery["next_attempt_at"] is None
    (failed,) = await outbox(db, WebhookDeliveryFailed.event_type)
    assert failed["aggregate_id"] == subscription["id"]
    assert failed["delivery_id"] == delivery["id"] and failed["source_event_id"] == str(event.id)
    assert failed["attempts"] == 3 and failed["last_status_code"] == 500
    current = (await api.get(f"{BASE}/{subscription['id']}", headers=ADMIN)).json()
    assert current["status"] == "active" and current["consecutive_failures"] == 3
    assert sample("buurtkracht_webhook_deliveries_total", outcome="failed") == failed_before + 1


@pytest.mark.integration
async def test_gone_disables_the_subscription_at_once_and_tells_its_admin(db, api, receiver, settings):
    hook = path()
    receiver.answers[hook] = 410
    owner = token("admin-gone", ["admin"])
    subscription = await subscribe(api, receiver.url(hook), headers=owner)
    await enqueue(db, envelope())
    disabled_before = sample("buurtkracht_webhook_subscriptions_disabled_total", reason="gone")

    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 1
        current = (await api.get(f"{BASE}/{subscription['id']}", headers=ADMIN)).json()
        assert current["status"] == "disabled" and current["disabled_reason"] == "gone"
        assert current["disabled_at"] is not None

        (message,) = await db.fetch(
            "SELECT recipient_id, channel, kind, params FROM notifications WHERE recipient_id = 'admin-gone'"
        )
        assert (message["channel"], message["kind"]) == ("inbox", "webhook_disabled")
        assert message["params"] == {"subscription_id": subscription["id"], "url": receiver.url(hook), "reason": "gone"}
        (disabled,) = await outbox(db, WebhookSubscriptionDisabled.event_type)
        assert disabled["subscription_id"] == subscription["id"]
        assert disabled["reason"] == "gone" and disabled["admin_id"] == "admin-gone"
        assert sample("buurtkracht_webhook_subscriptions_disabled_total", reason="gone") == disabled_before + 1

        assert await enqueue(db, envelope()) == 0  # a disabled subscription hears nothing new
        await asyncio.sleep(0.5)
        assert await sender.dispatch_once() == 0  # and what waits for it is not sent
        assert len(receiver.received[hook]) == 1

        receiver.answers[hook] = 204  # the integration is back: an admin switches it on again
        enabled = await api.post(f"{BASE}/{subscription['id']}/enable", headers=ADMIN)
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["status"] == "active" and enabled.json()["disabled_reason"] is None
        assert await sender.dispatch_once() == 1  # what waited is due at once

    (delivery,) = (await deliveries_of(api, subscription["id"]))["items"]
    assert delivery["status"] == "delivered" and delivery["attempts"] == 2 and delivery["last_status_code"] == 204
    assert len(await outbox(db, WebhookDeliveryFailed.event_type)) == 0


@pytest.mark.integration
async def test_a_run_of_failures_disables_the_subscription_and_a_success_ends_the_run(
    db, api, receiver, database, public_key
):
    settings = make_settings(
        database,
        public_key,
        webhook_disable_after_failures=3,
        webhook_disable_after_hours=0,
        webhook_max_attempts=5,
    )
    hook = path()
    receiver.answers[hook] = 503
    subscription = await subscribe(api, receiver.url(hook))

    async def failures() -> int:
        return (await api.get(f"{BASE}/{subscription['id']}", headers=ADMIN)).json()["consecutive_failures"]

    async with dispatcher(db, settings, retry_delay=lambda attempts: 0.0) as sender:
        for _ in range(2):
            await enqueue(db, envelope())
        assert await sender.dispatch_once() == 2
        assert await failures() == 2
        receiver.answers[hook] = 200
        assert await sender.dispatch_once() == 2
        assert await failures() == 0
        receiver.answers[hook] = 503
        for _ in range(3):
            await enqueue(db, envelope())
        assert await sender.dispatch_once() == 3

    current = (await api.get(f"{BASE}/{subscription['id']}", headers=ADMIN)).json()
    assert current["status"] == "disabled" and current["disabled_reason"] == "repeated_failures"
    assert current["consecutive_failures"] == 3
    (disabled,) = await outbox(db, WebhookSubscriptionDisabled.event_type)
    assert disabled["reason"] == "repeated_failures"
    (message,) = await db.fetch("SELECT params FROM notifications WHERE kind = 'webhook_disabled'")
    assert message["params"]["reason"] == "repeated_failures"
    log = await deliveries_of(api, subscription["id"], status="pending")
    assert log["total"] == 3  # they wait for the subscription to be switched on again


@pytest.mark.integration
async def test_a_slow_endpoint_holds_up_neither_a_healthy_subscription_nor_the_consumer(
    db, api, receiver, database, public_key, monkeypatch
):
    """Through the real background loop, as the service runs it: 20 deliveries to an endpoint that answers
    after 10 s (timeout 1 s) are due before the healthy one's, and there are only 6 sending slots."""
    settings = make_settings(database, public_key, webhook_timeout_seconds=1.0, webhook_concurrency=6)
    slow_hook, healthy_hook = path(), path()
    receiver.answers[slow_hook] = "slow"
    slow = await subscribe(api, receiver.url(slow_hook), ["nl.buurtkracht.vouchers.*"])
    await subscribe(api, receiver.url(healthy_hook), ["nl.buurtkracht.initiatives.*"])
    for _ in range(20):
        await enqueue(db, envelope(PLEDGE_MADE))
    for _ in range(3):
        await enqueue(db, envelope(APPROVED))

    claims = 0
    real_claim = store.Webhooks.claim

    async def claim_failing_once(*args, **kwargs):  # the loop survives an error (the database away a moment)
        nonlocal claims
        claims += 1
        if claims == 1:
            raise ConnectionError("database away")
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(store.Webhooks, "claim", claim_failing_once)
    service = running_on(db, settings)
    started = time.monotonic()
    loop = asyncio.create_task(webhooks.run_dispatcher(service))
    try:
        while len(receiver.received[healthy_hook]) < 3:
            assert time.monotonic() - started < 2.0, "the healthy endpoint waited for the slow one"
            assert not loop.done()
            await asyncio.sleep(0.02)
        healthy_after = time.monotonic() - started

        in_flight_slow = len(receiver.received[slow_hook])
        assert 1 <= in_flight_slow <= webhooks.PER_SUBSCRIPTION_IN_FLIGHT
        pending = await deliveries_of(api, slow["id"], status="pending", limit=100)
        assert pending["total"] == 20  # the slow endpoint's deliveries are all still waiting

        consumed_at = time.monotonic()  # the consumer's transaction: an insert, whatever the endpoints do
        assert await enqueue(db, envelope(SUBMITTED)) == 1
        assert time.monotonic() - consumed_at < 0.5
        while len(receiver.received[healthy_hook]) < 4:
            assert time.monotonic() - consumed_at < 2.0, "a new event waited for the slow endpoint"
            await asyncio.sleep(0.02)

        await asyncio.sleep(1.5)  # the first slow attempts time out and wait for their retry
        timed_out = await db.fetch(
            "SELECT last_error FROM webhook_deliveries WHERE subscription_id = $1 AND last_error IS NOT NULL",
            uuid.UUID(slow["id"]),
        )
        assert timed_out and all("timed out" in row["last_error"] for row in timed_out)
        assert claims > 1 and not loop.done()
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    registry = service.metrics.registry
    assert registry.get_sample_value("buurtkracht_webhook_deliveries_total", {"outcome": "delivered"}) == 4
    assert registry.get_sample_value("buurtkracht_webhook_deliveries_total", {"outcome": "retry"}) >= 1
    assert registry.get_sample_value("buurtkracht_webhook_delivery_duration_seconds_count") >= 5
    assert healthy_after < 2.0


@pytest.mark.integration
async def test_one_busy_subscription_is_sent_to_as_fast_as_it_answers_not_a_few_per_interval(
    db, api, receiver, database, public_key
):
    """A backlog of one subscription (an endpoint back after an outage) drains as its endpoint answers: each
    attempt that ends frees one of its `PER_SUBSCRIPTION_IN_FLIGHT` slots and the dispatcher claims again at once.
    With a dispatch interval of a minute, waiting out the interval between claims would send 4 a minute."""
    settings = make_settings(database, public_key, webhook_dispatch_interval_seconds=60.0, webhook_concurrency=20)
    hook = path()
    await subscribe(api, receiver.url(hook), ["nl.buurtkracht.vouchers.*"])
    for _ in range(40):
        await enqueue(db, envelope(PLEDGE_MADE))
    service = running_on(db, settings)
    started = time.monotonic()
    loop = asyncio.create_task(webhooks.run_dispatcher(service))
    try:
        while len(receiver.received[hook]) < 40:
            assert time.monotonic() - started < 30.0, f"{len(receiver.received[hook])} of 40 sent in 30 s"
            assert not loop.done()
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


@pytest.mark.integration
async def test_a_leased_delivery_is_sent_by_one_dispatcher_and_a_late_outcome_is_dropped(db, api, receiver):
    subscription = await subscribe(api, receiver.url(path()))
    for _ in range(6):
        await enqueue(db, envelope())

    async def claim(limit: int) -> list[store.Claimed]:
        async with NotificationsUnitOfWork(db, VOUCHERS_SOURCE) as uow:
            claimed = await uow.webhooks.claim(limit, 3, 60.0)
            await asyncio.sleep(0.2)  # both transactions overlap
            await uow.commit()
        return claimed

    first, second = await asyncio.gather(claim(10), claim(10))
    ids = [c.delivery_id for c in first + second]
    assert len(ids) == len(set(ids)) >= 3  # none twice
    assert len(first) <= 3 and len(second) <= 3  # a few per subscription per claim
    assert await claim(10) == []  # leased: not due again before the lease ends

    stale = (first + second)[0]
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE webhook_deliveries SET leased_until = now() - interval '1 second' WHERE id = $1", stale.delivery_id
        )
        (again,) = await store.Webhooks(conn).claim(1, 10, 60.0)
        assert again.delivery_id == stale.delivery_id and again.attempt == stale.attempt + 1
        assert not await store.Webhooks(conn).mark_delivered(stale, 200)  # the dispatcher whose lease ran out
        assert await store.Webhooks(conn).mark_delivered(again, 200)
    (delivered,) = (await deliveries_of(api, subscription["id"], status="delivered"))["items"]
    assert delivered["id"] == str(stale.delivery_id) and delivered["attempts"] == 2


# --- the API --------------------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_the_secret_is_answered_once_and_never_again(db, api, receiver):
    url = receiver.url(path())
    created = await api.post(
        BASE,
        json={"url": url, "event_types": ["nl.buurtkracht.vouchers.*"], "description": "Boekhouding"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 32
    assert created.headers["location"] == f"{BASE}/{body['id']}"
    assert body["url"] == url and body["event_types"] == ["nl.buurtkracht.vouchers.*"]
    assert body["description"] == "Boekhouding" and body["status"] == "active" and body["created_by"] == "admin-1"

    one = await api.get(f"{BASE}/{body['id']}", headers=ADMIN)
    assert one.status_code == 200 and "secret" not in one.json()
    assert one.json() == {key: value for key, value in body.items() if key != "secret"}
    listed = await api.get(BASE, headers=ADMIN)
    assert listed.json()["total"] == 1 and "secret" not in listed.json()["items"][0]
    assert body["secret"] not in listed.text + one.text

    second = await subscribe(api, receiver.url(path()))
    assert second["secret"] != body["secret"]
    page = (await api.get(BASE, params={"limit": 1, "offset": 1}, headers=ADMIN)).json()
    assert page["total"] == 2 and [s["id"] for s in page["items"]] == [body["id"]]  # newest first
    assert (await api.get(BASE, params={"status": "disabled"}, headers=ADMIN)).json()["total"] == 0


@pytest.mark.integration
async def test_a_subscription_changes_endpoint_filter_and_description_and_nothing_else(db, api, receiver, settings):
    old_hook, new_hook = path(), path()
    subscription = await subscribe(api, receiver.url(old_hook), ["nl.buurtkracht.vouchers.*"])
    target = f"{BASE}/{subscription['id']}"

    change = {"url": receiver.url(new_hook), "event_types": [APPROVED], "description": "Subsidies"}
    changed = await api.patch(target, json=change, headers=ADMIN)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["url"] == receiver.url(new_hook) and body["event_types"] == [APPROVED]
    assert body["description"] == "Subsidies" and "secret" not in body
    kept = await api.patch(target, json={"description": "Subsidieregeling"}, headers=ADMIN)
    assert kept.json()["url"] == receiver.url(new_hook) and kept.json()["event_types"] == [APPROVED]

    assert await enqueue(db, envelope(PLEDGE_MADE)) == 0  # no longer heard
    assert await enqueue(db, envelope(APPROVED)) == 1
    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 1
    (received,) = receiver.received[new_hook]
    Webhook(subscription["secret"]).verify(received.body, received.headers)  # the secret stays
    assert receiver.received[old_hook] == []

    for refused, field in (
        ({"url": "ftp://example.org/hooks"}, "url"),
        ({"event_types": ["nl.buurtkracht.*.v1"]}, "event_types.0"),
        ({"secret": "whsec_mine"}, "secret"),
    ):
        answer = await api.patch(target, json=refused, headers=ADMIN)
        assert answer.status_code == 422 and field in [e["field"] for e in answer.json()["errors"]], answer.text
    async with api_client(db, settings.model_copy(update={"webhook_allow_private_addresses": False})) as strict:
        answer = await strict.patch(target, json={"url": "http://10.0.0.8/hooks"}, headers=ADMIN)
        assert answer.status_code == 422 and [e["field"] for e in answer.json()["errors"]] == ["url"]
    after = (await api.get(target, headers=ADMIN)).json()
    assert (after["url"], after["event_types"], after["description"]) == (
        receiver.url(new_hook),
        [APPROVED],
        "Subsidieregeling",
    )


@pytest.mark.integration
async def test_a_rotated_secret_signs_beside_the_new_one_until_its_overlap_ends(db, api, receiver, settings):
    hook = path()
    subscription = await subscribe(api, receiver.url(hook))
    old = subscription["secret"]
    rotated = await api.post(f"{BASE}/{subscription['id']}/secret", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new.startswith("whsec_") and new != old
    overlap = datetime.fromisoformat(rotated.json()["previous_secret_until"]) - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < overlap <= timedelta(hours=24)
    one = (await api.get(f"{BASE}/{subscription['id']}", headers=ADMIN)).json()
    assert "secret" not in one and one["previous_secret_until"] == rotated.json()["previous_secret_until"]

    await enqueue(db, envelope())
    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 1
    (during,) = receiver.received[hook]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):  # a receiver on either secret accepts the delivery
        Webhook(secret).verify(during.body, during.headers)

    # Rotating again without overlap: only the newest secret signs, the two before it are refused.
    again = await api.post(f"{BASE}/{subscription['id']}/secret", json={"overlap_hours": 0}, headers=ADMIN)
    assert again.status_code == 200 and again.json()["previous_secret_until"] is None
    newest = again.json()["secret"]
    await enqueue(db, envelope())
    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 1
    after = receiver.received[hook][1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(newest).verify(after.body, after.headers)
    for secret in (new, old):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(after.body, after.headers)


@pytest.mark.integration
async def test_a_rotated_secret_stops_signing_when_its_overlap_has_passed(db, api, receiver, settings):
    hook = path()
    subscription = await subscribe(api, receiver.url(hook))
    rotated = (await api.post(f"{BASE}/{subscription['id']}/secret", json={"overlap_hours": 1}, headers=ADMIN)).json()
    await db.execute(
        "UPDATE webhook_subscriptions SET previous_secret_until = now() - interval '1 second' WHERE id = $1",
        uuid.UUID(subscription["id"]),
    )
    await enqueue(db, envelope())
    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 1
    (received,) = receiver.received[hook]
    Webhook(rotated["secret"]).verify(received.body, received.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(subscription["secret"]).verify(received.body, received.headers)


@pytest.mark.integration
@pytest.mark.parametrize("overlap", [-1, 169, "a day"])
async def test_a_rotation_with_an_invalid_overlap_is_refused_and_changes_nothing(db, api, receiver, overlap):
    subscription = await subscribe(api, receiver.url(path()))
    before = await db.fetchrow("SELECT secret, previous_secret FROM webhook_subscriptions")
    answer = await api.post(f"{BASE}/{subscription['id']}/secret", json={"overlap_hours": overlap}, headers=ADMIN)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert "overlap_hours" in [error["field"] for error in answer.json()["errors"]]
    assert await db.fetchrow("SELECT secret, previous_secret FROM webhook_subscriptions") == before


@pytest.mark.integration
async def test_a_deleted_subscription_hears_nothing_more_and_its_log_is_gone(db, api, receiver, settings):
    hook = path()
    subscription = await subscribe(api, receiver.url(hook))
    kept = await subscribe(api, receiver.url(path()))
    await enqueue(db, envelope())
    async with dispatcher(db, settings) as sender:
        (in_flight,) = [c for c in await sender.claim(10) if str(c.subscription_id) == subscription["id"]]

        deleted = await api.delete(f"{BASE}/{subscription['id']}", headers=ADMIN)
        assert deleted.status_code == 204 and deleted.content == b""
        assert (await api.get(f"{BASE}/{subscription['id']}", headers=ADMIN)).status_code == 404
        assert (await api.delete(f"{BASE}/{subscription['id']}", headers=ADMIN)).status_code == 404

        receiver.answers[hook] = 500
        await sender.deliver(in_flight)  # the attempt that was in flight: its outcome is dropped, nothing raised
        assert await enqueue(db, envelope()) == 1  # only the subscription that is left
        await sender.dispatch_once()
    assert len(receiver.received[hook]) == 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1", uuid.UUID(subscription["id"])
        )
        == 0
    )
    assert [s["id"] for s in (await api.get(BASE, headers=ADMIN)).json()["items"]] == [kept["id"]]
    assert await outbox(db, WebhookDeliveryFailed.event_type) == []


@pytest.mark.integration
async def test_finished_deliveries_leave_the_log_after_their_retention_and_pending_ones_never(
    db, api, receiver, settings
):
    subscription = await subscribe(api, receiver.url(path()))
    for _ in range(4):
        await enqueue(db, envelope())
    old_delivered, old_failed, old_pending, young_delivered = [
        uuid.UUID(d["id"]) for d in (await deliveries_of(api, subscription["id"]))["items"]
    ]
    finish = "UPDATE webhook_deliveries SET status = $2, next_attempt_at = NULL WHERE id = $1"
    for delivery, status in ((old_delivered, "delivered"), (old_failed, "failed"), (young_delivered, "delivered")):
        await db.execute(finish, delivery, status)
    days = settings.webhook_delivery_retention_days
    await db.execute(
        "UPDATE webhook_deliveries SET created_at = now() - make_interval(days => $2::int + 1) WHERE id = ANY($1)",
        [old_delivered, old_failed, old_pending],
        int(days),
    )
    assert await housekeeping.sweep(db, store.sweeps(days)) == {"webhook_deliveries": 2}
    remaining = {uuid.UUID(d["id"]) for d in (await deliveries_of(api, subscription["id"]))["items"]}
    assert remaining == {old_pending, young_delivered}


@pytest.mark.integration
async def test_without_private_addresses_an_endpoint_must_be_on_the_public_internet(db, pool, api, receiver, settings):
    """The production default: a URL naming a private address is refused with the field at fault, and a host
    name that resolves to one (here `localhost`) is never contacted."""
    public_only = settings.model_copy(update={"webhook_allow_private_addresses": False})
    async with api_client(pool, public_only) as strict:
        for url in ("http://10.1.2.3/hooks", "https://[::1]/hooks", "http://169.254.169.254/latest/meta-data"):
            answer = await strict.post(BASE, json={"url": url}, headers=ADMIN)
            assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
            assert [error["field"] for error in answer.json()["errors"]] == ["url"], answer.text
        assert await db.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0

        hook = path()
        by_name = receiver.url(hook).replace("127.0.0.1", "localhost")
        subscription = await subscribe(strict, by_name)
    await enqueue(db, envelope())
    async with dispatcher(db, public_only) as sender:
        assert await sender.dispatch_once() == 1
    assert receiver.received[hook] == []
    (delivery,) = (await deliveries_of(api, subscription["id"]))["items"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["last_error"].startswith("refused: localhost resolves to ")


@pytest.mark.integration
async def test_the_delivery_log_is_paginated(db, api, receiver):
    subscription = await subscribe(api, receiver.url(path()))
    for _ in range(3):
        await enqueue(db, envelope())
    first = await deliveries_of(api, subscription["id"], limit=2)
    rest = await deliveries_of(api, subscription["id"], limit=2, offset=2)
    assert first["total"] == rest["total"] == 3 and (first["limit"], rest["offset"]) == (2, 2)
    assert len(first["items"]) == 2 and len(rest["items"]) == 1
    assert {d["id"] for d in first["items"]}.isdisjoint({d["id"] for d in rest["items"]})
    assert all(d["status"] == "pending" and d["attempts"] == 0 for d in first["items"] + rest["items"])


@pytest.mark.integration
async def test_an_offset_beyond_any_page_is_refused_naming_the_field_and_the_largest_is_an_empty_page(
    db, api, receiver
):
    subscription = await subscribe(api, receiver.url(path()))
    for listing in (BASE, f"{BASE}/{subscription['id']}/deliveries"):
        answer = await api.get(listing, params={"offset": 10_000_000_000_000_000_000}, headers=ADMIN)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "offset" in [error["field"] for error in answer.json()["errors"]]
        largest = await api.get(listing, params={"offset": 2**31 - 1}, headers=ADMIN)
        assert largest.status_code == 200 and largest.json()["items"] == []


@pytest.mark.integration
async def test_unknown_subscriptions_are_not_found(db, api):
    unknown = uuid.uuid4()
    for answer in (
        await api.get(f"{BASE}/{unknown}", headers=ADMIN),
        await api.get(f"{BASE}/{unknown}/deliveries", headers=ADMIN),
        await api.post(f"{BASE}/{unknown}/enable", headers=ADMIN),
        await api.post(f"{BASE}/{unknown}/secret", headers=ADMIN),
        await api.patch(f"{BASE}/{unknown}", json={"description": "x"}, headers=ADMIN),
        await api.delete(f"{BASE}/{unknown}", headers=ADMIN),
    ):
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"
        assert str(unknown) in answer.json()["detail"]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/hooks"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https:///no-host"}, "url"),
        ({}, "url"),
        ({"url": "https://example.org/", "event_types": ["nl.buurtkracht.*.v1"]}, "event_types.0"),
        ({"url": "https://example.org/", "event_types": "nl.buurtkracht.vouchers.*"}, "event_types"),
        ({"url": "https://example.org/", "description": "x" * 501}, "description"),
        ({"url": "https://example.org/", "secret": "whsec_mine"}, "secret"),
    ],
)
async def test_invalid_subscriptions_are_refused_naming_the_field(db, api, body, field):
    answer = await api.post(BASE, json=body, headers=ADMIN)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in answer.json()["errors"]]
    assert await db.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0


@pytest.mark.integration
async def test_only_admins_manage_webhook_subscriptions(db, api, receiver):
    subscription = await subscribe(api, receiver.url(path()))
    target = f"{BASE}/{subscription['id']}"
    requests = [
        ("POST", BASE, {"url": "https://example.org/hooks"}),
        ("GET", BASE, None),
        ("GET", target, None),
        ("GET", f"{target}/deliveries", None),
        ("POST", f"{target}/enable", None),
        ("POST", f"{target}/secret", None),
        ("PATCH", target, {"description": "mine now"}),
        ("DELETE", target, None),
    ]
    others = [
        token("r-1", ["resident"], ["BU03630001"]),
        token("o-1", ["official"], ["GM0363"]),
        token("sg-1", ["steering_group"], ["WK036300"]),
        token("finance", ["integration"]),
    ]
    for method, url, body in requests:
        for headers in others:
            answer = await api.request(method, url, json=body, headers=headers)
            assert answer.status_code == 403, (method, url, answer.text)
            assert answer.json()["type"].endswith("/forbidden")
        anonymous = await api.request(method, url, json=body)
        assert anonymous.status_code == 401
    assert await db.fetchval("SELECT count(*) FROM webhook_subscriptions") == 1
    assert await db.fetchval("SELECT secret FROM webhook_subscriptions") == subscription["secret"]


# --- who is who ----------------------------------------------------------------------------------------------


def pledge(resident_id: str, amount_cents: int = 2_500, round_id: uuid.UUID | None = None) -> Envelope:
    made = voucher_events.PledgeMade(
        round_id=round_id or uuid.uuid4(),
        area_code="BU03630001",
        pledge_id=uuid.uuid4(),
        initiative_id=uuid.uuid4(),
        resident_id=resident_id,
        amount_cents=amount_cents,
        wallet_balance_cents=0,
        pledged_to_initiative_cents=amount_cents,
        requested_amount_cents=amount_cents,
    )
    return Envelope.wrap(made, VOUCHERS_SOURCE)


@pytest.mark.unit
def test_a_pseudonym_is_the_same_person_in_one_subscription_and_another_one_elsewhere():
    key, other_key = "k" * 64, "q" * 64
    first = rules.pseudonym(key, "r-anna")
    assert first == rules.pseudonym(key, "r-anna") and first.startswith("p-") and len(first) == 34
    assert first != rules.pseudonym(key, "r-bob") and first != rules.pseudonym(other_key, "r-anna")
    assert "anna" not in first


@pytest.mark.unit
def test_a_delivery_without_the_right_names_people_by_pseudonym_and_leaves_out_fields_it_cannot_judge():
    event = pledge("r-anna")
    body = event.model_copy(update={"data": event.data | {"owner_id": "r-anna"}}).model_dump_json()
    assert rules.delivered_body(body, True, "k" * 64) == body
    sent = json.loads(rules.delivered_body(body, False, "k" * 64))
    assert sent["data"]["resident_id"] == rules.pseudonym("k" * 64, "r-anna") and "owner_id" not in sent["data"]
    assert sent["data"]["amount_cents"] == 2_500 and sent["subject"] == event.subject and sent["id"] == str(event.id)
    assert "r-anna" not in json.dumps(sent)
    unknown = Envelope(source=VOUCHERS_SOURCE, type="nl.buurtkracht.vouchers.unknown.v1", subject="r-anna", data={})
    sent = json.loads(rules.delivered_body(unknown.model_dump_json(), False, "k" * 64))
    assert sent["data"] == {} and sent["subject"].startswith("p-")


@pytest.mark.integration
async def test_only_a_subscription_allowed_to_see_resident_ids_gets_them_and_each_delivery_is_signed_as_sent(
    db, api, receiver, settings
):
    plain_hook, trusted_hook = path(), path()
    plain = await subscribe(api, receiver.url(plain_hook), [PLEDGE_MADE])
    answer = await api.post(
        BASE,
        json={"url": receiver.url(trusted_hook), "event_types": [PLEDGE_MADE], "may_see_resident_ids": True},
        headers=ADMIN,
    )
    assert answer.status_code == 201, answer.text
    trusted = answer.json()
    assert (plain["may_see_resident_ids"], trusted["may_see_resident_ids"]) == (False, True)

    pledges = [pledge("r-anna"), pledge("r-anna", 1_000), pledge("r-bob")]
    for event in pledges:
        assert await enqueue(db, event) == 2
    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 6

    def received(hook: str, secret: str) -> list[dict]:
        payloads = [Webhook(secret).verify(r.body, r.headers) for r in receiver.received[hook]]
        return sorted(payloads, key=lambda payload: [e.id for e in pledges].index(uuid.UUID(payload["id"])))

    trusted_got = received(trusted_hook, trusted["secret"])
    assert [payload["data"] for payload in trusted_got] == [event.data for event in pledges]
    plain_got = received(plain_hook, plain["secret"])  # verified: signed over the pseudonymised body
    people = [payload["data"]["resident_id"] for payload in plain_got]
    assert people[0] == people[1] != people[2] and all(person.startswith("p-") for person in people)
    assert not any(b"r-anna" in r.body or b"r-bob" in r.body for r in receiver.received[plain_hook])
    assert [payload["data"]["amount_cents"] for payload in plain_got] == [2_500, 1_000, 2_500]

    other = await subscribe(api, receiver.url(path()), [PLEDGE_MADE])
    assert other["may_see_resident_ids"] is False


@pytest.mark.integration
async def test_an_admin_allows_and_disallows_seeing_resident_ids_and_what_waits_is_sent_as_the_right_is_now(
    db, api, receiver, settings
):
    hook = path()
    subscription = await subscribe(api, receiver.url(hook), [PLEDGE_MADE])
    target = f"{BASE}/{subscription['id']}"
    resident = token("r-anna", ["resident"], ["BU03630001"])
    assert (await api.patch(target, json={"may_see_resident_ids": True}, headers=resident)).status_code == 403
    allowed = await api.patch(target, json={"may_see_resident_ids": True}, headers=ADMIN)
    assert allowed.status_code == 200 and allowed.json()["may_see_resident_ids"] is True
    assert (await api.get(target, headers=ADMIN)).json()["may_see_resident_ids"] is True

    await enqueue(db, pledge("r-anna"))
    kept = await api.patch(target, json={"description": "Telling"}, headers=ADMIN)
    assert kept.json()["may_see_resident_ids"] is True, "a change that leaves it out keeps it"
    revoked = await api.patch(target, json={"may_see_resident_ids": False}, headers=ADMIN)
    assert revoked.json()["may_see_resident_ids"] is False
    async with dispatcher(db, settings) as sender:
        assert await sender.dispatch_once() == 1
    (received,) = receiver.received[hook]
    payload = Webhook(subscription["secret"]).verify(received.body, received.headers)
    assert payload["data"]["resident_id"].startswith("p-"), "queued while allowed, sent after: pseudonymised"
    refused = await api.patch(target, json={"may_see_resident_ids": "yes"}, headers=ADMIN)
    assert refused.status_code == 422


# --- the whole service ----------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_an_event_from_kafka_reaches_a_subscribed_endpoint_signed_and_once(receiver, kafka_bootstrap, public_key):
    """The service as it runs: its consumer queues the delivery, its own background loop sends it. Its own
    database, so that loop never meets the deliveries the other tests drive by hand."""
    group = f"notifications-webhooks-test-{uuid.uuid4().hex[:6]}"
    # its dead-letter topic too: a stray record on the shared topics is parked there, as in production
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [*all_topics(), TopicSpec(dead_letter_topic(group), 1)])
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = NotificationsSettings(
            service_name=group,
            database_url=database_url(name),
            kafka_bootstrap_servers=kafka_bootstrap,
            jwt_public_key_file=public_key,
            consumer_start="latest",
            relay_poll_interval_seconds=0.1,
            dispatch_interval_seconds=3600,
            digest_check_seconds=3600,
            webhook_dispatch_interval_seconds=0.1,
            webhook_allow_private_addresses=True,  # the receiving endpoint is on 127.0.0.1
        )
        service = create(settings)
        async with LifespanManager(service.app):
            for _ in range(300):
                if await service.consuming():
                    break
                await asyncio.sleep(0.1)
            assert await service.consuming()
            transport = httpx.ASGITransport(app=service.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                hook, other = path(), path()
                subscription = await subscribe(client, receiver.url(hook), [APPROVED])
                await subscribe(client, receiver.url(other), ["nl.buurtkracht.vouchers.*"])
                approved = initiative_events.InitiativeApproved(
                    initiative_id=uuid.uuid4(),
                    area_code="BU03630001",
                    title="Geveltuinen",
                    initiators=["r-owner"],
                    official_id="o-1",
                    requested_amount_cents=50_000,
                    approved_amount_cents=45_000,
                )
                event = Envelope.wrap(approved, INITIATIVES_SOURCE)
                record = to_kafka(event)
                producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
                await producer.start()
                try:
                    for _ in range(2):  # delivered twice by Kafka: one webhook delivery
                        await producer.send_and_wait(
                            INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers
                        )
                finally:
                    await producer.stop()

                def ours(at: str) -> list[Received]:  # the shared Kafka carries other runs' events too
                    return [r for r in receiver.received[at] if str(event.id).encode() in r.body]

                for _ in range(300):
                    if ours(hook):
                        break
                    await asyncio.sleep(0.05)
                await asyncio.sleep(1.0)  # time for a second delivery, if there were one

                (received,) = ours(hook)
                payload = Webhook(subscription["secret"]).verify(received.body, received.headers)
                assert payload["id"] == str(event.id) and payload["type"] == APPROVED
                assert payload["source"] == INITIATIVES_SOURCE and payload["subject"] == str(approved.initiative_id)
                assert payload["data"]["approved_amount_cents"] == 45_000
                assert ours(other) == []
                log = (await client.get(f"{BASE}/{subscription['id']}/deliveries", headers=ADMIN)).json()
                assert [d["status"] for d in log["items"] if d["event_id"] == str(event.id)] == ["delivered"]
                assert (
                    'buurtkracht_webhook_deliveries_total{outcome="delivered"}' in (await client.get("/metrics")).text
                )
                registry = service.metrics.registry
                assert registry.get_sample_value("buurtkracht_webhook_deliveries_total", {"outcome": "delivered"}) >= 1
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
