"""Webhook subscriptions and deliveries in PostgreSQL (the only SQL about them), and the HTTP post of one attempt.

Invariants kept here:
- a (subscription, event) pair has one delivery row, so a redelivered event adds nothing;
- a delivery is sent by one dispatcher at a time: it is claimed with `FOR UPDATE SKIP LOCKED` by setting
  a lease (`leased_until`) in a short transaction, and not claimed again before the lease ends;
- an outcome is written only by the attempt that claimed the delivery last (`attempts` is the fence): a
  dispatcher whose lease ran out cannot overwrite the outcome of a later attempt;
- a subscription holds at most `per_subscription` leased deliveries, so its backlog or a slow endpoint
  never takes every sending slot;
- a webhook is posted over a connection to an address that was checked when its host was resolved, never
  to one a second lookup found (`PinnedBackend`), and a redirect is never followed;
- a delivery's body is the event as it was consumed; what each subscription is sent of it, and signed, is
  decided when it is sent (`domain.webhooks.delivered_body`), so taking away a subscription's right to see
  people's ids holds for what it still waits for too.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import httpcore
import httpx

from buurtkracht_kit.housekeeping import Sweep

from ..domain.webhooks import Delivery, DeliveryStatus, Reason, Subscription, SubscriptionStatus, is_public

MAX_ERROR_LENGTH = 1000
MAX_RESPONSE_EXCERPT = 300

_SUBSCRIPTION_COLUMNS = (
    "id, url, event_types, description, created_by, status, disabled_reason, disabled_at, consecutive_failures, "
    "created_at, previous_secret_until, may_see_resident_ids"
)
_DELIVERY_COLUMNS = (
    "id, subscription_id, event_id, event_type, status, attempts, next_attempt_at, last_attempt_at, "
    "last_status_code, last_error, delivered_at, created_at"
)


def _subscription(row: asyncpg.Record) -> Subscription:
    return Subscription(**{**dict(row), "status": SubscriptionStatus(row["status"])})


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(**{**dict(row), "status": DeliveryStatus(row["status"])})


@dataclass(frozen=True)
class Claimed:
    """A delivery leased for one attempt, with what it takes to send it."""

    delivery_id: uuid.UUID
    subscription_id: uuid.UUID
    attempt: int  # 1-based number of this attempt; the fence for its outcome
    event_id: uuid.UUID
    event_type: str
    body: str
    url: str
    secrets: tuple[str, ...]  # the current secret, and a rotated one while it still signs
    created_by: str
    may_see_resident_ids: bool
    pseudonym_key: str


def sweeps(retention_days: float) -> list[Sweep]:
    """Housekeeping: finished deliveries leave the log after `retention_days`; pending ones never do."""
    return [Sweep("webhook_deliveries", "created_at", timedelta(days=retention_days), where="status <> 'pending'")]


class Webhooks:
    """Webhook subscriptions and their deliveries, on one connection (a unit of work's transaction)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection
        self._filters: list[tuple[uuid.UUID, list[str]]] | None = None

    # -- subscriptions --------------------------------------------------------------------------------------------

    async def add_subscription(
        self,
        *,
        subscription_id: uuid.UUID,
        url: str,
        secret: str,
        event_types: Sequence[str],
        description: str,
        created_by: str,
        may_see_resident_ids: bool = False,
    ) -> Subscription:
        """A new subscription; the database makes its pseudonym key, which never leaves it but in deliveries."""
        row = await self._conn.fetchrow(
            f"""INSERT INTO webhook_subscriptions (id, url, secret, event_types, description, created_by,
                                                   may_see_resident_ids)
                VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_SUBSCRIPTION_COLUMNS}""",
            subscription_id,
            url,
            secret,
            list(event_types),
            description,
            created_by,
            may_see_resident_ids,
        )
        return _subscription(row)

    async def subscription(self, subscription_id: uuid.UUID) -> Subscription | None:
        row = await self._conn.fetchrow(
            f"SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1", subscription_id
        )
        return _subscription(row) if row else None

    async def subscriptions(
        self, status: SubscriptionStatus | None, limit: int, offset: int
    ) -> tuple[list[Subscription], int]:
        """A page of subscriptions (newest first) and how many there are."""
        rows = await self._conn.fetch(
            f"""SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE $1::text IS NULL OR status = $1
                ORDER BY created_at DESC, id LIMIT $2 OFFSET $3""",
            status,
            limit,
            offset,
        )
        total = await self._conn.fetchval(
            "SELECT count(*) FROM webhook_subscriptions WHERE $1::text IS NULL OR status = $1", status
        )
        return [_subscription(row) for row in rows], total

    async def rotate_secret(
        self, subscription_id: uuid.UUID, secret: str, overlap_seconds: float
    ) -> Subscription | None:
        """Sign with `secret` from now on; the replaced one goes on signing beside it for `overlap_seconds`
        (not at all when 0). `None` when there is no such subscription."""
        row = await self._conn.fetchrow(
            f"""UPDATE webhook_subscriptions
                SET previous_secret = CASE WHEN $3::float8 > 0 THEN secret END,
                    previous_secret_until = CASE WHEN $3::float8 > 0 THEN now() + make_interval(secs => $3) END,
                    secret = $2
                WHERE id = $1 RETURNING {_SUBSCRIPTION_COLUMNS}""",
            subscription_id,
            secret,
            overlap_seconds,
        )
        return _subscription(row) if row else None

    async def change_subscription(
        self,
        subscription_id: uuid.UUID,
        *,
        url: str | None,
        event_types: Sequence[str] | None,
        description: str | None,
        may_see_resident_ids: bool | None = None,
    ) -> Subscription | None:
        """Change what is given (None: keep); `None` when there is no such subscription."""
        row = await self._conn.fetchrow(
            f"""UPDATE webhook_subscriptions
                SET url = coalesce($2, url), event_types = coalesce($3, event_types),
                    description = coalesce($4, description),
                    may_see_resident_ids = coalesce($5, may_see_resident_ids)
                WHERE id = $1 RETURNING {_SUBSCRIPTION_COLUMNS}""",
            subscription_id,
            url,
            list(event_types) if event_types is not None else None,
            description,
            may_see_resident_ids,
        )
        return _subscription(row) if row else None

    async def delete_subscription(self, subscription_id: uuid.UUID) -> bool:
        """Remove a subscription and its delivery log; `False` when there was none."""
        return bool(
            await self._conn.fetchval("DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING true", subscription_id)
        )

    async def created_by(self, admin_id: str) -> list[Subscription]:
        """The subscriptions `admin_id` created, oldest first."""
        rows = await self._conn.fetch(
            f"SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE created_by = $1 ORDER BY created_at, id",
            admin_id,
        )
        return [_subscription(row) for row in rows]

    async def hand_over(self, admin_id: str, tombstone: str) -> int:
        """The subscriptions `admin_id` created name `tombstone` as their creator instead; returns how many."""
        done = await self._conn.execute(
            "UPDATE webhook_subscriptions SET created_by = $2 WHERE created_by = $1", admin_id, tombstone
        )
        return int(done.split()[-1])

    async def bodies_naming(self, person_id: str) -> list[tuple[uuid.UUID, str]]:
        """Every delivery (of any state) whose queued body holds `person_id` somewhere, locked, with its body."""
        rows = await self._conn.fetch(
            """SELECT id, body FROM webhook_deliveries
               WHERE strpos(body, $1) > 0 OR strpos(body, to_jsonb($1::text)::text) > 0 ORDER BY id FOR UPDATE""",
            person_id,
        )
        return [(row["id"], row["body"]) for row in rows]

    async def rewrite_bodies(self, bodies: list[tuple[uuid.UUID, str]]) -> None:
        """Replace the queued body of each delivery; later attempts send (and sign) the new one."""
        await self._conn.executemany("UPDATE webhook_deliveries SET body = $2 WHERE id = $1", bodies)

    async def replace_in_errors(self, person_id: str, tombstone: str) -> None:
        """An endpoint's answer kept as a delivery's last error (it may echo what it was sent) names `tombstone`
        wherever it named `person_id`."""
        await self._conn.execute(
            "UPDATE webhook_deliveries SET last_error = replace(last_error, $1, $2) WHERE strpos(last_error, $1) > 0",
            person_id,
            tombstone,
        )

    async def active_filters(self) -> list[tuple[uuid.UUID, list[str]]]:
        """Every active subscription's id and event-type filters, read once per unit of work: the events of one
        consumed batch are matched against the subscriptions as they were when the batch began."""
        if self._filters is None:
            rows = await self._conn.fetch("SELECT id, event_types FROM webhook_subscriptions WHERE status = 'active'")
            self._filters = [(row["id"], list(row["event_types"])) for row in rows]
        return self._filters

    async def count_failure(self, subscription_id: uuid.UUID) -> tuple[int, timedelta] | None:
        """One more failed attempt in the subscription's current run; returns the run's length and how long ago it
        began (`None` when the subscription was deleted meanwhile)."""
        row = await self._conn.fetchrow(
            """UPDATE webhook_subscriptions SET consecutive_failures = consecutive_failures + 1,
                                                failing_since = coalesce(failing_since, now())
               WHERE id = $1 RETURNING consecutive_failures, now() - failing_since AS failing_for""",
            subscription_id,
        )
        return None if row is None else (row["consecutive_failures"], row["failing_for"])

    async def reset_failures(self, subscription_id: uuid.UUID) -> None:
        await self._conn.execute(
            """UPDATE webhook_subscriptions SET consecutive_failures = 0, failing_since = NULL
               WHERE id = $1 AND consecutive_failures <> 0""",
            subscription_id,
        )

    async def disable(self, subscription_id: uuid.UUID, reason: Reason) -> Subscription | None:
        """Switch an active subscription off; `None` when it was not active (someone else did it already)."""
        row = await self._conn.fetchrow(
            f"""UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $2, disabled_at = now()
                WHERE id = $1 AND status = 'active' RETURNING {_SUBSCRIPTION_COLUMNS}""",
            subscription_id,
            reason,
        )
        return _subscription(row) if row else None

    async def enable(self, subscription_id: uuid.UUID) -> Subscription | None:
        """Switch a subscription on again with a clean failure count; its waiting deliveries are due at once."""
        row = await self._conn.fetchrow(
            f"""UPDATE webhook_subscriptions
                SET status = 'active', disabled_reason = NULL, disabled_at = NULL, consecutive_failures = 0,
                    failing_since = NULL
                WHERE id = $1 RETURNING {_SUBSCRIPTION_COLUMNS}""",
            subscription_id,
        )
        if row is None:
            return None
        if row["status"] == "active":
            await self._conn.execute(
                """UPDATE webhook_deliveries SET next_attempt_at = least(next_attempt_at, now())
                   WHERE subscription_id = $1 AND status = 'pending'""",
                subscription_id,
            )
        return _subscription(row)

    # -- deliveries -----------------------------------------------------------------------------------------------

    async def add_deliveries(
        self, subscription_ids: Sequence[uuid.UUID], event_id: uuid.UUID, event_type: str, body: str
    ) -> int:
        """One pending delivery of the event per subscription, skipping pairs stored before; returns how many new."""
        if not subscription_ids:
            return 0
        rows = await self._conn.fetch(
            """INSERT INTO webhook_deliveries (id, subscription_id, event_id, event_type, body)
               SELECT gen_random_uuid(), s, $2, $3, $4 FROM unnest($1::uuid[]) AS s
               ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING id""",
            list(subscription_ids),
            event_id,
            event_type,
            body,
        )
        return len(rows)

    async def deliveries(
        self, subscription_id: uuid.UUID, status: DeliveryStatus | None, limit: int, offset: int
    ) -> tuple[list[Delivery], int]:
        """A page of a subscription's delivery log (newest first) and how many deliveries it holds."""
        rows = await self._conn.fetch(
            f"""SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries
                WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2)
                ORDER BY created_at DESC, id LIMIT $3 OFFSET $4""",
            subscription_id,
            status,
            limit,
            offset,
        )
        total = await self._conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2)",
            subscription_id,
            status,
        )
        return [_delivery(row) for row in rows], total

    async def delivery(self, delivery_id: uuid.UUID) -> Delivery | None:
        row = await self._conn.fetchrow(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1", delivery_id
        )
        return _delivery(row) if row else None

    async def claim(self, limit: int, per_subscription: int, lease_seconds: float) -> list[Claimed]:
        """Lease up to `limit` due deliveries of active subscriptions, oldest due first, at most `per_subscription`
        leased per subscription at any time; commit at once, before sending."""
        if limit <= 0:
            return []
        rows = await self._conn.fetch(
            """WITH claimable AS (
                   SELECT due.id
                   FROM webhook_subscriptions s
                   CROSS JOIN LATERAL (
                       SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                       WHERE d.subscription_id = s.id AND d.status = 'pending' AND d.next_attempt_at <= now()
                         AND (d.leased_until IS NULL OR d.leased_until <= now())
                       ORDER BY d.next_attempt_at
                       LIMIT greatest($2 - (SELECT count(*) FROM webhook_deliveries leased
                                            WHERE leased.subscription_id = s.id AND leased.status = 'pending'
                                              AND leased.leased_until > now()), 0)
                       FOR UPDATE OF d SKIP LOCKED
                   ) due
                   WHERE s.status = 'active'
                   ORDER BY due.next_attempt_at
                   LIMIT $1
               )
               UPDATE webhook_deliveries d
               SET leased_until = now() + make_interval(secs => $3), attempts = d.attempts + 1, last_attempt_at = now()
               FROM claimable, webhook_subscriptions s
               WHERE d.id = claimable.id AND s.id = d.subscription_id
               RETURNING d.id, d.subscription_id, d.attempts, d.event_id, d.event_type, d.body, s.url, s.secret,
                         CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END AS previous_secret,
                         s.created_by, s.may_see_resident_ids, s.pseudonym_key""",
            limit,
            per_subscription,
            lease_seconds,
        )
        return [
            Claimed(
                delivery_id=row["id"],
                subscription_id=row["subscription_id"],
                attempt=row["attempts"],
                event_id=row["event_id"],
                event_type=row["event_type"],
                body=row["body"],
                url=row["url"],
                secrets=(row["secret"], row["previous_secret"]) if row["previous_secret"] else (row["secret"],),
                created_by=row["created_by"],
                may_see_resident_ids=row["may_see_resident_ids"],
                pseudonym_key=row["pseudonym_key"],
            )
            for row in rows
        ]

    async def mark_delivered(self, claimed: Claimed, status_code: int) -> bool:
        """Record a 2xx answer; `False` when a later attempt holds the delivery (the fence)."""
        done = await self._conn.fetchval(
            """UPDATE webhook_deliveries
               SET status = 'delivered', delivered_at = now(), next_attempt_at = NULL, leased_until = NULL,
                   last_status_code = $3, last_error = NULL
               WHERE id = $1 AND attempts = $2 AND status = 'pending' RETURNING true""",
            claimed.delivery_id,
            claimed.attempt,
            status_code,
        )
        return bool(done)

    async def mark_failed_attempt(
        self, claimed: Claimed, status_code: int | None, error: str, retry_in_seconds: float | None
    ) -> bool:
        """Record a failed attempt: due again after `retry_in_seconds`, or failed for good when that is `None`.
        `False` when a later attempt holds the delivery (the fence)."""
        done = await self._conn.fetchval(
            """UPDATE webhook_deliveries
               SET status = CASE WHEN $5::float8 IS NULL THEN 'failed' ELSE 'pending' END,
                   next_attempt_at = now() + make_interval(secs => $5::float8), leased_until = NULL,
                   last_status_code = $3, last_error = $4
               WHERE id = $1 AND attempts = $2 AND status = 'pending' RETURNING true""",
            claimed.delivery_id,
            claimed.attempt,
            status_code,
            error[:MAX_ERROR_LENGTH],
            retry_in_seconds,
        )
        return bool(done)


