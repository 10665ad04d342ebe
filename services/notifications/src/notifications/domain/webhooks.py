"""Webhook rules, free of I/O: which subscriptions hear an event, how a delivery is signed, what an
endpoint's answer means, when the next attempt is due and when a subscription is switched off.

Invariants: a delivery is attempted at most `max_attempts` times (a crashed attempt counts), spread
over hours with jitter so that many failing deliveries do not retry in lockstep; only a 2xx answer
counts as delivered; 410 Gone switches the subscription off at once; a run of failed attempts as
long as the threshold does so too, and any success ends the run. Unless private addresses are allowed
(a local setup), an endpoint must be on the public internet: a URL naming a private, loopback,
link-local or otherwise special address is refused, and so is a host name that resolves to one, at
every connection, which then goes to the address checked (so a webhook cannot be used to reach the
municipality's internal systems).

Who is who: a subscription sees people's ids only when an admin allowed it (`may_see_resident_ids`). Otherwise
every field the contracts declare a person (see `buurtkracht_contracts.personal`) carries a pseudonym, the same for
the same person in every delivery to that subscription and different in any other subscription, and fields the
contracts do not know are left out; the delivery is signed as it is sent (`delivered_body`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import random
import re
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from buurtkracht_contracts.personal import pseudonymised
from buurtkracht_contracts.registry import UnknownEventType, model_for

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
CONTENT_TYPE = "application/cloudevents+json"
PSEUDONYM_PREFIX = "p-"

# Seconds before the attempt after attempt n (n = 1, 2, ...): 5 s, 1 min, 5 min, 30 min, 2 h, 5 h, 10 h;
# later attempts wait as long as the last step. Eight attempts span about 18 hours.
RETRY_SCHEDULE: tuple[float, ...] = (5, 60, 300, 1800, 7200, 18_000, 36_000)
JITTER = 0.2

MAX_URL_LENGTH = 2000
MAX_FILTERS = 50
_FILTER = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*(\.\*)?)$")

Reason = Literal["gone", "repeated_failures"]

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# Not reachable on the public internet, yet `is_global` on some Python versions.
_NOT_GLOBAL = (
    ipaddress.IPv4Network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.IPv4Network("192.88.99.0/24"),  # 6to4 relay anycast (deprecated)
    ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated)
)


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class Subscription:
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    created_by: str
    status: SubscriptionStatus
    disabled_reason: Reason | None
    disabled_at: datetime | None
    consecutive_failures: int
    created_at: datetime
    previous_secret_until: datetime | None  # a rotated secret signs beside the current one until then
    may_see_resident_ids: bool  # set by an admin; otherwise people are pseudonyms in its deliveries


@dataclass(frozen=True)
class Delivery:
    """One event for one subscription, as the delivery log shows it."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


# --- subscriptions --------------------------------------------------------------------------------------------


def new_secret() -> str:
    """A signing secret in the Standard Webhooks format: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_url(url: str) -> str:
    """The endpoint URL as given, when it is an absolute http(s) URL with a host; else `ValueError`."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"at most {MAX_URL_LENGTH} characters")
    if any(character.isspace() for character in url):
        raise ValueError("must not contain whitespace")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as error:
        raise ValueError(f"not a valid URL: {error}") from error
    if parts.scheme not in {"http", "https"}:
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    return url


