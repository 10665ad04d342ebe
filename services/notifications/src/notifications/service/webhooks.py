"""Webhooks: subscriptions of integrations, deliveries queued with the consumed event, and the dispatcher.

Invariants:
- every consumed initiatives/vouchers event queues one delivery per matching active subscription in the
  consumer's own transaction (`enqueue`), so a redelivered event adds nothing and a rolled-back one nothing;
- deliveries are sent from the database, never from Kafka: the dispatcher leases due deliveries in a short
  transaction, sends them with no transaction open, and records each outcome in a new one; a slow or dead
  endpoint holds only its own few sending slots (see `adapters.webhooks.Webhooks.claim`), never the consumer's;
- an attempt lasts at most `webhook_timeout_seconds`, well inside its lease, so no delivery is ever sent
  twice at the same time, also with several replicas dispatching;
- the last failed attempt records `WebhookDeliveryFailed`; switching a subscription off records
  `WebhookSubscriptionDisabled` and tells the admin who created it in their inbox, once per switch;
- a subscription that an admin did not allow to see people's ids is sent pseudonyms instead, and every attempt
  is signed over the body it sends (`domain.webhooks.delivered_body`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.notifications import WebhookDeliveryFailed, WebhookSubscriptionDisabled, is_tombstone
from buurtkracht_contracts.refusals import InvalidInput, NotFound
from buurtkracht_kit import periodic, tracing
from buurtkracht_kit.auth import Principal
from buurtkracht_kit.runtime import Service

from ..adapters import webhooks as store
from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..domain import webhooks as rules
from ..domain.webhooks import Reason, Subscription, Verdict
from ..settings import NotificationsSettings

logger = logging.getLogger(__name__)

PER_SUBSCRIPTION_IN_FLIGHT = 4  # sending slots one subscription may hold at once (over every replica)
LEASE_MARGIN_SECONDS = 60.0  # a lease outlasts the attempt's timeout by this much
USER_AGENT = "Buurtkracht-Webhooks/1.0"
DISABLED_KIND = "webhook_disabled"

UnitOfWorkFactory = Callable[[], NotificationsUnitOfWork]


class UnknownSubscription(NotFound):
    """There is no webhook subscription with this id."""

    def __init__(self, subscription_id: uuid.UUID) -> None:
        super().__init__(f"webhook subscription {subscription_id}")


class NotPublic(InvalidInput):
    """The endpoint is not on the public internet, and private addresses are not allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="url")


# --- subscriptions --------------------------------------------------------------------------------------------


async def create_subscription(
    uow: NotificationsUnitOfWork,
    admin: Principal,
    *,
    url: str,
    event_types: list[str],
    description: str,
    may_see_resident_ids: bool = False,
    allow_private_addresses: bool = False,
) -> tuple[Subscription, str]:
    """A new active subscription and its signing secret (which is shown once, to its creator). A URL that
    names a non-public IP address is refused unless private addresses are allowed; host names are checked
    when they are resolved, at every attempt. People are pseudonyms in its deliveries unless the admin allows
    it to see their ids."""
    _check_public(url, allow_private_addresses)
    secret = rules.new_secret()
    subscription = await uow.webhooks.add_subscription(
        subscription_id=uuid.uuid4(),
        url=rules.check_url(url),
        secret=secret,
        event_types=rules.normalised_filters([rules.check_filter(pattern) for pattern in event_types]),
        description=description,
        created_by=admin.subject,
        may_see_resident_ids=may_see_resident_ids,
    )
    logger.info(
        "webhook subscription %s created by %s (may see resident ids: %s)",
        subscription.id,
        admin.subject,
        subscription.may_see_resident_ids,
    )
    return subscription, secret


def _check_public(url: str, allow_private_addresses: bool) -> None:
    address = rules.literal_address(url)
    if address is not None and not allow_private_addresses and not rules.is_public(address):
        raise NotPublic(f"{address} is not a public internet address")