# --- HTTP -----------------------------------------------------------------------------------------------------


class NotPublicAddress(Exception):
    """A webhook host resolved to an address that may not be contacted; no connection was made."""


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Opens each connection to an address that was checked, never to one found by resolving again.

    The host is resolved once per connection; when `allowed` refuses any of its addresses, nothing is contacted
    (`NotPublicAddress`); otherwise the addresses are tried in the resolver's order. Only the TCP connection is
    made here: httpcore starts TLS on it with the host name (SNI and certificate check) and the request names
    the host in its Host header, so a host cannot answer its DNS with one address for the check and another
    for the connection (rebinding)."""

    def __init__(self, allowed: Callable[[str], bool], backend: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._allowed = allowed
        self._backend = backend or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        for address in addresses:
            if not self._allowed(address):
                raise NotPublicAddress(f"refused: {host} resolves to {address}, not a public internet address")
        refused: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return await self._backend.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except httpcore.ConnectError as error:
                refused = error
        raise refused or httpcore.ConnectError(f"{host} resolves to no address")

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


async def _resolve(host: str, port: int, seconds: float | None) -> list[str]:
    """Every address `host` resolves to, each once, in the resolver's order; at most `seconds` (None: no limit)."""
    try:
        async with asyncio.timeout(seconds):
            found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError as error:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from error
    except OSError as error:
        raise httpcore.ConnectError(str(error)) from error
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, on a connection pool whose connections `PinnedBackend` opens."""

    def __init__(
        self, allowed: Callable[[str], bool], *, limits: httpx.Limits, verify: ssl.SSLContext | bool = True
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, limits=limits)
        # httpx 0.28 takes no network backend: the pool it made (nothing opened yet) gives way to one on ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(allowed),
        )


def client(
    *, public_only: bool, timeout: float, connections: int, user_agent: str, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncClient:
    """The client webhooks are posted with. With `public_only`, every connection goes to an address on the
    public internet that was checked when it was resolved (see `PinnedBackend`); redirects are never followed,
    and no proxy from the environment is used (a proxy would resolve the host itself)."""
    allowed = is_public if public_only else _anywhere
    return httpx.AsyncClient(
        transport=PinnedTransport(
            allowed,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            verify=verify,
        ),
        timeout=timeout,
        follow_redirects=False,
        headers={"user-agent": user_agent},
    )


def _anywhere(address: str) -> bool:
    return True


@dataclass(frozen=True)
class Answer:
    """What one attempt got back: a status code, or none (timeout, no connection, refused address) and why."""

    status_code: int | None
    error: str | None


async def post(client: httpx.AsyncClient, url: str, headers: dict[str, str], body: str, seconds: float) -> Answer:
    """POST the body with a client from `client()`; the whole attempt, resolving the host and reading the
    answer included, ends after `seconds`. A host the client may not contact is not contacted. Only the first
    few hundred bytes of an answer are read (they go into the delivery log)."""
    try:
        async with asyncio.timeout(seconds):
            async with client.stream("POST", url, content=body.encode(), headers=headers) as response:
                excerpt = b""
                async for chunk in response.aiter_bytes():
                    excerpt += chunk
                    if len(excerpt) >= MAX_RESPONSE_EXCERPT:
                        break
    except NotPublicAddress as refusal:
        return Answer(None, str(refusal))
    except TimeoutError:
        return Answer(None, f"timed out after {seconds:g} s")
    except httpx.TimeoutException as error:
        return Answer(None, f"timed out: {type(error).__name__}")
    except (httpx.HTTPError, OSError) as error:
        return Answer(None, f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH])
    if 200 <= response.status_code < 300:
        return Answer(response.status_code, None)
    text = excerpt[:MAX_RESPONSE_EXCERPT].decode("utf-8", errors="replace").strip()
    error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
    return Answer(response.status_code, f"{error}: {text}" if text else error)