def is_public(address: str) -> bool:
    """Whether an IP address is one on the public internet (not private, loopback, link-local, site-local,
    shared, multicast, reserved or unspecified). An IPv6 address that carries an IPv4 address (IPv4-mapped,
    NAT64, 6to4) is judged as that IPv4 address; the deprecated IPv4-compatible ones are reserved."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        else:
            ip = ip.ipv4_mapped or ip.sixtofour or ip
    if ip.is_multicast or ip.is_reserved or any(ip in network for network in _NOT_GLOBAL):
        return False
    return ip.is_global


def literal_address(url: str) -> str | None:
    """The IP address a URL names as its host, if it names one (rather than a host name)."""
    host = urlsplit(url).hostname or ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def check_filter(pattern: str) -> str:
    """An event-type filter: a full CloudEvents type, a prefix ending in `.*`, or `*`; else `ValueError`."""
    if not _FILTER.match(pattern):
        raise ValueError("must be a CloudEvents type (nl.buurtkracht.vouchers.pledge-made.v1) or a prefix ending in .*")
    return pattern


def normalised_filters(patterns: Sequence[str]) -> list[str]:
    """The filters without duplicates, in the order given; `*` anywhere means every type (no filter)."""
    if "*" in patterns:
        return []
    return list(dict.fromkeys(patterns))


def matches(patterns: Sequence[str], event_type: str) -> bool:
    """Whether a subscription with these filters hears `event_type`; no filters means every type."""
    if not patterns:
        return True
    for pattern in patterns:
        if pattern == "*" or pattern == event_type:
            return True
        if pattern.endswith(".*") and event_type.startswith(pattern[:-1]):
            return True
    return False


# --- who is who ----------------------------------------------------------------------------------------------


def pseudonym(key: str, person_id: str) -> str:
    """A person as a subscription with `key` sees them: `p-` and 32 hex digits of HMAC-SHA256(key, id). The same
    person always gets the same pseudonym there, so an integration can count distinct pledgers, not tell who."""
    return PSEUDONYM_PREFIX + hmac.new(key.encode(), person_id.encode(), hashlib.sha256).hexdigest()[:32]


def delivered_body(body: str, may_see_resident_ids: bool, pseudonym_key: str) -> str:
    """What a subscription is sent of a queued delivery (a CloudEvent in structured JSON): the body as queued when
    it may see who is who; else its data with every person a pseudonym and every field the contracts do not know
    left out (all of it for a type they do not know), and a resident's id as subject a pseudonym too. The same
    body for every attempt while the subscription's right and key stay."""
    if may_see_resident_ids:
        return body
    cloud_event = json.loads(body)
    try:
        model = model_for(str(cloud_event.get("type")))
    except UnknownEventType:
        model = None

    def masked(person: str) -> str:
        return pseudonym(pseudonym_key, person)

    data = cloud_event.get("data")
    cloud_event["data"] = pseudonymised(data, model, masked) if model is not None and isinstance(data, dict) else {}
    if (model is None or model.aggregate_type == "resident") and isinstance(cloud_event.get("subject"), str):
        cloud_event["subject"] = masked(cloud_event["subject"])
    return json.dumps(cloud_event, separators=(",", ":"), ensure_ascii=False)


# --- deliveries -----------------------------------------------------------------------------------------------


def signed_headers(secrets: Sequence[str], message_id: str, body: str, at: datetime | None = None) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt: the stable message id, the time, and one signature per
    secret (the current one first; a rotated one while it overlaps), space-separated as the specification says."""
    timestamp = datetime.fromtimestamp(int((at or datetime.now(UTC)).timestamp()), UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets),
        "content-type": CONTENT_TYPE,
    }


class Verdict(StrEnum):
    DELIVERED = "delivered"
    GONE = "gone"  # the receiver says the endpoint no longer exists: stop sending to it
    FAILED = "failed"  # any other answer, a timeout or no connection: try again later


def judge(status_code: int | None) -> Verdict:
    """What an endpoint's answer means; `None` when there was no answer (timeout, connection error)."""
    if status_code is not None and 200 <= status_code < 300:
        return Verdict.DELIVERED
    if status_code == 410:
        return Verdict.GONE
    return Verdict.FAILED


def retry_delay(
    attempts_made: int,
    *,
    schedule: Sequence[float] = RETRY_SCHEDULE,
    jitter: float = JITTER,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number `attempts_made` (1-based): the schedule's step, ±jitter."""
    step = schedule[min(max(attempts_made, 1), len(schedule)) - 1]
    return step * (1 + jitter * (2 * rand() - 1))


@dataclass(frozen=True)
class Outcome:
    """What follows from one finished attempt."""

    delivered: bool
    final: bool  # no attempt follows: delivered, or failed for good
    disable: Reason | None  # switch the subscription off, and why


def outcome(
    verdict: Verdict,
    attempts_made: int,
    max_attempts: int,
    consecutive_failures: int,
    disable_after: int,
    failing_for: timedelta = timedelta.max,
    disable_after_failing_for: timedelta = timedelta(0),
) -> Outcome:
    """The consequence of an attempt; `consecutive_failures` counts the subscription's run including this one, which
    began `failing_for` ago. A run disables the subscription only when it is both long and old: an endpoint of a busy
    subscription that is down for a minute fails many deliveries in that minute, and stays on."""
    if verdict is Verdict.DELIVERED:
        return Outcome(delivered=True, final=True, disable=None)
    disable: Reason | None = None
    if verdict is Verdict.GONE:
        disable = "gone"
    elif consecutive_failures >= disable_after and failing_for >= disable_after_failing_for:
        disable = "repeated_failures"
    return Outcome(delivered=False, final=attempts_made >= max_attempts, disable=disable)