async def change_subscription(
    uow: NotificationsUnitOfWork,
    admin: Principal,
    subscription_id: uuid.UUID,
    *,
    url: str | None = None,
    event_types: list[str] | None = None,
    description: str | None = None,
    may_see_resident_ids: bool | None = None,
    allow_private_addresses: bool = False,
) -> Subscription:
    """Change the endpoint, the filter, the description or whether it may see people's ids; what is given
    replaces what was. Deliveries still pending go to the new URL, and are sent as the new right says; events
    already queued stay queued whatever the new filter says."""
    if url is not None:
        _check_public(rules.check_url(url), allow_private_addresses)
    patterns = None
    if event_types is not None:
        patterns = rules.normalised_filters([rules.check_filter(pattern) for pattern in event_types])
    subscription = await uow.webhooks.change_subscription(
        subscription_id,
        url=url,
        event_types=patterns,
        description=description,
        may_see_resident_ids=may_see_resident_ids,
    )
    if subscription is None:
        raise UnknownSubscription(subscription_id)
    logger.info(
        "webhook subscription %s changed by %s (may see resident ids: %s)",
        subscription_id,
        admin.subject,
        subscription.may_see_resident_ids,
    )
    return subscription


async def enable_subscription(uow: NotificationsUnitOfWork, subscription_id: uuid.UUID) -> Subscription:
    """Switch a (disabled) subscription on again; the deliveries that waited are due at once."""
    subscription = await uow.webhooks.enable(subscription_id)
    if subscription is None:
        raise UnknownSubscription(subscription_id)
    logger.info("webhook subscription %s enabled", subscription_id)
    return subscription


async def rotate_secret(
    uow: NotificationsUnitOfWork, admin: Principal, subscription_id: uuid.UUID, overlap_hours: float
) -> tuple[Subscription, str]:
    """A new signing secret (shown once, to this admin); the old one signs beside it for `overlap_hours`."""
    secret = rules.new_secret()
    subscription = await uow.webhooks.rotate_secret(subscription_id, secret, overlap_hours * 3600)
    if subscription is None:
        raise UnknownSubscription(subscription_id)
    logger.info(
        "webhook subscription %s: secret rotated by %s, the old one signs for %g more hours",
        subscription_id,
        admin.subject,
        overlap_hours,
    )
    return subscription, secret


async def delete_subscription(uow: NotificationsUnitOfWork, admin: Principal, subscription_id: uuid.UUID) -> None:
    """Stop sending to the endpoint for good: the subscription, its pending deliveries and its log are removed.
    An attempt in flight may still arrive; its outcome is dropped."""
    if not await uow.webhooks.delete_subscription(subscription_id):
        raise UnknownSubscription(subscription_id)
    logger.info("webhook subscription %s deleted by %s", subscription_id, admin.subject)


# --- queueing -------------------------------------------------------------------------------------------------


async def enqueue(uow: NotificationsUnitOfWork, envelope: Envelope) -> int:
    """Queue the event for every active subscription whose filter matches; returns how many deliveries were added."""
    chosen = [
        subscription_id
        for subscription_id, patterns in await uow.webhooks.active_filters()
        if rules.matches(patterns, envelope.type)
    ]
    if not chosen:
        return 0
    added = await uow.webhooks.add_deliveries(chosen, envelope.id, envelope.type, envelope.model_dump_json())
    if added:
        logger.debug("event %s (%s) queued for %d webhook subscriptions", envelope.id, envelope.type, added)
    return added


# --- dispatching ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookMetrics:
    deliveries: Counter
    disabled: Counter
    duration: Histogram
    in_flight: Gauge


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, WebhookMetrics] = weakref.WeakKeyDictionary()


def metrics_in(registry: CollectorRegistry) -> WebhookMetrics:
    """The webhook metrics in `registry`, made once per registry."""
    if registry not in _METRICS:
        _METRICS[registry] = WebhookMetrics(
            deliveries=Counter(
                "buurtkracht_webhook_deliveries_total",
                "Webhook delivery attempts by outcome: delivered, retry (another attempt follows), "
                "failed (the last attempt failed) or gone (410: the subscription was disabled)",
                ["outcome"],
                registry=registry,
            ),
            disabled=Counter(
                "buurtkracht_webhook_subscriptions_disabled_total",
                "Webhook subscriptions switched off, by reason (gone, repeated_failures)",
                ["reason"],
                registry=registry,
            ),
            duration=Histogram(
                "buurtkracht_webhook_delivery_duration_seconds",
                "Time of one webhook delivery attempt, until the answer or the timeout",
                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                registry=registry,
            ),
            in_flight=Gauge(
                "buurtkracht_webhook_deliveries_in_flight", "Webhook attempts being sent now", registry=registry
            ),
        )
        for outcome in ("delivered", "retry", "failed", "gone"):
            _METRICS[registry].deliveries.labels(outcome)
        for reason in ("gone", "repeated_failures"):
            _METRICS[registry].disabled.labels(reason)
    return _METRICS[registry]


class Dispatcher:
    """Sends due deliveries, at most `concurrency` at once, and records what came of each. A `client` given
    must come from `adapters.webhooks.client`, which keeps deliveries to the addresses it checked."""

    def __init__(
        self,
        unit_of_work: UnitOfWorkFactory,
        settings: NotificationsSettings,
        metrics: WebhookMetrics,
        *,
        per_subscription: int = PER_SUBSCRIPTION_IN_FLIGHT,
        retry_delay: Callable[[int], float] | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._settings = settings
        self._metrics = metrics
        self._per_subscription = per_subscription
        self._retry_delay = retry_delay
        self._client = client or store.client(
            public_only=not settings.webhook_allow_private_addresses,
            timeout=settings.webhook_timeout_seconds,
            connections=settings.webhook_concurrency,
            user_agent=USER_AGENT,
        )
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def lease_seconds(self) -> float:
        return self._settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS

    async def close(self) -> None:
        for task in self._in_flight:
            task.cancel()
        await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._client.aclose()

    async def claim(self, limit: int) -> list[store.Claimed]:
        async with self._unit_of_work() as uow:
            claimed = await uow.webhooks.claim(limit, self._per_subscription, self.lease_seconds)
            await uow.commit()
        return claimed

    async def dispatch_once(self) -> int:
        """Claim what is due (up to the free slots), send it all and record the outcomes; returns how many."""
        claimed = await self.claim(self._settings.webhook_concurrency - len(self._in_flight))
        await asyncio.gather(*(self.deliver(delivery) for delivery in claimed))
        return len(claimed)

    async def run(self) -> None:
        """Keep every sending slot busy while deliveries are due; never ends but by cancellation. While attempts
        are in flight it claims again as soon as one ends, not after the interval: an attempt that ends frees a
        slot of its subscription too (at most `per_subscription` each), so one busy subscription is sent to as
        fast as its endpoint answers, not `per_subscription` per interval."""
        interval = self._settings.webhook_dispatch_interval_seconds
        while True:
            free = self._settings.webhook_concurrency - len(self._in_flight)
            claimed: list[store.Claimed] = []
            try:
                claimed = await self.claim(free)
            except Exception:  # the database may be back next round
                logger.exception("claiming due webhook deliveries failed")
            for delivery in claimed:
                task = asyncio.ensure_future(self.deliver(delivery))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            periodic.stop_if_cancelled()
            if self._in_flight:  # go on when an attempt ends (or after the interval, for what becomes due)
                await asyncio.wait(self._in_flight, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(interval)

    async def _cause(self, claimed: store.Claimed) -> str | None:
        """The trace of the consumed event that queued the delivery, while tracing is on."""
        if not tracing.enabled():
            return None
        async with self._unit_of_work() as uow:
            return await tracing.consumed_traceparent(uow.connection, self._settings.service_name, claimed.event_id)

    async def deliver(self, claimed: store.Claimed) -> None:
        """Send one attempt and record its outcome; never raises (an unrecorded attempt is retried after its lease)."""
        message_id = str(claimed.delivery_id)
        try:
            body = rules.delivered_body(claimed.body, claimed.may_see_resident_ids, claimed.pseudonym_key)
            headers = rules.signed_headers(claimed.secrets, message_id, body)  # over the bytes sent
            started = time.perf_counter()
            self._metrics.in_flight.inc()
            try:
                with tracing.span_from(await self._cause(claimed), "webhook deliver", tracing.SpanKind.CLIENT):
                    answer = await store.post(
                        self._client,
                        claimed.url,
                        headers,
                        body,
                        self._settings.webhook_timeout_seconds,
                    )
            finally:
                self._metrics.in_flight.dec()
                self._metrics.duration.observe(time.perf_counter() - started)
            await self._record(claimed, answer)
        except Exception:
            logger.exception(
                "webhook delivery %s of event %s (attempt %d) could not be completed; retried after its lease",
                claimed.delivery_id,
                claimed.event_id,
                claimed.attempt,
            )

    def _delay(self, attempts_made: int) -> float:
        return self._retry_delay(attempts_made) if self._retry_delay else rules.retry_delay(attempts_made)

    async def _record(self, claimed: store.Claimed, answer: store.Answer) -> None:
        settings = self._settings
        verdict = rules.judge(answer.status_code)
        async with self._unit_of_work() as uow:
            if verdict is Verdict.DELIVERED:
                assert answer.status_code is not None
                if not await uow.webhooks.mark_delivered(claimed, answer.status_code):
                    return self._stale(claimed)
                await uow.webhooks.reset_failures(claimed.subscription_id)
                await uow.commit()
                self._metrics.deliveries.labels("delivered").inc()
                logger.info(
                    "webhook delivery %s of event %s delivered (attempt %d, HTTP %d)",
                    claimed.delivery_id,
                    claimed.event_id,
                    claimed.attempt,
                    answer.status_code,
                )
                return
            run = await uow.webhooks.count_failure(claimed.subscription_id)
            if run is None:  # the subscription was deleted while the attempt was in flight
                return self._stale(claimed)
            failures, failing_for = run
            outcome = rules.outcome(
                verdict,
                claimed.attempt,
                settings.webhook_max_attempts,
                failures,
                settings.webhook_disable_after_failures,
                failing_for,
                timedelta(hours=settings.webhook_disable_after_hours),
            )
            error = answer.error or f"HTTP {answer.status_code}"
            retry_in = None if outcome.final else self._delay(claimed.attempt)
            if not await uow.webhooks.mark_failed_attempt(claimed, answer.status_code, error, retry_in):
                return self._stale(claimed)
            if outcome.final:
                uow.record(
                    WebhookDeliveryFailed(
                        subscription_id=claimed.subscription_id,
                        delivery_id=claimed.delivery_id,
                        source_event_id=claimed.event_id,
                        attempts=claimed.attempt,
                        last_status_code=answer.status_code,
                        error=error[: store.MAX_ERROR_LENGTH],
                    )
                )
            disabled = await self._disable(uow, claimed, outcome.disable) if outcome.disable else False
            await uow.commit()
        label = "gone" if verdict is Verdict.GONE else "failed" if outcome.final else "retry"
        self._metrics.deliveries.labels(label).inc()
        if disabled:
            self._metrics.disabled.labels(outcome.disable).inc()
        logger.warning(
            "webhook delivery %s of event %s: attempt %d of %d failed (%s); %s",
            claimed.delivery_id,
            claimed.event_id,
            claimed.attempt,
            settings.webhook_max_attempts,
            error,
            "given up" if outcome.final else f"next attempt in {retry_in:.0f} s",
        )

    async def _disable(self, uow: NotificationsUnitOfWork, claimed: store.Claimed, reason: Reason) -> bool:
        subscription = await uow.webhooks.disable(claimed.subscription_id, reason)
        if subscription is None:
            return False  # already off
        (envelope,) = uow.record(
            WebhookSubscriptionDisabled(
                subscription_id=subscription.id, reason=reason, admin_id=subscription.created_by
            )
        )
        if not is_tombstone(subscription.created_by):  # an admin who was forgotten is told nothing
            await uow.notifications.to_inbox(
                subscription.created_by,
                DISABLED_KIND,
                {"subscription_id": str(subscription.id), "url": subscription.url, "reason": reason},
                dedup_key=str(envelope.id),
                source_event_id=envelope.id,
            )
        logger.warning(
            "webhook subscription %s disabled (%s) after delivery %s of event %s; admin %s told",
            subscription.id,
            reason,
            claimed.delivery_id,
            claimed.event_id,
            subscription.created_by,
        )
        return True

    def _stale(self, claimed: store.Claimed) -> None:
        logger.warning(
            "webhook delivery %s of event %s: outcome of attempt %d dropped (a later attempt holds it, or the "
            "subscription was deleted)",
            claimed.delivery_id,
            claimed.event_id,
            claimed.attempt,
        )


async def run_dispatcher(service: Service) -> None:
    """The background loop: sends due webhook deliveries until cancelled; an error is logged, never fatal."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    dispatcher = Dispatcher(service.unit_of_work, settings, metrics_in(service.metrics.registry))
    try:
        await dispatcher.run()
    finally:
        await dispatcher.close()
